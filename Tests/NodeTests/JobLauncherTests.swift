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
}
