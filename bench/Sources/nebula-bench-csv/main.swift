// Driver of bench/csv-ingest.sh: ingests one CSV into a dataset file with its profile and prints
// one JSON line (seconds, MB/s, rows, peak RSS) plus, with --describe, the describe()-like numbers
// the reference tools compute, so the outputs can be compared.
import Foundation
import NebulaDataset

func argument(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

guard let csv = argument("--csv"), let out = argument("--out") else {
    FileHandle.standardError.write(Data("usage: nebula-bench-csv --csv FILE --out FILE [--threads N] [--chunk-mb M] [--describe] [--profile-json FILE]\n".utf8))
    exit(2)
}
var options = CSVIngestOptions()
if let t = argument("--threads").flatMap(Int.init) { options.threads = t }
if let m = argument("--chunk-mb").flatMap(Double.init) { options.chunkSize = Int(m * 1_048_576) }
let start = Date()
do {
    let report = try CSVIngest.ingest(csv: csv, to: out, options: options)
    let seconds = Date().timeIntervalSince(start)
    let mb = Double(report.profile.bytes) / 1e6
    var line: [String: Any] = [
        "kind": "csv", "tool": "nebula", "threads": options.threads, "file_mb": (mb * 10).rounded() / 10,
        "total_s": (seconds * 1000).rounded() / 1000, "total_mb_per_s": (mb / seconds * 10).rounded() / 10,
        "rows": report.rows, "restarts": report.restarts, "bad_rows": report.badRows,
        "chunks": report.chunks, "reparsed_chunks": report.reparsedChunks,
        "sniff_s": (report.timings.sniff * 1000).rounded() / 1000, "parse_s": (report.timings.parse * 1000).rounded() / 1000,
        "assemble_s": (report.timings.assemble * 1000).rounded() / 1000,
        "loadavg_1m": (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first.flatMap { Double($0) } ?? -1,
    ]
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let hwm = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    {
        line["peak_rss_mb"] = (Double(hwm.filter(\.isNumber)) ?? 0) / 1024
    }
    if CommandLine.arguments.contains("--describe") {
        var describe: [String: Any] = [:]
        for p in report.profile.columnProfiles {
            func number(_ v: Double?) -> Any { v.map { $0.isFinite ? $0 as Any : String($0) } ?? NSNull() }
            describe[p.name] = ["type": p.type.rawValue, "count": p.count, "mean": number(p.mean), "std": number(p.std),
                                "min": number(p.min), "q25": number(p.q25), "q50": number(p.q50), "q75": number(p.q75),
                                "max": number(p.max), "distinct": p.distinct, "quantiles_exact": p.quantilesExact ?? false]
        }
        line["describe"] = describe
    }
    if let path = argument("--profile-json") {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try encoder.encode(report).write(to: URL(fileURLWithPath: path))
    }
    let data = try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("nebula-bench-csv: \(error)\n".utf8))
    exit(1)
}
