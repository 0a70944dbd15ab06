import Foundation
import Logging
import NebulaDataset
import NebulaModel
import NebulaNode
import NebulaRPC
import NebulaWire
import Synchronization
import Testing

/// Datasets end to end: the `nebula` CLI uploads to a real coordinator process (with a real
/// PostgreSQL), which converts, profiles, detects tasks, cuts shards and streams them to a node-side
/// cache over gRPC.
@Suite("Datasets through the coordinator", .enabled(if: IntegrationEnvironment.enabled), .serialized)
struct DatasetServiceTests {
    static let data = IntegrationEnvironment.root.appendingPathComponent("Tests/Data")

    /// A cluster with its own database; `body` runs with the coordinator up.
    func withCluster(_ extraFlags: [String] = [], _ body: (TestCluster) async throws -> Void) async throws {
        try await withTestCluster(coordinatorFlags: extraFlags, body)
    }

    func json(_ r: CLIResult) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            throw HarnessError("not a JSON object: \(r.stdout)")
        }
        return object
    }

    func upload(_ cluster: TestCluster, _ args: [String]) throws -> (CLIResult, String) {
        let r = try cluster.cli(["dataset", "upload"] + args)
        return (r, r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    @Test func uploadProfileDetectShardAndDelete() async throws {
        try await withCluster { cluster in
            let (r, id) = try upload(cluster, [Self.data.appendingPathComponent("sklearn_iris.csv").path, "--name", "iris"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(id.hasPrefix("ds-"))
            #expect(r.stderr.contains("ready"), "progress and summary go to stderr: \(r.stderr)")

            let list = try cluster.cli(["dataset", "list", "--json"])
            let datasets = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            #expect(datasets.count == 1)
            #expect(datasets.first?["dataset_id"] as? String == id)
            #expect(datasets.first?["state"] as? String == "ready")
            #expect(datasets.first?["rows"] as? Int == 150)

            let show = try json(try cluster.cli(["dataset", "show", id, "--target", "target", "--json"]))
            let profile = try #require(show["profile"] as? [String: Any])
            #expect(profile["rows"] as? Int == 150)
            let columns = try #require(profile["columnProfiles"] as? [[String: Any]])
            #expect(columns.count == 5)
            let sepal = try #require(columns.first)
            #expect(sepal["type"] as? String == "float")
            #expect(abs((sepal["mean"] as? Double ?? 0) - 5.8433) < 1e-3)
            let task = try #require(show["task"] as? [String: Any])
            #expect(task["task"] as? String == "multiclass")
            #expect((task["reason"] as? String ?? "").contains("3"))

            let table = try cluster.cli(["dataset", "show", id, "--target", "target"])
            #expect(table.stdout.contains("TASK      multiclass"), "\(table.stdout)")
            #expect(table.stdout.contains("sepal length (cm)"))

            // shards for 2 ranks, stratified: 75 rows each, 25 of each class each
            let manifest = try json(try cluster.cli(["dataset", "shards", id, "--count", "2", "--stratify", "target", "--json"]))
            let shards = try #require(manifest["shards"] as? [[String: Any]])
            #expect(shards.map { $0["rows"] as? Int } == [75, 75])
            // asking again gives the same shards (cut once)
            let again = try json(try cluster.cli(["dataset", "shards", id, "--count", "2", "--stratify", "target", "--json"]))
            #expect((again["shards"] as? [[String: Any]])?.map { $0["sha256"] as? String } == shards.map { $0["sha256"] as? String })

            // a node-side cache fetches them over gRPC; the files open and hold the classes balanced
            let channel = try cluster.adminChannel()
            defer { channel.close() }
            let cache = try ShardCache(directory: cluster.dir.appendingPathComponent("cache").path, logger: Logger(label: "test"))
            var labels: [[String: Int]] = []
            for entry in shards {
                let e = ShardEntry(index: entry["index"] as? Int ?? -1, rows: UInt64(entry["rows"] as? Int ?? 0),
                                   bytes: UInt64(entry["bytes"] as? Int ?? 0), sha256: entry["sha256"] as? String ?? "")
                let fetched = try await cache.fetch(e, of: id, over: channel)
                #expect(!fetched.cached)
                let shard = try ColumnarDataset(path: fetched.path)
                #expect(shard.rowCount == 75)
                let target = try shard.column("target")
                labels.append(Dictionary((0..<shard.rowCount).map { (target.string($0) ?? "?", 1) }, uniquingKeysWith: +))
                // the second fetch comes from the cache
                #expect(try await cache.fetch(e, of: id, over: channel).cached)
            }
            #expect(labels.allSatisfy { $0.values.sorted() == [25, 25, 25] }, "\(labels)")

            // show lists the shard set; delete removes everything
            let shown = try json(try cluster.cli(["dataset", "show", id, "--json"]))
            #expect((shown["shard_sets"] as? [[String: Any]])?.count == 1)
            let deleted = try cluster.cli(["dataset", "delete", id])
            #expect(deleted.status == 0, "\(deleted.stderr)")
            let empty = try JSONSerialization.jsonObject(with: Data(try cluster.cli(["dataset", "list", "--json"]).stdout.utf8))
            #expect((empty as? [Any])?.isEmpty == true)
            let gone = try cluster.cli(["dataset", "show", id])
            #expect(gone.status == 2)
            #expect(gone.stderr.contains("no dataset '\(id)'"))
            let directory = cluster.dir.appendingPathComponent("coordinator/datasets/\(id)").path
            #expect(!FileManager.default.fileExists(atPath: directory))
        }
    }

    @Test func badInputsGetClearErrorsAndTheServiceKeepsRunning() async throws {
        try await withCluster(["--max-upload", "1M"]) { cluster in
            let dir = cluster.dir
            // binary content
            let binary = dir.appendingPathComponent("blob.bin").path
            _ = FileManager.default.createFile(atPath: binary, contents: Data((0..<4096).map { UInt8($0 % 251) }))
            let (b, bid) = try upload(cluster, [binary])
            #expect(b.status == 1)
            #expect(b.stderr.contains("not a CSV, text or ZIP file"), "\(b.stderr)")
            let failed = try json(try cluster.cli(["dataset", "show", bid, "--json"]))
            #expect((failed["dataset"] as? [String: Any])?["state"] as? String == "failed")

            // a malformed CSV names file, line and column; --skip-bad-rows counts instead
            let bad = dir.appendingPathComponent("bad.csv").path
            try "a,b\n1,2\n3,\"x\"y\n5,6\n".write(toFile: bad, atomically: true, encoding: .utf8)
            let (m, _) = try upload(cluster, [bad])
            #expect(m.status == 1)
            #expect(m.stderr.contains("bad.csv:3:"), "\(m.stderr)")
            let (s, sid) = try upload(cluster, [bad, "--skip-bad-rows"])
            #expect(s.status == 0, "\(s.stderr)")
            let skipped = try json(try cluster.cli(["dataset", "show", sid, "--json"]))
            #expect((skipped["report"] as? [String: Any]).flatMap { ($0["ingest"] as? [String: Any])?["badRows"] as? Int } == 1)
            #expect((skipped["dataset"] as? [String: Any])?["rows"] as? Int == 2)

            // too large for --max-upload: refused before anything is stored
            let big = dir.appendingPathComponent("big.csv").path
            try String(repeating: "1,2,3\n", count: 200_000).write(toFile: big, atomically: true, encoding: .utf8)
            let (l, _) = try upload(cluster, [big])
            #expect(l.status != 0)
            #expect(l.stderr.contains("more than this coordinator accepts"), "\(l.stderr)")

            // an empty file and a missing file: the CLI says so without calling
            let empty = dir.appendingPathComponent("empty.csv").path
            _ = FileManager.default.createFile(atPath: empty, contents: Data())
            #expect(try upload(cluster, [empty]).0.stderr.contains("empty"))
            #expect(try upload(cluster, [dir.appendingPathComponent("nope.csv").path]).0.stderr.contains("no such file"))

            // a ZIP with a path-traversal entry fails with the reason
            let zip = try makeZipWithPython(dir, entries: ["../evil.csv": "a,b\n1,2\n"])
            let (z, _) = try upload(cluster, [zip])
            #expect(z.status == 1)
            #expect(z.stderr.contains("evil.csv"), "\(z.stderr)")

            // task detection errors
            let (_, good) = try upload(cluster, [Self.data.appendingPathComponent("sklearn_wine.csv").path])
            let unknown = try cluster.cli(["dataset", "show", good, "--target", "nope"])
            #expect(unknown.status == 2)
            #expect(unknown.stderr.contains("nope"), "\(unknown.stderr)")
            let shardsTooMany = try cluster.cli(["dataset", "shards", good, "--count", "100000"])
            #expect(shardsTooMany.status == 2)
            #expect(shardsTooMany.stderr.contains("at most 178"), "\(shardsTooMany.stderr)")
            let floatStratify = try cluster.cli(["dataset", "shards", good, "--count", "2", "--stratify", "alcohol"])
            #expect(floatStratify.status == 2, "\(floatStratify.stderr)")

            // the service still answers, and every failure is listed with its reason
            let list = try cluster.cli(["dataset", "list", "--json"])
            let all = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
            #expect(all.filter { $0["state"] as? String == "ready" }.count == 2)
            #expect(all.filter { $0["state"] as? String == "failed" }.allSatisfy { !($0["error"] as? String ?? "").isEmpty })
        }
    }

    @Test func foldersTextAndArchivesBecomeTables() async throws {
        try await withCluster { cluster in
            let dir = cluster.dir
            // a ZIP of image class folders (train/ and test/ splits): train is used
            var entries: [String: String] = [:]
            for split in ["train", "test"] {
                for label in ["cat", "dog"] {
                    for i in 0..<(split == "train" ? 6 : 2) { entries["\(split)/\(label)/\(i).png"] = pngBase64 }
                }
            }
            let zip = try makeZipWithPython(dir, entries: entries)
            let (r, id) = try upload(cluster, [zip])
            #expect(r.status == 0, "\(r.stderr)")
            let images = try json(try cluster.cli(["dataset", "show", id, "--target", "label", "--json"]))
            let info = try #require(images["dataset"] as? [String: Any])
            #expect(info["kind"] as? String == "image-folders")
            #expect(info["rows"] as? Int == 12)
            let task = try #require(images["task"] as? [String: Any])
            #expect(task["modality"] as? String == "image")
            #expect(task["task"] as? String == "binary")

            // a directory of text class folders
            let textRoot = dir.appendingPathComponent("reviews")
            for (label, words) in [("pos", "good great fine"), ("neg", "bad awful poor"), ("mixed", "so so, \"fine\"")] {
                let folder = textRoot.appendingPathComponent(label)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for i in 0..<5 { try "\(words) review number \(i)\nsecond line".write(to: folder.appendingPathComponent("\(i).txt"),
                                                                                    atomically: true, encoding: .utf8) }
            }
            let (t, tid) = try upload(cluster, [textRoot.path])
            #expect(t.status == 0, "\(t.stderr)")
            let text = try json(try cluster.cli(["dataset", "show", tid, "--target", "label", "--json"]))
            #expect((text["dataset"] as? [String: Any])?["kind"] as? String == "text-folders")
            #expect((text["dataset"] as? [String: Any])?["rows"] as? Int == 15)
            #expect((text["task"] as? [String: Any])?["task"] as? String == "multiclass")

            // a plain text file: one document per line
            let lines = dir.appendingPathComponent("notes.txt").path
            try "first note here\n\nsecond note, with a comma\nthird \"quoted\" note\n".write(toFile: lines, atomically: true, encoding: .utf8)
            let p = try cluster.cli(["dataset", "upload", lines, "--json"])
            #expect(p.status == 0, "\(p.stderr)")
            let uploaded = try json(p)
            #expect(uploaded["state"] as? String == "ready")
            #expect((uploaded["created_unix_ms"] as? Int ?? 0) > 1_700_000_000_000)
            let pid = try #require(uploaded["dataset_id"] as? String)
            let plain = try json(try cluster.cli(["dataset", "show", pid, "--json"]))
            #expect((plain["dataset"] as? [String: Any])?["kind"] as? String == "text")
            #expect((plain["dataset"] as? [String: Any])?["rows"] as? Int == 3)

            // a ZIP with COCO annotations is recognised as object detection
            let coco = #"{"images":[{"id":1,"file_name":"a.jpg"}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[0,0,1,1]}],"categories":[{"id":1,"name":"cat"}]}"#
            let cocoZip = try makeZipWithPython(dir, entries: ["annotations.json": coco, "images/a.jpg": jpegBase64])
            let (c, cid) = try upload(cluster, [cocoZip])
            #expect(c.status == 0, "\(c.stderr)")
            let detection = try json(try cluster.cli(["dataset", "show", cid, "--target", "label", "--json"]))
            #expect((detection["dataset"] as? [String: Any])?["kind"] as? String == "object-detection")
            #expect((detection["task"] as? [String: Any])?["task"] as? String == "object-detection")
            let noShards = try cluster.cli(["dataset", "shards", cid, "--count", "1"])
            #expect(noShards.status != 0)
            #expect(noShards.stderr.contains("no table to shard"), "\(noShards.stderr)")
        }
    }

    @Test func kaggleImportThroughALocalKaggleLikeServer() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("kaggle-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let zip = try makeZipWithPython(scratch, entries: ["train.csv": "x,y\n1,a\n2,b\n3,a\n4,b\n", "test.csv": "x\n5\n"])
        let server = try KaggleLikeServer(zip: zip, directory: scratch)
        defer { server.stop() }
        let credentials = scratch.appendingPathComponent("kaggle.json").path
        try #"{"username":"alice","key":"s3cret"}"#.write(toFile: credentials, atomically: true, encoding: .utf8)
        chmod(credentials, 0o600)
        try await withCluster(["--kaggle-url", "http://127.0.0.1:\(server.port)", "--kaggle-credentials", credentials]) { cluster in
            let (r, id) = try upload(cluster, ["kaggle:owner/slug"])
            #expect(r.status == 0, "\(r.stderr)")
            let shown = try json(try cluster.cli(["dataset", "show", id, "--json"]))
            let info = try #require(shown["dataset"] as? [String: Any])
            #expect(info["rows"] as? Int == 4)
            #expect(info["source"] as? String == "kaggle:owner/slug")
            let notes = (shown["report"] as? [String: Any])?["notes"] as? [String] ?? []
            #expect(notes.contains { $0.contains("test.csv") }, "the other table is named: \(notes)")
            // a dataset Kaggle does not have: the download error is the reason
            let (missing, _) = try upload(cluster, ["kaggle:owner/missing"])
            #expect(missing.status == 1)
            #expect(missing.stderr.lowercased().contains("not found"), "\(missing.stderr)")
            let malformed = try cluster.cli(["dataset", "upload", "kaggle:only-owner"])
            #expect(malformed.status == 2, "\(malformed.stderr)")
        }
    }

    /// A shard transfer cut by a coordinator crash resumes from the bytes already on the node. The
    /// coordinator sends at most 2 MB/s per stream (--shard-bandwidth): unthrottled, a loaded machine
    /// could have the whole shard in the client's buffers before the kill, and nothing would break.
    @Test func shardTransferResumesAfterTheCoordinatorDies() async throws {
        try await withCluster(["--shard-bandwidth", "2M/s"]) { cluster in
            // ~6 MB of columnar data in one shard
            let csv = cluster.dir.appendingPathComponent("wide.csv").path
            var text = "a,b,c,d\n"
            for i in 0..<200_000 { text += "\(i),\(Double(i) * 0.5),\(Double(i % 977) / 3),\(i % 13)\n" }
            try text.write(toFile: csv, atomically: true, encoding: .utf8)
            let (r, id) = try upload(cluster, [csv])
            #expect(r.status == 0, "\(r.stderr)")
            let manifest = try json(try cluster.cli(["dataset", "shards", id, "--count", "1", "--json"]))
            let entry = try #require((manifest["shards"] as? [[String: Any]])?.first)
            let shard = ShardEntry(index: 0, rows: UInt64(entry["rows"] as? Int ?? 0), bytes: UInt64(entry["bytes"] as? Int ?? 0),
                                   sha256: entry["sha256"] as? String ?? "")
            #expect(shard.bytes > 4 << 20)

            let channel = try cluster.adminChannel()
            defer { channel.close() }
            let cache = try ShardCache(directory: cluster.dir.appendingPathComponent("cache").path, logger: Logger(label: "test"))
            let killed = Flag()
            let restartError = Mutex<String?>(nil)
            let fetched: ShardCache.Fetch
            do {
                fetched = try await cache.fetch(shard, of: id, over: channel, chunkBytes: 64 << 10) { done, _ in
                    // after the first chunk: the coordinator dies mid-stream and comes back
                    if !killed.value, done > 0 {
                        killed.value = true
                        cluster.coordinator?.killHard()
                        do { try cluster.startCoordinator() } catch { restartError.withLock { $0 = "\(error)" } }
                    }
                }
            } catch {
                // what the coordinators said, so a failure on a loaded machine can be read afterwards
                Issue.record("the fetch failed: \(error); restart: \(restartError.withLock { $0 } ?? "ok")\n\(cluster.logs())")
                throw error
            }
            #expect(killed.value)
            #expect(fetched.attempts >= 2, "the broken stream was retried")
            #expect(fetched.bytesReceived == shard.bytes, "no byte was sent twice")
            let dataset = try ColumnarDataset(path: fetched.path)
            #expect(dataset.rowCount == 200_000)
            #expect(try dataset.column("b").double(199_999) == 99_999.5)

            // a partial file left by an earlier process is resumed, not restarted
            let partial = cache.directory + "/partial/" + shard.sha256 + ".part"
            let half = Int(shard.bytes / 2)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: fetched.path))
            try FileManager.default.removeItem(atPath: fetched.path)
            try bytes.prefix(half).write(to: URL(fileURLWithPath: partial))
            try await cluster.waitForCoordinator()
            let resumed = try await cache.fetch(shard, of: id, over: channel)
            #expect(resumed.resumedFrom == UInt64(half))
            #expect(resumed.bytesReceived == shard.bytes - UInt64(half))
            #expect(try Data(contentsOf: URL(fileURLWithPath: resumed.path)) == bytes)

            // a corrupted partial file is detected by the checksum and fetched again
            try FileManager.default.removeItem(atPath: resumed.path)
            var corrupt = bytes.prefix(half)
            corrupt[corrupt.startIndex + 100] ^= 0xFF
            try corrupt.write(to: URL(fileURLWithPath: partial))
            let repaired = try await cache.fetch(shard, of: id, over: channel)
            #expect(try Data(contentsOf: URL(fileURLWithPath: repaired.path)) == bytes)

            // an unknown checksum is refused clearly
            let bogus = ShardEntry(index: 0, rows: 1, bytes: 10, sha256: String(repeating: "ab", count: 32))
            await #expect(throws: RPCStatus.self) { try await cache.fetch(bogus, of: id, over: channel) }
        }
    }
}

final class Flag: @unchecked Sendable {
    // Thread-safety: set and read from one test task.
    var value = false
}

extension TestCluster {
    func adminChannel() throws -> RPCChannel {
        try RPCChannel(configuration: .init(target: target, metadata: .bearer(adminToken)))
    }

    /// Waits until the coordinator answers `nebula health`.
    func waitForCoordinator() async throws {
        try await eventually("the coordinator answers", timeout: .seconds(60), context: { self.logs() }) {
            try self.cli(["health", "--json"]).status == 0
        }
    }
}

/// The first bytes of a PNG and of a JPEG (what the layout classifier sniffs), for `makeZipWithPython`.
let pngBase64 = "b64:" + Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13]).base64EncodedString()
let jpegBase64 = "b64:" + Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 0x4A, 0x46, 0x49, 0x46, 0]).base64EncodedString()

/// Writes a ZIP with Python's zipfile (names are stored as given, so hostile names are possible);
/// a value starting with "b64:" is binary content in base64.
func makeZipWithPython(_ dir: URL, entries: [String: String]) throws -> String {
    let out = dir.appendingPathComponent("z-\(UUID().uuidString.prefix(8)).zip").path
    let spec = dir.appendingPathComponent("z-\(UUID().uuidString.prefix(8)).json")
    try JSONSerialization.data(withJSONObject: entries).write(to: spec)
    let script = """
        import base64, json, sys, zipfile
        entries = json.load(open(sys.argv[1]))
        with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
            for name in sorted(entries):
                v = entries[name]
                z.writestr(name, base64.b64decode(v[4:]) if v.startswith("b64:") else v)
        """
    let r = try runCaptured(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, spec.path, out])
    guard r.status == 0 else { throw HarnessError("python zipfile failed: \(r.stderr)") }
    return out
}

/// Kaggle's download endpoint as documented: Basic auth, a ZIP for owner/slug, 404 JSON otherwise.
final class KaggleLikeServer: @unchecked Sendable {
    let port: Int
    private let process: Process
    private let stdin = Pipe()

    init(zip: String, directory: URL) throws {
        let script = directory.appendingPathComponent("kaggle.py").path
        try #"""
            import base64, http.server, json, sys, threading
            ZIP = sys.argv[1]
            EXPECTED = "Basic " + base64.b64encode(b"alice:s3cret").decode()
            class H(http.server.BaseHTTPRequestHandler):
                def log_message(self, *a): pass
                def reply(self, status, body, ctype):
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def do_GET(self):
                    if self.headers.get("Authorization") != EXPECTED:
                        return self.reply(401, b'{"code":401,"message":"Unauthenticated"}', "application/json")
                    if self.path.split("?")[0] == "/api/v1/datasets/download/owner/slug":
                        return self.reply(200, open(ZIP, "rb").read(), "application/zip")
                    self.reply(404, b'{"code":404,"message":"Not found"}', "application/json")
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
            print("PORT", server.server_address[1], flush=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            sys.stdin.read()
            """#.write(toFile: script, atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", script, zip]
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = stdout.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("PORT "), let port = Int(text.dropFirst(5)) else {
            process.terminate()
            throw HarnessError("the Kaggle-like server did not start: '\(text)'")
        }
        self.port = port
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }
}
