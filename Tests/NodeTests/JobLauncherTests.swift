import NebulaModel
import NebulaNode
import Testing

@Suite("Job launcher")
struct JobLauncherTests {
    let launch = LaunchCommand(jobId: "job-1", attempt: 3, worldSize: 2, hosts: ["gpu-a", "gpu-b"], nodeIds: ["a", "b"])

    @Test func oneMachineUsesSharedMemoryAndLocalSlots() {
        let args = JobLauncher.mpirunArguments(launch, localHostNames: ["gpu-a", "gpu-b", "localhost"], isRoot: true,
                                               executable: "/opt/nebula-node", coordinator: "10.0.0.1:7070",
                                               cacheDirectory: "/data/shards", tlsCA: nil, tlsServerName: nil)
        #expect(args.starts(with: ["-np", "2", "--host", "localhost:2", "--mca", "btl", "self,vader"]))
        #expect(args.contains("--allow-run-as-root"))
        #expect(!args.contains { $0.contains("token") && $0 != "NEBULA_JOIN_TOKEN" }, "the token travels in the environment")
        let worker = Array(args.drop { $0 != "/opt/nebula-node" })
        #expect(worker == ["/opt/nebula-node", "worker", "--coordinator", "10.0.0.1:7070", "--job", "job-1", "--attempt", "3",
                           "--nodes", "a,b", "--slots", "1", "--cache-dir", "/data/shards"])
    }

    @Test func severalMachinesGetAHostList() {
        let args = JobLauncher.mpirunArguments(launch, localHostNames: ["gpu-a"], isRoot: false, executable: "nebula-node",
                                               coordinator: "c:1", cacheDirectory: "/s", tlsCA: "/ca.pem", tlsServerName: "coord")
        #expect(args.starts(with: ["-np", "2", "--host", "gpu-a:1,gpu-b:1"]))
        #expect(!args.contains("--allow-run-as-root"))
        #expect(!args.contains("self,vader"))
        #expect(args.suffix(4) == ["--tls-ca", "/ca.pem", "--tls-server-name", "coord"])
    }

    /// What MPI_Init in a singleton leaves in the environment makes a child mpirun fail at once.
    @Test func theEnvironmentOfAnEnclosingMPIRuntimeIsNotPassedOn() {
        let env = JobLauncher.launchEnvironment([
            "PATH": "/usr/bin", "OMPI_MCA_ess": "singleton", "OMPI_MCA_pmix": "isolated", "PMIX_NAMESPACE": "x",
            "ORTE_SCHIZO_DETECTION": "ORTE", "OMPI_COMMAND": "./a", "OMPI_ALLOW_RUN_AS_ROOT": "1",
            "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "HOME": "/root",
        ])
        #expect(env == ["PATH": "/usr/bin", "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "HOME": "/root"])
    }

    /// Note [Launching under Slurm]: a job step over the placement's hosts, one task per slot, the same
    /// worker command as under mpirun, and no secret on the command line.
    @Test func srunRunsTheSameWorkerAsAJobStep() {
        let args = JobLauncher.srunArguments(launch, executable: "/opt/nebula-node", coordinator: "10.0.0.1:7070",
                                             cacheDirectory: "/data/shards", tlsCA: "/ca.pem", tlsServerName: "coord")
        #expect(args.starts(with: ["--nodes", "2", "--ntasks", "2", "--ntasks-per-node", "1", "--nodelist", "gpu-a,gpu-b"]))
        #expect(args.contains("--mpi=pmix") && args.contains("--kill-on-bad-exit=1") && args.contains("--export=ALL"))
        #expect(args.contains("nebula-job-1-3"))
        #expect(!args.contains { $0.contains("token") }, "the token travels in the environment")
        let worker = Array(args.drop { $0 != "/opt/nebula-node" })
        #expect(worker == ["/opt/nebula-node", "worker", "--coordinator", "10.0.0.1:7070", "--job", "job-1", "--attempt", "3",
                           "--nodes", "a,b", "--slots", "1", "--cache-dir", "/data/shards", "--tls-ca", "/ca.pem",
                           "--tls-server-name", "coord"])
        let mpirunWorker = Array(JobLauncher.mpirunArguments(launch, localHostNames: [], isRoot: false, executable: "/opt/nebula-node",
                                                             coordinator: "10.0.0.1:7070", cacheDirectory: "/data/shards",
                                                             tlsCA: "/ca.pem", tlsServerName: "coord")
            .drop { $0 != "/opt/nebula-node" })
        #expect(worker == mpirunWorker)
    }

    @Test func twoSlotsPerNodeMakeTwiceTheTasks() {
        var wide = launch
        wide.slotsPerNode = 2
        wide.worldSize = 4
        let args = JobLauncher.srunArguments(wide, executable: "n", coordinator: "c:1", cacheDirectory: "/s", tlsCA: nil,
                                             tlsServerName: nil)
        #expect(args.starts(with: ["--nodes", "2", "--ntasks", "4", "--ntasks-per-node", "2"]))
        let slots = try? #require(args.firstIndex(of: "--slots"))
        #expect(slots.map { args[$0 + 1] } == "2")
    }

    @Test func autoPicksSrunInsideASlurmAllocation() {
        #expect(JobLaunchMethod.auto.resolved(environment: ["SLURM_JOB_ID": "4711"]) == .srun)
        #expect(JobLaunchMethod.auto.resolved(environment: ["SLURM_JOB_ID": ""]) == .mpirun)
        #expect(JobLaunchMethod.auto.resolved(environment: [:]) == .mpirun)
        #expect(JobLaunchMethod.mpirun.resolved(environment: ["SLURM_JOB_ID": "4711"]) == .mpirun)
        #expect(JobLaunchMethod.srun.resolved(environment: [:]) == .srun)
    }
}
