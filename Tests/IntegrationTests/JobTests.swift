import Foundation
import Testing

/// Distributed training jobs end to end: a real coordinator, two node agents, mpirun with two
/// `nebula-node worker` ranks averaging gradients with MPI allreduce, and PostgreSQL.
@Suite("Training jobs on the cluster", .enabled(if: IntegrationEnvironment.enabled), .serialized)
struct JobTests {
    static let digits = IntegrationEnvironment.root.appendingPathComponent("Tests/Data/sklearn_digits_8x8.csv").path

    /// Two agents and the digits dataset uploaded.
    func withCluster(_ body: (TestCluster, String) async throws -> Void) async throws {
        try await withTestCluster(agents: ["node-a", "node-b"]) { cluster in
            let upload = try cluster.cli(["dataset", "upload", Self.digits, "-q"])
            guard upload.status == 0 else { throw HarnessError("upload failed: \(upload.stderr)") }
            try await body(cluster, upload.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    func show(_ cluster: TestCluster, _ id: String) throws -> [String: Any] {
        let r = try cluster.cli(["job", "show", id, "--json"])
        guard r.status == 0, let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            throw HarnessError("nebula job show \(id) failed (\(r.status)): \(r.stderr)")
        }
        return object
    }

    func submit(_ cluster: TestCluster, _ args: [String]) throws -> String {
        let r = try cluster.cli(["submit"] + args)
        guard r.status == 0 else { throw HarnessError("submit failed (\(r.status)): \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The job's logs once they contain `text`: the ranks' records reach the coordinator in batches from
    /// the agents (every second), so the last lines may arrive after the job has completed.
    func logs(_ cluster: TestCluster, _ id: String, containing text: String) async throws -> String {
        var last = ""
        try await eventually("the logs of \(id) contain '\(text)'", timeout: .seconds(120), context: { String(last.suffix(3000)) }) {
            last = try cluster.cli(["job", "logs", id, "--limit", "2000"]).stdout
            return last.contains(text)
        }
        return last
    }

    func waitForState(_ cluster: TestCluster, _ id: String, _ states: Set<String>, timeout: Duration = .seconds(600)) async throws
        -> [String: Any]
    {
        var last: [String: Any] = [:]
        try await eventually("job \(id) in \(states.sorted())", timeout: timeout, poll: .milliseconds(500),
                             context: { "\(last)\n\(cluster.logs())" }) {
            last = try show(cluster, id)
            return states.contains(last["state"] as? String ?? "")
        }
        return last
    }

    /// Waits until rank `rank` of the current attempt has reported (its pid is known) and training has
    /// passed `step`; returns the pid.
    func runningRank(_ cluster: TestCluster, _ id: String, rank: Int, afterStep step: Int, checkpoint: Bool = false) async throws -> Int32 {
        var pid: Int32 = 0
        try await eventually("job \(id) rank \(rank) past step \(step)", timeout: .seconds(300), poll: .milliseconds(300),
                             context: { cluster.logs() }) {
            let job = try show(cluster, id)
            let ranks = job["ranks"] as? [[String: Any]] ?? []
            guard let r = ranks.first(where: { $0["rank"] as? Int == rank }), let p = r["pid"] as? Int, p > 0,
                  (job["step"] as? Int ?? 0) >= step else { return false }
            if checkpoint && (job["checkpoints"] as? [Any] ?? []).isEmpty { return false }
            pid = Int32(p)
            return true
        }
        return pid
    }

    @Test func aTwoRankMLPJobTrainsToTheSingleProcessAccuracy() async throws {
        try await withCluster { cluster, dataset in
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "2", "--epochs", "20",
                                          "--batch-size", "32"])
            #expect(id.hasPrefix("job-"))
            let listed = try cluster.cli(["jobs"])
            #expect(listed.stdout.contains(id), "\(listed.stdout)")
            let job = try await waitForState(cluster, id, ["completed", "failed"])
            #expect(job["state"] as? String == "completed", "\(job)")
            #expect(job["restarts"] as? Int == 0)
            #expect(job["task"] as? String == "multiclass")
            let metrics = try #require(job["metrics"] as? [String: Any])
            // the single-process engine reaches 0.968 on average over seeds at 20 epochs (Tests/EngineTests)
            let accuracy = try #require(metrics["accuracy"] as? Double)
            #expect(accuracy >= 0.95, "holdout accuracy \(accuracy)")
            #expect(metrics["holdout_rows"] as? Double == 360)  // 20 % of 1797 (AutoGluon's rule), over both ranks
            let ranks = try #require(job["ranks"] as? [[String: Any]])
            #expect(Set(ranks.compactMap { $0["rank"] as? Int }) == [0, 1])
            #expect(Set(ranks.compactMap { $0["node"] as? String }) == ["node-a", "node-b"])
            #expect(ranks.allSatisfy { ($0["samples_per_second"] as? Double ?? 0) > 0 })
            let states = (job["events"] as? [[String: Any]] ?? []).compactMap { $0["to"] as? String }
            #expect(states == ["pending", "running", "completing", "completed"])
            let checkpoints = try #require(job["checkpoints"] as? [[String: Any]])
            #expect(checkpoints.contains { $0["final"] as? Bool == true })
            #expect(checkpoints.filter { $0["final"] as? Bool != true }.count == 19)  // one per epoch end but the last

            // the model downloads and matches its checksum; the logs carry the ranks' lines
            let out = cluster.dir.appendingPathComponent("model.ckpt").path
            let download = try cluster.cli(["job", "download", id, "-o", out])
            #expect(download.status == 0, "\(download.stderr)")
            #expect(((try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0) > 100_000)
            let logs = try await logs(cluster, id, containing: "epoch 20/20")
            #expect(logs.contains("rank joined"))
            let table = try cluster.cli(["job", "show", id])
            #expect(table.stdout.contains("RANKS (slowest first)"))
            #expect(table.stdout.contains("HOLDOUT"))
        }
    }

    /// The Float16 wire and the blocking (non-overlapped) reduction reach the workers and still train
    /// digits to the accuracy of the Float32 run.
    @Test func aTwoRankMLPJobWithTheFloat16WireTrains() async throws {
        try await withCluster { cluster, dataset in
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "2", "--epochs", "20",
                                          "--batch-size", "32", "--fp16-allreduce", "--no-overlap", "--gpu-batch-size", "64"])
            let job = try await waitForState(cluster, id, ["completed", "failed"])
            #expect(job["state"] as? String == "completed", "\(job)")
            let accuracy = (job["metrics"] as? [String: Any])?["accuracy"] as? Double ?? 0
            #expect(accuracy >= 0.95, "holdout accuracy with the Float16 wire \(accuracy)")
            let spec = try #require(job["spec"] as? [String: Any])
            #expect(spec["fp16_allreduce"] as? Bool == true && spec["no_overlap"] as? Bool == true, "\(spec)")
            #expect(spec["gpu_batch_size"] as? Int == 64)
            // the ranks trained with what was asked (neither node has a GPU: --batch-size everywhere)
            _ = try await logs(cluster, id, containing: "mlp: local batch 32 (ranks: 32,32), gradients reduced after backward, float16 wire")
        }
    }

    @Test func aTwoRankGBDTJobSumsHistogramsOverTheRanks() async throws {
        try await withCluster { cluster, dataset in
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "2", "--model", "gbdt",
                                          "--epochs", "30"])
            let job = try await waitForState(cluster, id, ["completed", "failed"])
            #expect(job["state"] as? String == "completed", "\(job)")
            let accuracy = (job["metrics"] as? [String: Any])?["accuracy"] as? Double ?? 0
            // scikit-learn's HistGradientBoosting reaches 0.969 on digits (BASELINES.md); 30 iterations here
            #expect(accuracy >= 0.9, "holdout accuracy \(accuracy)")
            // checkpoints every 10 iterations (the default for gbdt) and the final model
            let checkpoints = try #require(job["checkpoints"] as? [[String: Any]])
            #expect(checkpoints.filter { $0["final"] as? Bool != true }.compactMap { $0["step"] as? Int }.sorted() == [10, 20])
            #expect(checkpoints.contains { $0["final"] as? Bool == true && $0["step"] as? Int == 30 })
            // the model downloads: a checkpoint file whose payload is the GBDT model file
            let out = cluster.dir.appendingPathComponent("model-gbdt.ckpt").path
            let download = try cluster.cli(["job", "download", id, "-o", out])
            #expect(download.status == 0, "\(download.stderr)")
            let bytes = try #require(FileManager.default.contents(atPath: out))
            #expect(bytes.starts(with: Array("NEBULACK".utf8)))
            #expect(bytes.range(of: Data("NEBGBDT1".utf8)) != nil, "no GBDT model inside the downloaded checkpoint")
            #expect(bytes.range(of: Data(#""kind":"gbdt""#.utf8)) != nil)
        }
    }

    @Test func aKilledWorkerRestartsFromItsCheckpoint() async throws {
        try await withCluster { cluster, dataset in
            // Long enough that the kill lands mid-training however fast the machine (checkpoints every 100 steps).
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "2", "--epochs", "150",
                                          "--checkpoint-every", "100"])
            let pid = try await runningRank(cluster, id, rank: 1, afterStep: 30, checkpoint: true)
            #expect(kill(pid, SIGKILL) == 0)
            let job = try await waitForState(cluster, id, ["completed", "failed"])
            #expect(job["state"] as? String == "completed", "\(job)")
            #expect(job["restarts"] as? Int == 1)
            #expect(job["attempt"] as? Int == 2)
            let events = job["events"] as? [[String: Any]] ?? []
            let restart = try #require(events.first { $0["to"] as? String == "restarting" })
            #expect((restart["reason"] as? String ?? "").contains("before the job finished"), "\(restart)")
            #expect(events.compactMap { $0["to"] as? String } == ["pending", "running", "restarting", "running", "completing", "completed"])
            let accuracy = (job["metrics"] as? [String: Any])?["accuracy"] as? Double ?? 0
            #expect(accuracy >= 0.95, "holdout accuracy after the restart \(accuracy)")
            _ = try await logs(cluster, id, containing: "resumed from checkpoint")
            // the events are in PostgreSQL (job show reads them from there)
            #expect(events.count == 6)
        }
    }

    @Test func aLostNodeRestartsTheJobOnTheRemainingNodeAtASmallerWorldSize() async throws {
        try await withCluster { cluster, dataset in
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--min-nodes", "1", "--max-nodes", "2",
                                          "--epochs", "100", "--checkpoint-every", "100"])
            _ = try await runningRank(cluster, id, rank: 1, afterStep: 30, checkpoint: true)
            let placed = try show(cluster, id)["nodes"] as? [String] ?? []
            #expect(placed.count == 2)
            // the agent of the node that did not launch mpirun dies: the node goes DOWN
            let lost = try #require(placed.last)
            cluster.agents[lost]?.killHard()
            let job = try await waitForState(cluster, id, ["completed", "failed"])
            #expect(job["state"] as? String == "completed", "\(job)")
            #expect(job["nodes"] as? [String] == [placed[0]], "restarted on the remaining node only")
            let events = job["events"] as? [[String: Any]] ?? []
            let states = events.compactMap { $0["to"] as? String }
            #expect(states.contains("node_fail"), "\(states)")
            #expect(states.suffix(2) == ["completing", "completed"])
            let failure = try #require(events.first { $0["to"] as? String == "node_fail" })
            #expect((failure["reason"] as? String ?? "").contains(lost))
            let checkpoints = job["checkpoints"] as? [[String: Any]] ?? []
            #expect(checkpoints.contains { $0["world_size"] as? Int == 1 }, "the second attempt ran with one rank")
            let accuracy = (job["metrics"] as? [String: Any])?["accuracy"] as? Double ?? 0
            #expect(accuracy >= 0.93, "holdout accuracy \(accuracy)")
        }
    }

    @Test func aJobSurvivesACoordinatorCrash() async throws {
        try await withCluster { cluster, dataset in
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "2", "--epochs", "150",
                                          "--checkpoint-every", "100"])
            _ = try await runningRank(cluster, id, rank: 0, afterStep: 20)
            cluster.coordinator?.killHard()
            try cluster.startCoordinator()
            let job = try await waitForState(cluster, id, ["completed", "failed"])
            #expect(job["state"] as? String == "completed", "\(job)")
            #expect(job["attempt"] as? Int == 2)
            let events = job["events"] as? [[String: Any]] ?? []
            #expect(events.contains { ($0["reason"] as? String ?? "").contains("the coordinator restarted") }, "\(events)")
            #expect(events.contains { ($0["reason"] as? String ?? "") == "placed on node-a, node-b (attempt 2)" }, "\(events)")
        }
    }

    @Test func aStalledRankAbortsTheJobAndIsNamed() async throws {
        try await withCluster { cluster, dataset in
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "2", "--epochs", "3000",
                                          "--checkpoint-every", "1000", "--stall-timeout", "6"])
            let pid = try await runningRank(cluster, id, rank: 1, afterStep: 5)
            #expect(kill(pid, SIGSTOP) == 0)
            defer { kill(pid, SIGCONT) }
            let job = try await waitForState(cluster, id, ["failed", "completed"])
            #expect(job["state"] as? String == "failed")
            let reason = job["reason"] as? String ?? ""
            #expect(reason.contains("hang: rank 1 on node-b"), "\(reason)")
            #expect(reason.contains("pid \(pid)"))
            // the attempt is stopped: no rank of the job is left
            kill(pid, SIGCONT)
            try await eventually("the ranks of \(id) are gone", timeout: .seconds(60)) {
                kill(pid, 0) != 0
            }

            // cancel: a running job is stopped and ends CANCELLED
            let second = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "2", "--epochs", "3000",
                                              "--checkpoint-every", "1000"])
            let secondPid = try await runningRank(cluster, second, rank: 0, afterStep: 3)
            let cancel = try cluster.cli(["job", "cancel", second, "--reason", "not needed"])
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(cancel.stdout.contains("cancelled"))
            let cancelled = try await waitForState(cluster, second, ["cancelled"])
            #expect(cancelled["reason"] as? String == "cancelled: not needed")
            try await eventually("the ranks of \(second) are gone", timeout: .seconds(60)) { kill(secondPid, 0) != 0 }
            let again = try cluster.cli(["job", "cancel", second])
            #expect(again.status != 0)
            #expect(again.stderr.contains("already cancelled"))
        }
    }

    @Test func badSubmissionsAreRefusedWithTheReason() async throws {
        try await withCluster { cluster, dataset in
            func refused(_ args: [String], _ expected: String) throws {
                let r = try cluster.cli(["submit"] + args)
                #expect(r.status != 0, "\(args) was accepted")
                #expect(r.stderr.contains(expected), "\(args): \(r.stderr)")
            }
            try refused(["--dataset", "ds-nope", "--target", "label"], "no dataset 'ds-nope'")
            try refused(["--dataset", dataset, "--target", "nope"], "no column 'nope'")
            try refused(["--dataset", dataset, "--target", "label", "--model", "cnn"], "nebula train")
            try refused(["--dataset", dataset, "--target", "label", "--model", "resnet"], "unknown model")
            try refused(["--dataset", dataset, "--target", "label", "--nodes", "0"], "at least 1")
            try refused(["--dataset", dataset, "--target", "label", "--min-nodes", "3", "--max-nodes", "2"], "below --min-nodes")
            try refused(["--dataset", dataset, "--target", "label", "--epochs", "0"], "--epochs")
            try refused(["--dataset", dataset, "--target", "label", "--task", "regression", "--lr", "-1"], "--lr")
            try refused(["--dataset", dataset, "--target", "p5", "--task", "binary"], "binary")
            try refused(["--dataset", dataset, "--target", "p0"], "single value")
            try refused(["--dataset", dataset, "--target", "label", "--model", "gbdt", "--fp16-allreduce"], "Float64")
            try refused(["--dataset", dataset, "--target", "label", "--gpu-batch-size", "0"], "--gpu-batch-size")
            #expect(try cluster.cli(["job", "show", "job-nope"]).stderr.contains("no job 'job-nope'"))
            // a job that needs more nodes than exist waits and says why
            let id = try submit(cluster, ["--dataset", dataset, "--target", "label", "--nodes", "3"])
            let waiting = try show(cluster, id)
            #expect(waiting["state"] as? String == "pending")
            #expect((waiting["reason"] as? String ?? "").contains("waiting for 3 nodes"), "\(waiting)")
            _ = try cluster.cli(["job", "cancel", id])
        }
    }
}
