// Driver of bench/builder.sh: one ML-builder run in this process on a CSV (ingest, prepare, every
// candidate, ensemble, permutation importance) and one JSON line with the task, the leaderboard
// (score and fit time per candidate), the best model, the whole run's seconds, and the validation
// row numbers (to --rows-out), so the reference trains and scores on exactly the same split.
import Foundation
import NebulaBuilder
import NebulaDataset

func argument(_ name: String) -> String? {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

guard let csv = argument("--csv"), let target = argument("--target"), let scratch = argument("--scratch") else {
    FileHandle.standardError.write(Data("usage: nebula-bench-builder --csv FILE --target COL --scratch DIR [--budget SECONDS] [--rows-out FILE]\n".utf8))
    exit(2)
}
let budget = argument("--budget").flatMap(Double.init) ?? 60
do {
    let start = Date()
    let path = scratch + "/" + URL(fileURLWithPath: csv).lastPathComponent + ".nbds"
    _ = try CSVIngest.ingest(csv: csv, to: path)
    let ingested = Date()
    let (result, _) = try AutoBuilder.run(try ColumnarDataset(path: path), BuilderRequest(target: target, timeBudgetSeconds: budget))
    let seconds = Date().timeIntervalSince(ingested)
    if let out = argument("--rows-out") {
        try result.validationRowNumbers.map(String.init).joined(separator: "\n").write(toFile: out, atomically: true, encoding: .utf8)
    }
    let line: [String: Any] = [
        "tool": "nebula", "task": result.task, "metric": result.evalMetric, "best": result.bestModel,
        "score": result.leaderboard.first { $0.best }?.scoreVal ?? -1,
        "run_s": (seconds * 1000).rounded() / 1000, "ingest_s": (ingested.timeIntervalSince(start) * 1000).rounded() / 1000,
        "fit_s": (result.leaderboard.filter { $0.model != "WeightedEnsemble" }.map(\.fitTime).reduce(0, +) * 1000).rounded() / 1000,
        "candidates": result.leaderboard.map { ["model": $0.model, "score": $0.scoreVal, "fit_s": $0.fitTime] },
        "train_rows": result.trainRows, "validation_rows": result.validationRows,
    ]
    print(String(decoding: try JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]), as: UTF8.self))
} catch {
    FileHandle.standardError.write(Data("nebula-bench-builder: \(error)\n".utf8))
    exit(1)
}
