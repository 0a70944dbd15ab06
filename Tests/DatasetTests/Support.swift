import Foundation
import NebulaDataset

/// A scratch directory per test, removed by the caller.
struct Scratch {
    let directory: String

    init() {
        directory = NSTemporaryDirectory() + "nebula-dataset-tests-" + UUID().uuidString
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { directory + "/" + name }

    func write(_ name: String, _ text: String) -> String { write(name, Array(text.utf8)) }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let p = path(name)
        _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
        return p
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

/// Options that force many chunks and threads so records cross chunk and thread boundaries.
func tinyChunks(_ size: Int = 64, threads: Int = 4) -> CSVIngestOptions {
    var o = CSVIngestOptions()
    o.chunkSize = size
    o.threads = threads
    return o
}

/// Ingests CSV text and returns the report and the opened dataset.
func ingest(_ text: String, options: CSVIngestOptions = CSVIngestOptions(), scratch: Scratch) throws
    -> (IngestReport, ColumnarDataset)
{
    let csv = scratch.write("in-\(UUID().uuidString).csv", text)
    let out = scratch.path("out-\(UUID().uuidString).nbds")
    let report = try CSVIngest.ingest(csv: csv, to: out, options: options)
    return (report, try ColumnarDataset(path: out))
}

func strings(_ d: ColumnarDataset, _ name: String) throws -> [String?] {
    let c = try d.column(name)
    return (0..<c.count).map { c.string($0) }
}

let dataDirectory: String = {
    // Tests/DatasetTests/Support.swift → Tests/Data
    let here = URL(fileURLWithPath: #filePath)
    return here.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Data").path
}()
