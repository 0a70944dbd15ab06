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

@Suite("Bounded memory")
struct BoundedMemoryTests {
    /// Runs the driver in a child process (its VmHWM is not mixed with the parallel tests') and
    /// returns its peak RSS in MB.
    func peakRSS(_ csv: String, _ out: String, chunkMB: String) throws -> (Double, Int) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: benchDriver!)
        p.arguments = ["--csv", csv, "--out", out, "--threads", "2", "--chunk-mb", chunkMB]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (try #require(json["peak_rss_mb"] as? Double), try #require(json["rows"] as? Int))
    }

    /// ~200 MB of CSV through 1 MB chunks: the peak RSS grows by a few chunk windows, not by the
    /// file size.
    @Test(.enabled(if: benchDriver != nil, "nebula-bench-csv is built with the package"), .timeLimit(.minutes(3)))
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
        let (baseline, _) = try peakRSS(tiny, s.path("tiny.nbds"), chunkMB: "1")
        let (peak, n) = try peakRSS(csv, s.path("big.nbds"), chunkMB: "1")
        #expect(n == rows * copies)
        #expect(peak - baseline < 64, "peak RSS \(peak) MB, baseline \(baseline) MB, file \(size) MB")
        #expect(peak < size / 2)
    }
}
