import ArgumentParser
import Foundation
import NebulaCommon
import NebulaModel
import NebulaRPC
import NebulaWire

struct Dataset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload, list, inspect, shard and delete datasets.",
        discussion: """
            A dataset is converted once on the coordinator into a columnar file and profiled; training jobs \
            read shards of it. Accepted: CSV/TSV tables, text files (one document per line), ZIP archives \
            (a table, class folders of images or of text files, COCO JSON with images), directories of the \
            same, and Kaggle datasets (kaggle:OWNER/SLUG, with the coordinator's Kaggle credentials).
            """,
        subcommands: [Upload.self, List.self, Show.self, Shards.self, Delete.self])

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Upload a file or directory (or import kaggle:OWNER/SLUG) and print the new dataset id.",
            discussion: """
                Progress goes to stderr; stdout gets only the id (or the JSON with --json), so \
                `id=$(nebula dataset upload data.csv)` works. Waits until the conversion is done unless --no-wait.
                """)
        @Argument(help: "A file, a directory, or kaggle:OWNER/SLUG[@VERSION].") var source: String
        @Option(help: "Display name (default: the file or directory name).") var name: String?
        @Flag(help: "CSV: skip and count malformed rows instead of failing on the first.") var skipBadRows = false
        @Flag(help: "Return once the bytes are uploaded; do not wait for the conversion.") var noWait = false
        @Flag(name: .shortAndLong, help: "No progress output.") var quiet = false
        @Option(help: "Bytes per upload message.") var chunkBytes = 1 << 20
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Print the dataset as JSON.") var json = false

        func run() async throws {
            guard chunkBytes >= 1024, chunkBytes <= 4 << 20 else { throw ValidationError("--chunk-bytes must be between 1024 and 4194304") }
            let progress = ProgressBar(enabled: !quiet)
            let plan: UploadPlan? = source.hasPrefix("kaggle:") ? nil : try UploadPlan(path: source, name: name ?? "",
                                                                                        skipBadRows: skipBadRows)
            try await withCoordinator(connection) { channel, r in
                var info: DatasetInfo
                if let plan {
                    info = try await plan.send(over: channel, chunkBytes: chunkBytes, progress: progress)
                } else {
                    info = try await channel.unary(DatasetServicePath.importDataset,
                                                   DatasetImportRequest(source: source, name: name ?? ""),
                                                   as: DatasetInfo.self, timeout: r.timeout)
                }
                if !noWait {
                    info = try await watch(info.datasetId, over: channel, progress: progress)
                }
                progress.finish()
                if json {
                    write(try encodeJSON(info))
                } else {
                    write(info.datasetId + "\n")
                    if info.state == .ready {
                        note("dataset \(info.datasetId) '\(info.name)' is ready: \(info.kind.rawValue), \(info.rows) rows, \(info.columns) columns")
                    } else if info.state == .ingesting {
                        note("dataset \(info.datasetId) uploaded; converting on the coordinator (nebula dataset show \(info.datasetId))")
                    }
                }
                if info.state == .failed {
                    note("error: dataset \(info.datasetId) could not be converted: \(info.error)")
                    throw ExitCode(1)
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List datasets, newest first.")
        @Option(help: "How many.") var limit = 100
        @Option(help: "Skip this many.") var offset = 0
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: FormatOptions

        func run() async throws {
            let format = try output.format()
            guard limit > 0, offset >= 0 else { throw ValidationError("--limit must be > 0 and --offset >= 0") }
            try await withCoordinator(connection) { channel, r in
                let list = try await channel.unary(DatasetServicePath.listDatasets,
                                                   DatasetListRequest(limit: limit, offset: offset), as: DatasetList.self,
                                                   timeout: r.timeout)
                switch format {
                case .table: write(DatasetsView.table(list.datasets, now: nowUnixMs()).render())
                case .csv: write(DatasetsView.table(list.datasets, now: nowUnixMs()).csv())
                case .json: write(try encodeJSON(list.datasets))
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A dataset's profile (types, missing, distinct, statistics, top values); with --target, its task.")
        @Argument(help: "Dataset id.") var id: String
        @Option(help: "Target column: also detect the task (binary, multiclass, regression; text or image).") var target: String?
        @Option(help: "Use this task instead of the detected one: binary, multiclass or regression.") var task: String?
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: FormatOptions

        func run() async throws {
            let format = try output.format()
            try await withCoordinator(connection) { channel, r in
                let detail = try await channel.unary(DatasetServicePath.getDataset,
                                                     DatasetRequest(datasetId: id, target: target ?? "", taskOverride: task ?? ""),
                                                     as: DatasetDetail.self, timeout: r.timeout)
                switch format {
                case .table: write(DatasetsView.text(detail))
                case .csv: write(DatasetsView.profileTable(detail).csv())
                case .json: write(try DatasetsView.json(detail))
                }
            }
        }
    }

    struct Shards: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cut (or show) the shards of a dataset for a world size.",
            discussion: "Shards are cut once per (count, seed, stratify column) and cached on the coordinator.")
        @Argument(help: "Dataset id.") var id: String
        @Option(help: "Number of shards (the world size).") var count: Int
        @Option(help: "Shuffle seed.") var seed: UInt64 = 0
        @Option(help: "Keep the classes of this column balanced across shards.") var stratify: String?
        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var output: FormatOptions

        func run() async throws {
            let format = try output.format()
            guard count >= 1 else { throw ValidationError("--count must be at least 1") }
            try await withCoordinator(connection) { channel, _ in
                let manifest = try await channel.unary(
                    ShardServicePath.getShardManifest,
                    ShardManifestRequest(datasetId: id, count: count, seed: seed, stratifyBy: stratify ?? ""),
                    as: ShardManifest.self, timeout: .seconds(3600))
                let table = TextTable(header: ["INDEX", "ROWS", "BYTES", "SHA256"],
                                      rows: manifest.shards.map { ["\($0.index)", "\($0.rows)", "\($0.bytes)", $0.sha256] })
                switch format {
                case .table: write(table.render())
                case .csv: write(table.csv())
                case .json: write(try encodeJSON(manifest))
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a dataset, its files and its shards.")
        @Argument(help: "Dataset id.") var id: String
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Print the deleted dataset as JSON.") var json = false

        func run() async throws {
            try await withCoordinator(connection) { channel, r in
                let info = try await channel.unary(DatasetServicePath.deleteDataset, DatasetRequest(datasetId: id),
                                                   as: DatasetInfo.self, timeout: r.timeout)
                if json { write(try encodeJSON(info)) } else { write("deleted \(info.datasetId) (\(info.name))\n") }
            }
        }
    }
}

/// Follows a conversion until it ends; returns the final state.
func watch(_ id: String, over channel: RPCChannel, progress: ProgressBar) async throws -> DatasetInfo {
    var last: DatasetInfo?
    for try await p in try channel.serverStreaming(DatasetServicePath.watchDataset, DatasetRequest(datasetId: id),
                                                   as: DatasetProgress.self) {
        last = p.info
        progress.update(p.phase, fraction: p.fraction)
        if p.info.state.isFinal { break }
    }
    guard let last else { throw RPCStatus(.internal, "the coordinator sent no progress for \(id)") }
    return last
}

/// What to send for an upload: one file, or the regular files of a directory (sorted).
struct UploadPlan {
    struct File {
        var path: String
        var relative: String
        var size: UInt64
    }
    let header: UploadHeader
    let files: [File]

    init(path: String, name: String, skipBadRows: Bool) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(path): no such file or directory")
        }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let baseName = url.lastPathComponent
        if isDirectory.boolValue {
            var files: [File] = []
            guard let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey, .isSymbolicLinkKey, .fileSizeKey]) else {
                throw ValidationError("\(path): cannot list the directory")
            }
            let prefix = url.path.count + 1
            var skipped = 0
            while let item = walker.nextObject() as? URL {
                let values = try item.resourceValues(forKeys: [.isRegularFileKey, .isSymbolicLinkKey, .fileSizeKey])
                if values.isSymbolicLink == true { skipped += 1; continue }
                guard values.isRegularFile == true else { continue }
                files.append(File(path: item.path, relative: String(item.standardizedFileURL.path.dropFirst(prefix)),
                                  size: UInt64(values.fileSize ?? 0)))
            }
            if skipped > 0 { note("note: \(skipped) symbolic links left out of the upload") }
            guard !files.isEmpty else { throw ValidationError("\(path): the directory has no files") }
            files.sort { $0.relative < $1.relative }
            self.files = files
            header = UploadHeader(name: name, fileName: baseName, directory: true, totalBytes: files.reduce(0) { $0 + $1.size },
                                  fileCount: files.count, skipBadRows: skipBadRows)
        } else {
            guard FileManager.default.isReadableFile(atPath: path) else { throw ValidationError("\(path): not readable") }
            let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value ?? 0
            guard size > 0 else { throw ValidationError("\(path) is empty: nothing to upload") }
            files = [File(path: path, relative: baseName, size: size)]
            header = UploadHeader(name: name, fileName: baseName, totalBytes: size, skipBadRows: skipBadRows)
        }
    }

    func send(over channel: RPCChannel, chunkBytes: Int, progress: ProgressBar) async throws -> DatasetInfo {
        let stream = try channel.clientStreaming(DatasetServicePath.upload)
        var sent: UInt64 = 0
        var first = true
        do {
            for file in files {
                guard let handle = FileHandle(forReadingAtPath: file.path) else { throw ValidationError("\(file.path): cannot open") }
                defer { try? handle.close() }
                var offset: UInt64 = 0
                repeat {
                    let data = try handle.read(upToCount: chunkBytes) ?? Data()
                    if data.isEmpty && offset > 0 { break }
                    try await stream.send(UploadChunk(header: first ? header : nil, path: header.directory ? file.relative : "",
                                                      offset: offset, data: [UInt8](data)))
                    first = false
                    offset += UInt64(data.count)
                    sent += UInt64(data.count)
                    progress.update("uploading", fraction: Double(sent) / Double(max(1, header.totalBytes)),
                                    detail: "\(humanBytes(sent)) / \(humanBytes(header.totalBytes))")
                    if data.isEmpty { break }
                } while true
                guard offset == file.size else {
                    throw ValidationError("\(file.path) changed while it was uploaded (\(offset) bytes read, \(file.size) expected)")
                }
            }
        } catch let error as RPCStatus {
            // the coordinator refused part way: the failed send already carries its final status (asking
            // for the status a second time with finish() would wait forever)
            stream.cancel()
            throw error
        } catch {
            stream.cancel()
            throw error
        }
        return try await stream.finish(as: DatasetInfo.self)
    }
}

/// One progress line on stderr, redrawn in place on a terminal, a line per quarter otherwise.
final class ProgressBar: @unchecked Sendable {
    // Thread-safety: used from the command's single task.
    private let enabled: Bool
    private let terminal = isatty(2) == 1
    private var lastPhase = ""
    private var lastQuarter = -1
    private var lastDraw = ContinuousClock.now - .seconds(1)
    private var drawn = false
    private let started = ContinuousClock.now

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ phase: String, fraction: Double, detail: String = "") {
        guard enabled else { return }
        let now = ContinuousClock.now
        if terminal {
            guard phase != lastPhase || fraction >= 1 || now - lastDraw >= .milliseconds(100) else { return }
            lastDraw = now
            let width = 30
            let bar: String
            if fraction >= 0 {
                let filled = Int((min(1, fraction) * Double(width)).rounded(.down))
                bar = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                    + String(format: "%3.0f%%", min(1, fraction) * 100)
            } else {
                bar = "[" + String(repeating: "?", count: width) + "]     "
            }
            let elapsed = now - started
            let line = "\(phase.padding(toLength: 11, withPad: " ", startingAt: 0)) \(bar) \(detail) \(elapsed.components.seconds)s"
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
            drawn = true
        } else {
            let quarter = fraction < 0 ? 0 : Int(min(1, fraction) * 4)
            guard phase != lastPhase || quarter > lastQuarter else { return }
            lastQuarter = quarter
            let percent = fraction < 0 ? "" : String(format: " %.0f%%", min(1, fraction) * 100)
            FileHandle.standardError.write(Data("\(phase)\(percent)\(detail.isEmpty ? "" : " (\(detail))")\n".utf8))
        }
        if phase != lastPhase { lastQuarter = fraction < 0 ? 0 : Int(min(1, fraction) * 4) }
        lastPhase = phase
    }

    func finish() {
        if enabled, terminal, drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
    }
}

func note(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

/// `nebula dataset list|show`.
public enum DatasetsView {
    public static func table(_ datasets: [DatasetInfo], now: Int64) -> TextTable {
        TextTable(header: ["ID", "NAME", "KIND", "STATE", "ROWS", "COLS", "SIZE", "CREATED"], rows: datasets.map { d in
            [d.datasetId, d.name, d.kind.rawValue, d.state.rawValue, "\(d.rows)", "\(d.columns)",
             humanBytes(d.storedBytes > 0 ? d.storedBytes : d.sourceBytes), ago(d.createdUnixMs, now: now)]
        })
    }

    static func object(_ json: String) -> Any? {
        guard !json.isEmpty else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(json.utf8))
    }

    static func number(_ v: Any?) -> String {
        guard let v = v as? NSNumber else { return (v as? String) ?? "" }
        let d = v.doubleValue
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return String(format: "%.4g", d)
    }

    public static func profileTable(_ detail: DatasetDetail) -> TextTable {
        let profile = object(detail.profileJSON) as? [String: Any]
        let columns = profile?["columnProfiles"] as? [[String: Any]] ?? []
        return TextTable(header: ["COLUMN", "TYPE", "COUNT", "MISSING", "DISTINCT", "MEAN", "STD", "MIN", "MEDIAN", "MAX", "TOP"],
                         rows: columns.map { c in
            let top = (c["topValues"] as? [[String: Any]] ?? []).prefix(3).map { "\($0["value"] ?? "")(\(number($0["count"])))" }
            let distinct = number(c["distinct"]) + ((c["distinctExact"] as? Bool) == false ? "~" : "")
            return [c["name"] as? String ?? "", c["type"] as? String ?? "", number(c["count"]), number(c["missing"]), distinct,
                    number(c["mean"]), number(c["std"]), number(c["min"]), number(c["q50"]), number(c["max"]),
                    top.joined(separator: " ")]
        })
    }

    public static func text(_ d: DatasetDetail) -> String {
        var out = ""
        func line(_ k: String, _ v: String) { out += k.padding(toLength: 10, withPad: " ", startingAt: 0) + v + "\n" }
        let i = d.info
        line("ID", i.datasetId)
        line("NAME", i.name)
        line("KIND", i.kind.rawValue)
        line("STATE", i.state.rawValue + (i.error.isEmpty ? "" : ": \(i.error)"))
        line("SOURCE", "\(i.source) (\(humanBytes(i.sourceBytes)))")
        line("ROWS", "\(i.rows)")
        line("COLUMNS", "\(i.columns)")
        line("STORED", humanBytes(i.storedBytes))
        line("CREATED", isoTime(i.createdUnixMs))
        if let report = object(d.reportJSON) as? [String: Any] {
            if let ingest = report["ingest"] as? [String: Any], let bad = ingest["badRows"] as? Int, bad > 0 {
                line("BAD ROWS", "\(bad) skipped, e.g. \((ingest["badRowSamples"] as? [String])?.first ?? "")")
            }
            for n in report["notes"] as? [String] ?? [] { line("NOTE", n) }
        }
        if let task = object(d.taskJSON) as? [String: Any] {
            let name = task["task"] as? String ?? "?"
            let modality = task["modality"] as? String ?? ""
            line("TARGET", task["target"] as? String ?? "")
            line("TASK", name + (modality.isEmpty || modality == "tabular" ? "" : " (\(modality))")
                + ((task["overridden"] as? Bool) == true ? " (given)" : ""))
            line("REASON", task["reason"] as? String ?? "")
        }
        for set in d.shardSets {
            line("SHARDS", "\(set.count) (seed \(set.seed)\(set.stratifyBy.isEmpty ? "" : ", stratified by \(set.stratifyBy)")): "
                + set.shards.map { "\($0.rows)" }.joined(separator: " / ") + " rows")
        }
        if !d.profileJSON.isEmpty { out += "\n" + profileTable(d).render() }
        return out
    }

    public static func json(_ d: DatasetDetail) throws -> String {
        var object: [String: Any] = [:]
        object["dataset"] = try JSONSerialization.jsonObject(with: Data(try encodeJSON(d.info).utf8))
        object["profile"] = self.object(d.profileJSON) ?? NSNull()
        object["report"] = self.object(d.reportJSON) ?? NSNull()
        object["task"] = self.object(d.taskJSON) ?? NSNull()
        object["shard_sets"] = try JSONSerialization.jsonObject(with: Data(try encodeJSON(d.shardSets).utf8))
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
