import Foundation
import NebulaDataset
import Testing

/// The driver executable built with the package (next to the test bundle), or nil.
private let benchDriver: String? = {
    let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for candidate in [dir, dir.deletingLastPathComponent()] {
        let p = candidate.appendingPathComponent("nebula-bench-csv").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}()

/// A memory cgroup (v1) with a hard limit, when this process may make one (root, controller
/// mounted); nil otherwise. Page cache counts against the limit too, as in a container.
final class MemoryBudget {
    let path: String
    let limit: Int

    init?(megabytes: Int) {
        let base = "/sys/fs/cgroup/memory"
        guard FileManager.default.isWritableFile(atPath: base) else { return nil }
        path = base + "/nebula-test-" + UUID().uuidString.prefix(8)
        limit = megabytes << 20
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            try String(limit).write(toFile: path + "/memory.limit_in_bytes", atomically: false, encoding: .utf8)
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            return nil
        }
    }

    func read(_ file: String) -> String { (try? String(contentsOfFile: path + "/" + file, encoding: .utf8)) ?? "" }
    var maxUsage: Int { Int(read("memory.max_usage_in_bytes").trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 }
    var oomKills: Int {
        read("memory.oom_control").split(separator: "\n").first { $0.hasPrefix("oom_kill ") }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }

    deinit { rmdir(path) }
}

@Suite("Bounded memory")
struct BoundedMemoryTests {
    /// Runs the driver in a child process (its VmHWM is not mixed with the parallel tests'), inside
    /// `budget` when given, and returns its peak RSS in MB and the rows it read.
    func run(_ csv: String, _ out: String, chunkMB: String, budget: MemoryBudget? = nil) throws -> (Double, Int) {
        let p = Process()
        let arguments = ["--csv", csv, "--out", out, "--threads", "2", "--chunk-mb", chunkMB]
        if let budget {
            // the shell joins the cgroup, then becomes the driver
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "echo $$ > \"$0\"/cgroup.procs && exec \"$@\"", budget.path, benchDriver!] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: benchDriver!)
            p.arguments = arguments
        }
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "the driver failed (status \(p.terminationStatus), killed by the budget: \(budget?.oomKills ?? 0))")
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (try #require(json["peak_rss_mb"] as? Double), try #require(json["rows"] as? Int))
    }

    /// ~200 MB of CSV through 1 MB chunks: the peak RSS grows by a few chunk windows, not by the
    /// file size; where a memory cgroup can be made, the ingest runs under a hard 48 MB budget
    /// (a quarter of the file; `bench/ingest-budget.sh` does 2 GB under 256 MB with the release build).
    @Test(.enabled(if: benchDriver != nil, "nebula-bench-csv is built with the package"), .timeLimit(.minutes(5)))
    func ingestOfALargeFileStaysSmall() throws {
        let s = Scratch()
        defer { s.remove() }
        var block = ""
        var rows = 0
        for i in 0..<10_000 {
            block += "\(i),\(Double(i % 997) * 0.125),\(Double(i) / 7),cat_\(i % 50),2020-01-\(10 + i % 20),note \(i % 300)\n"
            rows += 1
        }
        let blockBytes = Array(block.utf8)
        let csv = s.path("big.csv")
        _ = FileManager.default.createFile(atPath: csv, contents: Data("id,a,b,category,day,note\n".utf8))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: csv))
        handle.seekToEndOfFile()
        let copies = 200_000_000 / blockBytes.count
        for _ in 0..<copies { handle.write(Data(blockBytes)) }
        try handle.close()
        let size = Double(try FileManager.default.attributesOfItem(atPath: csv)[.size] as! Int) / 1_048_576
        let tiny = s.write("tiny.csv", "id,a\n1,2\n")
        let (baseline, _) = try run(tiny, s.path("tiny.nbds"), chunkMB: "1")
        let budget = MemoryBudget(megabytes: 48)
        let (peak, n) = try run(csv, s.path("big.nbds"), chunkMB: "1", budget: budget)
        #expect(n == rows * copies)
        #expect(peak - baseline < 64, "peak RSS \(peak) MB, baseline \(baseline) MB, file \(size) MB")
        #expect(peak < size / 2)
        if let budget {
            #expect(budget.oomKills == 0)
            #expect(budget.maxUsage <= budget.limit, "cgroup peak \(budget.maxUsage) bytes")
            #expect(Double(budget.limit) < size * 1_048_576 / 3)
        }
        // the file written under the budget is whole
        let dataset = try ColumnarDataset(path: s.path("big.nbds"), verify: .header)
        #expect(dataset.rowCount == rows * copies)
        #expect(try dataset.column("note").string(rows * copies - 1) == "note \((rows - 1) % 300)")
    }
}
