import Foundation
import Logging
import NebulaHTTP
import NebulaStore
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// The ML builder through the REST API and the CLI, with a real coordinator and PostgreSQL.
@Suite("ML builder over the API", .enabled(if: IntegrationEnvironment.enabled), .serialized)
struct BuilderAPITests {
    static let data = IntegrationEnvironment.root.appendingPathComponent("Tests/Data")

    func upload(_ api: APIClient, _ token: String, name: String, csv: Data) async throws -> String {
        let (body, type) = APIClient.multipart(files: [(name, csv)])
        let up = try await api.call(.post, "/api/datasets", token: token, body: body, headers: ["Content-Type": type])
        let id = try #require(up.json["id"] as? String, "\(up.text)")
        try await eventually("\(name) is ready", timeout: .seconds(60)) {
            (try await api.call(.get, "/api/datasets/\(id)", token: token)).json["state"] as? String == "ready"
        }
        return id
    }

    /// The cluster's HTTP API once it answers, a new user, and one of `Tests/Data`'s files uploaded by
    /// them (ready).
    func userWithDataset(_ cluster: TestCluster, _ email: String, _ file: String) async throws
        -> (api: APIClient, user: (token: String, id: String), datasetId: String)
    {
        let api = APIClient(base: cluster.httpBase)
        try await eventually("the HTTP API answers", timeout: .seconds(120)) { (try? await api.call(.get, "/healthz"))?.status == 200 }
        let user = try await api.register(email)
        let csv = try Data(contentsOf: Self.data.appendingPathComponent(file))
        return (api, user, try await upload(api, user.token, name: file, csv: csv))
    }

    func waitForRun(_ api: APIClient, _ token: String, _ id: String) async throws -> APIClient.Reply {
        var last = try await api.call(.get, "/api/process/builder/\(id)", token: token)
        try await eventually("builder run \(id) ends", timeout: .seconds(300)) {
            last = try await api.call(.get, "/api/process/builder/\(id)", token: token)
            return ["completed", "failed", "cancelled"].contains(last.json["state"] as? String ?? "")
        }
        return last
    }

    /// The candidates run as cluster jobs on two agents; with the distribution threshold at 100 rows,
    /// the MLP and the GBDT of wine (178 rows) train over both nodes.
    @Test func buildReportModelPredictAndRefusals() async throws {
        try await withTestCluster(coordinatorFlags: ["--builder-distributed-rows", "100", "--builder-stall-timeout", "45s"],
                                  agents: ["node-a", "node-b"]) { cluster in
            let (api, user, id) = try await userWithDataset(cluster, "builder@example.org", "sklearn_wine.csv")

            // Refusals come at once, naming the field.
            let unknown = try await api.call(.post, "/api/process/builder", token: user.token, json: ["dataset_id": id, "target": "nope"])
            #expect(unknown.status == 422 && unknown.errorField == "target", "\(unknown.text)")
            let badMetric = try await api.call(.post, "/api/process/builder", token: user.token,
                                               json: ["dataset_id": id, "target": "target", "metric": "rmse"])
            #expect(badMetric.status == 422 && badMetric.errorField == "metric", "\(badMetric.text)")
            let badBudget = try await api.call(.post, "/api/process/builder", token: user.token,
                                               json: ["dataset_id": id, "target": "target", "time_budget": "soon"])
            #expect(badBudget.status == 400, "\(badBudget.text)")
            var one = "a,b\n"
            for i in 0..<40 { one += "\(i),same\n" }
            let oneId = try await upload(api, user.token, name: "one.csv", csv: Data(one.utf8))
            let single = try await api.call(.post, "/api/process/builder", token: user.token, json: ["dataset_id": oneId, "target": "b"])
            #expect(single.status == 422 && single.errorField == "target", "\(single.text)")
            var empty = "a,b,c\n"
            for i in 0..<40 { empty += "\(i),\(i % 3),\n" }
            let emptyId = try await upload(api, user.token, name: "empty.csv", csv: Data(empty.utf8))
            let allMissing = try await api.call(.post, "/api/process/builder", token: user.token, json: ["dataset_id": emptyId, "target": "c"])
            #expect(allMissing.status == 422 && allMissing.errorField == "target", "\(allMissing.text)")

            // A run.
            let start = try await api.call(.post, "/api/process/builder", token: user.token,
                                           json: ["dataset_id": id, "target": "target", "time_budget": "40s"])
            #expect(start.status == 202, "\(start.text)")
            let runId = try #require(start.json["id"] as? String)
            let run = try await waitForRun(api, user.token, runId)
            #expect(run.json["state"] as? String == "completed", "\(run.text.prefix(500))")
            #expect(run.json["task"] as? String == "multiclass")
            let leaderboard = try #require(run.json["leaderboard"] as? [[String: Any]])
            #expect(leaderboard.count >= 3 && leaderboard.filter { $0["best"] as? Bool == true }.count == 1)
            // Every candidate was a cluster job of the run's owner; the MLP and the GBDT ran on both nodes.
            let candidateJobs = try #require(run.json["jobs"] as? [String: String], "\(run.text.prefix(500))")
            #expect(Set(candidateJobs.keys) == Set(leaderboard.compactMap { $0["model"] as? String }.filter { $0 != "WeightedEnsemble" }))
            for (name, jobId) in candidateJobs {
                let job = try await api.call(.get, "/api/process/jobs/\(jobId)", token: user.token)
                #expect(job.status == 200 && job.json["state"] as? String == "completed", "\(name): \(job.text.prefix(400))")
                #expect((job.json["spec"] as? [String: Any])?["model"] as? String == "builder")
                // watched for hung collectives like any job
                #expect((job.json["spec"] as? [String: Any])?["stall_timeout_seconds"] as? Int == 45, "\(job.text.prefix(400))")
                let nodes = job.json["nodes"] as? [String] ?? []
                #expect(name == "LogisticRegression" ? nodes.count == 1 : nodes.count == 2, "\(name) ran on \(nodes)")
                let row = try #require(leaderboard.first { $0["model"] as? String == name })
                #expect((row["params"] as? [String: String])?["job"] == jobId)
            }
            // The user's job list pages through them in the database (state filter, limit, offset, total).
            let completed = try await api.call(.get, "/api/process/jobs?state=completed&limit=1&offset=1", token: user.token)
            #expect(completed.json["total"] as? Int == candidateJobs.count, "\(completed.text.prefix(300))")
            let listed = try #require(completed.json["jobs"] as? [[String: Any]])
            #expect(listed.count == 1 && candidateJobs.values.contains(listed[0]["id"] as? String ?? ""))
            #expect((try await api.call(.get, "/api/process/jobs?state=running", token: user.token)).json["total"] as? Int == 0)
            for name in ["NeuralNetMLP", "GBDT"] {
                let row = try #require(leaderboard.first { $0["model"] as? String == name })
                #expect((row["params"] as? [String: String])?["ranks"]?.hasPrefix("2") == true, "\(row)")
            }
            // Users cannot submit builder jobs themselves.
            let direct = try await api.call(.post, "/api/process/jobs", token: user.token,
                                            json: ["dataset_id": id, "target": "target", "model": "builder"])
            #expect(direct.status == 422 && direct.errorMessage.contains("nebula build"), "\(direct.text)")

            let best = try #require(run.json["best"] as? [String: Any])
            let accuracy = try #require((best["metrics"] as? [String: Any])?["accuracy"] as? Double)
            #expect(accuracy >= 0.99 - 0.05, "\(run.text.prefix(800))")

            // The report renders with every section, and each SVG parses.
            let report = try await api.call(.get, "/api/process/builder/\(runId)/report", token: user.token)
            #expect(report.status == 200 && report.headers["Content-Type"]?.hasPrefix("text/html") == true)
            for section in ["dataset", "task", "leaderboard", "learning-curves", "confusion-matrix", "feature-importance"] {
                #expect(report.text.contains("<section id=\"\(section)\">"), "section \(section)")
            }
            var svgs = 0
            var rest = Substring(report.text)
            while let s = rest.range(of: "<svg "), let e = rest.range(of: "</svg>", range: s.upperBound..<rest.endIndex) {
                let parser = XMLParser(data: Data(String(rest[s.lowerBound..<e.upperBound]).utf8))
                #expect(parser.parse(), "an SVG does not parse")
                svgs += 1
                rest = rest[e.upperBound...]
            }
            #expect(svgs >= 4)
            let file = try await api.call(.get, "/api/download/reports/\(runId)", token: user.token)
            #expect(file.status == 200 && file.headers["Content-Disposition"]?.contains("report.html") == true)

            // The model downloads; predictions on the held-back rows match the run's own evaluation.
            let model = try await api.call(.get, "/api/download/models/\(runId)", token: user.token)
            #expect(model.status == 200 && model.text.contains("\"nebula-model\""))
            let rows = try #require(run.json["validation_rows"] as? Int)
            let result = try #require(try await resultRows(cluster, runId))
            let csvText = try String(contentsOf: Self.data.appendingPathComponent("sklearn_wine.csv"), encoding: .utf8)
            var lines = csvText.split(separator: "\n").map(String.init)
            let header = lines.removeFirst()
            let heldBack = ([header] + result.map { lines[$0] }).joined(separator: "\n")
            let predicted = try await api.call(.post, "/api/process/models/\(runId)/predict", token: user.token,
                                               body: Data(heldBack.utf8), headers: ["Content-Type": "text/csv"])
            #expect(predicted.status == 200 && predicted.headers["X-Predicted-Rows"] == "\(rows)", "\(predicted.text.prefix(300))")
            let out = predicted.text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            let targetIndex = try #require(out[0].firstIndex(of: "target")), predictionIndex = try #require(out[0].firstIndex(of: "prediction"))
            let correct = out.dropFirst().filter { $0[targetIndex] == $0[predictionIndex] }.count
            #expect(abs(Double(correct) / Double(rows) - accuracy) < 1e-9, "\(correct)/\(rows) vs \(accuracy)")

            // Wrong columns are named; another user sees nothing.
            let wrong = try await api.call(.post, "/api/process/models/\(runId)/predict", token: user.token,
                                           body: Data("alcohol,malic_acid\n1,2\n".utf8), headers: ["Content-Type": "text/csv"])
            #expect(wrong.status == 422 && wrong.errorMessage.contains("ash"), "\(wrong.text)")
            let other = try await api.register("other@example.org")
            for path in ["/api/process/builder/\(runId)", "/api/process/builder/\(runId)/report", "/api/download/models/\(runId)"] {
                #expect(try await api.call(.get, path, token: other.token).status == 404, "\(path)")
            }
            #expect(try await api.call(.post, "/api/process/models/\(runId)/predict", token: other.token,
                                       body: Data(heldBack.utf8), headers: ["Content-Type": "text/csv"]).status == 404)

            // The CLI: nebula build --json and nebula predict, with the admin token, on an admin dataset.
            let iris = Self.data.appendingPathComponent("sklearn_iris.csv").path
            let ds = try cluster.cli(["dataset", "upload", iris, "--name", "iris"])
            #expect(ds.status == 0, "\(ds.stderr)")
            let dsId = ds.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let built = try cluster.cli(["build", "--dataset", dsId, "--target", "target", "--time-budget", "30s", "--json"])
            #expect(built.status == 0, "\(built.stderr)")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any])
            #expect(object["task"] as? String == "multiclass" && (object["leaderboard"] as? [Any])?.count ?? 0 >= 3)
            #expect((object["best"] as? [String: Any])?["metrics"] != nil)
            let cliRun = try #require(object["id"] as? String)
            let predictions = try cluster.cli(["predict", "--model", cliRun, iris])
            #expect(predictions.status == 0, "\(predictions.stderr)")
            #expect(predictions.stdout.split(separator: "\n").count == 151 && predictions.stdout.contains("probability_"))
            let bad = try cluster.cli(["predict", "--model", cliRun, Self.data.appendingPathComponent("sklearn_wine.csv").path])
            #expect(bad.status != 0 && bad.stderr.contains("sepal length (cm)"), "\(bad.stderr)")
            // a finished run shown again, and listed with its best model (the admin sees every user's runs)
            let shown = try cluster.cli(["build", "--show", cliRun])
            #expect(shown.status == 0 && shown.stdout.contains("run \(cliRun): multiclass") && shown.stdout.contains("SCORE_VAL"),
                    "\(shown.stdout) \(shown.stderr)")
            let runs = try cluster.cli(["builds"]).stdout
            let line = try #require(runs.split(separator: "\n").map(String.init).first { $0.hasPrefix(cliRun) }, "\(runs)")
            #expect(line.contains("completed") && line.contains(dsId) && line.contains("multiclass") && line.contains("accuracy 0."), "\(line)")
            #expect(runs.contains(runId), "the other user's run is listed for the admin: \(runs)")
        }
    }

    /// An image-folder dataset (the digits as 8×8 grey PNGs in one folder per class, plus two files that
    /// are not readable images): the builder decodes them into a pixel table of the admin's, a CNN
    /// joins the candidates, the unreadable files are named in the notes, and the accuracy is the
    /// pixel CSV's.
    @Test func imageFoldersTrainOnTheirPixels() async throws {
        try await withTestCluster(agents: ["node-a", "node-b"]) { cluster in
            let root = cluster.dir.appendingPathComponent("digit-images")
            let text = try String(contentsOf: Self.data.appendingPathComponent("sklearn_digits_8x8.csv"), encoding: .utf8)
            var lines = text.split(separator: "\n").map(String.init)
            let header = lines.removeFirst().split(separator: ",").map(String.init)
            let labelIndex = try #require(header.firstIndex(of: "label"))
            for (i, line) in lines.enumerated() {
                let fields = line.split(separator: ",").map(String.init)
                let pixels = fields.enumerated().filter { $0.offset != labelIndex }.map { UInt8(min(255, (Double($0.element) ?? 0) * 16)) }
                let folder = root.appendingPathComponent(fields[labelIndex])
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                try Data(greyPNG(width: 8, height: 8, pixels: pixels)).write(to: folder.appendingPathComponent("\(i).png"))
            }
            // a PNG whose data is cut short, and a progressive-JPEG header: both are left out, with their reasons
            let sample = greyPNG(width: 8, height: 8, pixels: [UInt8](repeating: 9, count: 64))
            try Data(sample.prefix(sample.count - 20)).write(to: root.appendingPathComponent("3/broken.png"))
            try Data([0xFF, 0xD8, 0xFF, 0xC2, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]).write(to: root.appendingPathComponent("5/progressive.jpg"))

            let up = try cluster.cli(["dataset", "upload", root.path, "--name", "digit-images"])
            #expect(up.status == 0, "\(up.stderr)")
            let dataset = up.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let refused = try cluster.cli(["build", "--dataset", dataset, "--target", "path"])
            #expect(refused.status != 0 && refused.stderr.contains("'label'"), "\(refused.stderr)")
            let built = try cluster.cli(["build", "--dataset", dataset, "--target", "label", "--time-budget", "60s", "--json"])
            #expect(built.status == 0, "\(built.stderr)")
            let run = try #require(try JSONSerialization.jsonObject(with: Data(built.stdout.utf8)) as? [String: Any])
            let leaderboard = try #require(run["leaderboard"] as? [[String: Any]])
            #expect(leaderboard.contains { $0["model"] as? String == "CNN" }, "\(leaderboard.map { $0["model"] ?? "" })")
            let accuracy = try #require(((run["best"] as? [String: Any])?["metrics"] as? [String: Any])?["accuracy"] as? Double)
            #expect(accuracy >= 0.972 - 0.01, "\(accuracy)")
            let notes = (run["notes"] as? [String] ?? []).joined(separator: "\n")
            #expect(notes.contains("1797 images were decoded to 8×8 grey pixels") && notes.contains("2 images could not be read")
                    && notes.contains("broken.png") && notes.contains("progressive"), "\(notes)")
            #expect(run["rows"] as? Int == 1797)
            #expect((run["image_input"] as? [String: Any])?["side"] as? Int == 8)
            // importance per image patch: a 4×4 grid of 2×2-pixel blocks
            let importance = run["permutation_importance"] as? [[String]] ?? []
            #expect(importance.count == 16 && importance.allSatisfy { $0[0].hasPrefix("pixels y ") }, "\(importance)")
            // the pixel table is a dataset of its own
            let list = try cluster.cli(["dataset", "list"])
            #expect(list.stdout.contains("digit-images (8x8 grey pixels)"), "\(list.stdout)")

            // The model predicts image files: folders through the CLI (one multipart request) ...
            let runId = try #require(run["id"] as? String)
            let some = [root.appendingPathComponent("0").path, root.appendingPathComponent("7").path]
            let predicted = try cluster.cli(["predict", "--model", runId] + some)
            #expect(predicted.status == 0, "\(predicted.stderr)")
            let rows = predicted.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: ",") }
            let expectedCount = try some.map { try FileManager.default.contentsOfDirectory(atPath: $0).count }.reduce(0, +)
            #expect(rows.count == expectedCount && predicted.stdout.hasPrefix("file,prediction,probability_0"))
            // names keep their folder (here: the true class)
            let right = rows.filter { r in r[0].split(separator: "/").first == r[1] }.count
            #expect(Double(right) / Double(max(1, rows.count)) >= 0.95, "\(right) of \(rows.count)")
            // a directory whose images sit in subfolders (the folders are walked, not read as files)
            let nested = cluster.dir.appendingPathComponent("nested/deeper")
            try FileManager.default.createDirectory(at: nested, withIntermediateDirectories: true)
            try Data(sample).write(to: nested.appendingPathComponent("nine.png"))
            let walked = try cluster.cli(["predict", "--model", runId, cluster.dir.appendingPathComponent("nested").path])
            #expect(walked.status == 0 && walked.stdout.contains("nested/deeper/nine.png,"), "\(walked.stderr)")
            // ... one image as image/png over the API, and a broken one refused with its name
            let api = APIClient(base: cluster.httpBase)
            let one = try Data(contentsOf: root.appendingPathComponent("7").appendingPathComponent(
                try #require(try FileManager.default.contentsOfDirectory(atPath: some[1]).first)))
            let single = try await api.call(.post, "/api/process/models/\(runId)/predict?name=seven.png", token: cluster.adminToken,
                                            body: one, headers: ["Content-Type": "image/png"])
            #expect(single.status == 200 && single.text.contains("seven.png,7,"), "\(single.text)")
            let broken = try await api.call(.post, "/api/process/models/\(runId)/predict?name=bad.png", token: cluster.adminToken,
                                            body: Data(sample.prefix(30)), headers: ["Content-Type": "image/png"])
            #expect(broken.status == 422 && broken.errorMessage.contains("bad.png"), "\(broken.text)")
        }
    }

    /// A candidate trained over two nodes whose rank 1 stops (SIGSTOP) is ended by the coordinator's
    /// hang watchdog like any job: the job fails naming the rank, the run completes with the other
    /// candidates and names the failed one in its notes.
    @Test func aStalledCandidateRankIsEndedAndTheRunGoesOn() async throws {
        try await withTestCluster(coordinatorFlags: ["--builder-distributed-rows", "100", "--builder-stall-timeout", "5s"],
                                  agents: ["node-a", "node-b"]) { cluster in
            let (api, user, id) = try await userWithDataset(cluster, "stall@example.org", "sklearn_digits_8x8.csv")
            let start = try await api.call(.post, "/api/process/builder", token: user.token,
                                           json: ["dataset_id": id, "target": "label", "time_budget": "60s"])
            let runId = try #require(start.json["id"] as? String, "\(start.text)")
            // the CNN (the slowest candidate) as soon as its second rank runs
            var jobId = ""
            var pid: Int32 = 0
            try await eventually("the CNN candidate runs on two ranks", timeout: .seconds(300), poll: .milliseconds(100),
                                 context: { cluster.logs() }) {
                let jobs = (try await api.call(.get, "/api/process/builder/\(runId)", token: user.token)).json["jobs"] as? [String: String]
                guard let cnn = jobs?["CNN"] else { return false }
                jobId = cnn
                let r = try cluster.cli(["job", "show", cnn, "--json"])
                guard r.status == 0, let job = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
                      job["state"] as? String == "running",
                      let rank = (job["ranks"] as? [[String: Any]])?.first(where: { $0["rank"] as? Int == 1 }),
                      let p = rank["pid"] as? Int, p > 0 else { return false }
                pid = Int32(p)
                return true
            }
            #expect(kill(pid, SIGSTOP) == 0)
            defer { kill(pid, SIGCONT) }
            let run = try await waitForRun(api, user.token, runId)
            #expect(run.json["state"] as? String == "completed", "\(run.text.prefix(600))")
            let job = try await api.call(.get, "/api/process/jobs/\(jobId)", token: user.token)
            #expect(job.json["state"] as? String == "failed", "\(job.text.prefix(400))")
            #expect((job.json["reason"] as? String ?? "").contains("hang: rank 1"), "\(job.text.prefix(400))")
            let notes = (run.json["notes"] as? [String] ?? []).joined(separator: "\n")
            #expect(notes.contains("CNN (job \(jobId)) failed"), "\(notes)")
            let models = (run.json["leaderboard"] as? [[String: Any]] ?? []).compactMap { $0["model"] as? String }
            #expect(!models.contains("CNN") && models.contains("NeuralNetMLP"), "\(models)")
        }
    }

    /// With no node to take its candidate jobs, a run does not wait forever: the jobs are cancelled after
    /// --builder-queue-timeout and the run fails saying why; the coordinator keeps serving.
    @Test func candidatesNoNodeTakesAreCancelled() async throws {
        try await withTestCluster(coordinatorFlags: ["--builder-queue-timeout", "2s"]) { cluster in
            let (api, user, id) = try await userWithDataset(cluster, "queue@example.org", "sklearn_iris.csv")
            let start = try await api.call(.post, "/api/process/builder", token: user.token,
                                           json: ["dataset_id": id, "target": "target", "time_budget": "30s"])
            #expect(start.status == 202, "\(start.text)")
            let runId = try #require(start.json["id"] as? String)
            let run = try await waitForRun(api, user.token, runId)
            #expect(run.json["state"] as? String == "failed")
            let error = run.json["error"] as? String ?? ""
            #expect(error.contains("no candidate was trained") && error.contains("no node took"), "\(error)")
            let jobs = try #require(run.json["jobs"] as? [String: String])
            #expect(jobs.count == 3, "\(jobs)")
            for jobId in jobs.values {
                let job = try await api.call(.get, "/api/process/jobs/\(jobId)", token: user.token)
                #expect(job.json["state"] as? String == "cancelled", "\(job.text.prefix(300))")
            }
            #expect(try await api.call(.get, "/readyz").status == 200)
        }
    }

    /// Cancelling: a queued run ends CANCELLED at once; a running one (its candidates pending: no agents)
    /// stops with its candidate jobs cancelled — here through `nebula build --cancel`; a finished run
    /// cannot be cancelled (409), another user's run is not found (404), and the CLI refuses --cancel
    /// with --dataset.
    @Test func queuedAndRunningRunsCancel() async throws {
        try await withTestCluster { cluster in
            let (api, user, id) = try await userWithDataset(cluster, "cancel@example.org", "sklearn_iris.csv")
            func start() async throws -> String {
                let r = try await api.call(.post, "/api/process/builder", token: user.token,
                                           json: ["dataset_id": id, "target": "target", "time_budget": "30s"])
                return try #require(r.json["id"] as? String, "\(r.text)")
            }
            let running = try await start()
            let queued = try await start()
            try await eventually("the first run waits for its candidates", timeout: .seconds(120)) {
                let jobs = (try await api.call(.get, "/api/process/builder/\(running)", token: user.token)).json["jobs"] as? [String: String]
                return jobs?.count == 3
            }
            #expect((try await api.call(.get, "/api/process/builder/\(queued)", token: user.token)).json["state"] as? String == "queued")

            let other = try await api.register("someone-else@example.org")
            let foreign = try await api.call(.post, "/api/process/builder/\(queued)/cancel", token: other.token)
            #expect(foreign.status == 404, "\(foreign.text)")

            let cancelQueued = try await api.call(.post, "/api/process/builder/\(queued)/cancel", token: user.token)
            #expect(cancelQueued.status == 202 && cancelQueued.json["state"] as? String == "cancelled", "\(cancelQueued.text)")
            #expect((cancelQueued.json["error"] as? String ?? "").hasPrefix("cancelled: by"), "\(cancelQueued.text)")

            let cli = try cluster.cli(["build", "--cancel", running])
            #expect(cli.status == 0, "\(cli.stderr)")
            #expect(cli.stdout.contains("run \(running) cancelled") && cli.stdout.contains("candidate jobs:"), "\(cli.stdout)")
            let run = try await api.call(.get, "/api/process/builder/\(running)", token: user.token)
            #expect(run.json["state"] as? String == "cancelled", "\(run.text.prefix(400))")
            let jobs = try #require(run.json["jobs"] as? [String: String])
            for jobId in jobs.values {
                let job = try await api.call(.get, "/api/process/jobs/\(jobId)", token: user.token)
                #expect(job.json["state"] as? String == "cancelled" && (job.json["reason"] as? String ?? "").contains("was cancelled"),
                        "\(job.text.prefix(300))")
            }
            let again = try await api.call(.post, "/api/process/builder/\(running)/cancel", token: user.token)
            #expect(again.status == 409 && again.errorMessage.contains("already cancelled"), "\(again.text)")
            let report = try await api.call(.get, "/api/process/builder/\(running)/report", token: user.token)
            #expect(report.status == 409 && report.errorMessage.contains("cancelled"), "\(report.text)")
            let finished = try cluster.cli(["build", "--cancel", running])
            #expect(finished.status == 1 && finished.stderr.contains("already cancelled"), "\(finished.stderr)")
            let mixed = try cluster.cli(["build", "--cancel", running, "--dataset", id])
            #expect(mixed.status == 64 || mixed.status == 2, "\(mixed.status) \(mixed.stderr)")
            let shown = try cluster.cli(["build", "--show", queued])
            #expect(shown.status == 0 && shown.stdout.contains("run \(queued) cancelled: cancelled: by"), "\(shown.stdout)")
            let listed = try cluster.cli(["builds", "--csv"])
            #expect(listed.stdout.hasPrefix("RUN,STATE,DATASET,TARGET,TASK,BEST,SCORE,CREATED"), "\(listed.stdout)")
            #expect(listed.stdout.contains("\(queued),cancelled,\(id),target,-,-,-,") && listed.stdout.contains("\(running),cancelled"),
                    "\(listed.stdout)")
            // the service goes on: a new run is taken at once
            let next = try await start()
            try await eventually("the next run starts", timeout: .seconds(120)) {
                (try await api.call(.get, "/api/process/builder/\(next)", token: user.token)).json["state"] as? String == "running"
            }
            // an ended run can be deleted; a running one must be cancelled first
            let deleted = try await api.call(.delete, "/api/process/builder/\(queued)", token: user.token)
            #expect(deleted.status == 204, "\(deleted.text)")
            #expect((try await api.call(.get, "/api/process/builder/\(queued)", token: user.token)).status == 404)
            let busy = try await api.call(.delete, "/api/process/builder/\(next)", token: user.token)
            #expect(busy.status == 409 && busy.errorMessage.contains("cancel it first"), "\(busy.text)")
            // deleting the account takes the runs with it: the running one is cancelled, its jobs too
            let nextJobs = try await api.call(.get, "/api/process/builder/\(next)", token: user.token).json["jobs"] as? [String: String] ?? [:]
            let gone = try await api.call(.delete, "/api/users/me", token: user.token, json: ["password": "member-password-1"])
            #expect(gone.status == 204, "\(gone.text)")
            for run in [running, next] {
                let r = try await api.call(.get, "/api/process/builder/\(run)", token: cluster.adminToken)
                #expect(r.status == 404, "\(run): \(r.text.prefix(200))")
            }
            let runs = try cluster.cli(["builds"]).stdout
            #expect(!runs.contains(next) && !runs.contains(running), "\(runs)")
            for jobId in nextJobs.values {
                try await eventually("job \(jobId) of the deleted account ends", timeout: .seconds(120)) {
                    let state = try await api.call(.get, "/api/process/jobs/\(jobId)", token: cluster.adminToken).json["state"] as? String
                    return state == nil || state == "cancelled"
                }
            }
        }
    }

    /// Candidates that wait in the queue past the run's deadline train for the floor of their share,
    /// not the whole share (Note [Candidate budgets and the run's deadline]): no node for longer than
    /// the 8 s budget, then two agents join; the run completes and the jobs' logs say why their
    /// budgets were cut.
    @Test func candidatesStartedAfterTheDeadlineTrainBriefly() async throws {
        try await withTestCluster { cluster in
            let (api, user, id) = try await userWithDataset(cluster, "deadline@example.org", "sklearn_wine.csv")
            let start = try await api.call(.post, "/api/process/builder", token: user.token,
                                           json: ["dataset_id": id, "target": "target", "time_budget": "8s"])
            let runId = try #require(start.json["id"] as? String, "\(start.text)")
            var jobs: [String: String] = [:]
            try await eventually("the candidate jobs are submitted", timeout: .seconds(120)) {
                jobs = (try await api.call(.get, "/api/process/builder/\(runId)", token: user.token)).json["jobs"] as? [String: String] ?? [:]
                return jobs.count == 3
            }
            try await Task.sleep(for: .seconds(9))
            for name in ["node-a", "node-b"] { try cluster.startAgent(name) }
            let run = try await waitForRun(api, user.token, runId)
            #expect(run.json["state"] as? String == "completed", "\(run.text.prefix(500))")
            let mlp = try #require(jobs["NeuralNetMLP"])
            // the ranks' log records reach the coordinator in batches from the agent, maybe after the run ended
            var logs = ""
            try await eventually("the MLP job's log says its budget was cut", timeout: .seconds(120), context: { logs }) {
                logs = try cluster.cli(["job", "logs", mlp, "--limit", "500"]).stdout
                return logs.contains("the run's deadline is near")
            }
        }
    }

    /// A coordinator killed during a run: on restart the run is failed with that reason and its candidate
    /// jobs (pending here: no agents) are cancelled, not left to train for nobody.
    @Test func interruptedRunCancelsItsJobs() async throws {
        try await withTestCluster { cluster in
            let (api, user, id) = try await userWithDataset(cluster, "restart@example.org", "sklearn_wine.csv")
            let start = try await api.call(.post, "/api/process/builder", token: user.token, json: ["dataset_id": id, "target": "target"])
            let runId = try #require(start.json["id"] as? String, "\(start.text)")
            var jobs: [String: String] = [:]
            try await eventually("the candidate jobs are submitted", timeout: .seconds(60)) {
                jobs = (try await api.call(.get, "/api/process/builder/\(runId)", token: user.token)).json["jobs"] as? [String: String] ?? [:]
                return jobs.count == 3
            }
            cluster.coordinator?.killHard()
            try cluster.startCoordinator()
            try await eventually("the HTTP API answers again", timeout: .seconds(60)) { (try? await api.call(.get, "/healthz"))?.status == 200 }
            let run = try await api.call(.get, "/api/process/builder/\(runId)", token: user.token)
            #expect(run.json["state"] as? String == "failed" && (run.json["error"] as? String ?? "").contains("coordinator stopped"), "\(run.text.prefix(400))")
            for jobId in jobs.values {
                let job = try await api.call(.get, "/api/process/jobs/\(jobId)", token: user.token)
                #expect(job.json["state"] as? String == "cancelled" && (job.json["reason"] as? String ?? "").contains("interrupted"),
                        "\(job.text.prefix(300))")
            }
        }
    }

    /// The validation row numbers of a run, read from PostgreSQL's copy of its result.
    func resultRows(_ cluster: TestCluster, _ runId: String) async throws -> [Int]? {
        let db = PostgresClient(url: cluster.databaseURL, logger: .init(label: "test.builder"))
        defer { Task { await db.close() } }
        let text = try await db.query("SELECT result->>'validation_row_numbers' AS v FROM builder_runs WHERE id = $1", [.text(runId)])
            .first?.string("v") ?? "[]"
        return try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [Int]
    }
}

/// A grey 8-bit PNG written by hand: IHDR, one IDAT of stored (uncompressed) deflate blocks, IEND.
func greyPNG(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    func crc(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        }
        return c ^ 0xFFFF_FFFF
    }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc(body))
    }
    var raw: [UInt8] = []
    for y in 0..<height { raw.append(0); raw += pixels[y * width..<(y + 1) * width] }
    var a: UInt32 = 1, b: UInt32 = 0
    for v in raw { a = (a + UInt32(v)) % 65521; b = (b + a) % 65521 }
    var zlib: [UInt8] = [0x78, 0x01]
    var offset = 0
    repeat {
        let n = min(65535, raw.count - offset)
        let last: UInt8 = offset + n == raw.count ? 1 : 0
        zlib += [last, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
        zlib += raw[offset..<offset + n]
        offset += n
    } while offset < raw.count
    zlib += be32(b << 16 | a)
    let ihdr = be32(UInt32(width)) + be32(UInt32(height)) + [8, 0, 0, 0, 0]
    return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", zlib) + chunk("IEND", [])
}
