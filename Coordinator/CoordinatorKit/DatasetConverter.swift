import Foundation
import Logging
import NebulaArchive
import NebulaCommon
import NebulaDataset
import NebulaModel

/// Turns what was uploaded or downloaded (a CSV, a text file, a ZIP, a directory) into one columnar
/// file (Note [Dataset directory]). Folder datasets become tables too: images as (path, label),
/// text files as (text, label), a plain text file as (text) — so profiling, task detection and
/// sharding work the same for every kind.
struct DatasetConverter: Sendable {
    let directory: String
    let configuration: DatasetConfiguration
    let logger: Logger
    /// Phase name and fraction done (negative when unknown).
    let report: @Sendable (String, Double) -> Void

    struct Outcome: Sendable {
        var kind: DatasetKind
        var rows: Int
        var columns: Int
        var storedBytes: UInt64
        var sha256: String
        var columnarPath: String?
        var profileJSON: String
        var reportJSON: String
    }

    /// The document stored as a dataset's report.
    struct Report: Codable, Sendable {
        struct Ingest: Codable, Sendable {
            var delimiter: String
            var header: Bool
            var columns: [String]
            var types: [String]
            var rows: Int
            var badRows: Int
            var badRowSamples: [String]
            var widenings: [Widening]
            var chunks: Int
            var reparsedChunks: Int
            var restarts: Int
            var seconds: Double
        }
        struct Layout: Codable, Sendable {
            struct Table: Codable, Sendable { var path: String; var bytes: UInt64 }
            struct ClassSet: Codable, Sendable { var root: String; var classes: [String: Int] }
            struct COCO: Codable, Sendable { var path: String; var images: Int; var annotations: Int; var categories: [String] }
            var kind: String
            var files: Int
            var bytes: UInt64
            var tables: [Table]
            var imageClassSets: [ClassSet]
            var textClassSets: [ClassSet]
            var coco: [COCO]
        }
        var source: String
        var converted: String?
        var ingest: Ingest?
        var layout: Layout?
        var notes: [String]
    }

    /// `path` is the upload directory (holding `header.fileName`, or the files of a directory
    /// upload) or a downloaded archive.
    func convert(upload path: String, header: UploadHeader) async throws -> Outcome {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatasetError(.io, "the uploaded data is missing", path: path)
        }
        if header.directory {
            return try await convert(directory: path, source: header.fileName, skipBadRows: header.skipBadRows)
        }
        let file = isDirectory.boolValue ? path + "/" + header.fileName : path
        let head = try readHead(file)
        if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) {
            report("extracting", -1)
            let destination = directory + "/extracted"
            try? FileManager.default.removeItem(atPath: destination)
            let extracted = try await ZIPExtractor(limits: configuration.zipLimits).extract(archive: file, to: destination)
            logger.info("archive extracted", metadata: ["dataset.files": "\(extracted.files)", "dataset.bytes": "\(extracted.bytes)"])
            try? FileManager.default.removeItem(atPath: file)
            return try await convert(directory: destination, source: header.fileName, skipBadRows: header.skipBadRows)
        }
        switch FileSample.sniff(path: header.fileName, head: Data(head)) {
        case .csv:
            return try await table(csv: file, source: header.fileName, kind: .table, skipBadRows: header.skipBadRows,
                                   layout: nil, notes: [], removeAfter: [file])
        case .text:
            if looksDelimited(head) {
                return try await table(csv: file, source: header.fileName, kind: .table, skipBadRows: header.skipBadRows,
                                       layout: nil, notes: [], removeAfter: [file])
            }
            let csv = directory + "/table.csv"
            let lines = try TableWriter.linesToCSV(file, to: csv)
            return try await table(csv: csv, source: header.fileName, kind: .text, skipBadRows: false, layout: nil,
                                   notes: ["one document per line: \(lines) non-empty lines"], removeAfter: [csv, file],
                                   types: ["text": .text])
        case .png, .jpeg:
            throw DatasetError(.invalidArgument, """
                a single image is not a dataset: upload a ZIP or a directory with one folder of images per class \
                (e.g. train/cat/1.jpg, train/dog/2.jpg)
                """, path: header.fileName)
        case .coco, .json:
            throw DatasetError(.invalidArgument, """
                a JSON file alone is not a dataset: for object detection upload a ZIP holding the COCO JSON and its images
                """, path: header.fileName)
        case .other:
            throw DatasetError(.invalidArgument, """
                not a CSV, text or ZIP file (binary content); upload a CSV/TSV table, a text file, a ZIP or a directory
                """, path: header.fileName)
        }
    }

    private func convert(directory root: String, source: String, skipBadRows: Bool) async throws -> Outcome {
        report("classifying", -1)
        let layout = try DatasetLayout.classify(directory: root)
        let summary = Self.summary(layout)
        switch layout.kind {
        case .objectDetection:
            let coco = layout.cocoFiles[0]
            guard coco.summary.images > 0, !coco.summary.categories.isEmpty else {
                throw DatasetError(.invalidArgument, """
                    the COCO file \(coco.path) has \(coco.summary.images) images and \(coco.summary.categories.count) \
                    categories: a detection dataset needs both
                    """, path: source)
            }
            let imagesOnDisk = layout.files - layout.cocoFiles.count - layout.tables.count
            let report = Report(source: source, converted: nil, ingest: nil, layout: summary, notes: [
                "COCO object detection: \(coco.summary.images) images, \(coco.summary.annotations) annotations, "
                    + "\(coco.summary.categories.count) categories; \(imagesOnDisk) other files in the archive",
                "training on object-detection datasets is not supported yet; the dataset is validated and stored",
            ])
            return Outcome(kind: .objectDetection, rows: coco.summary.images, columns: 0, storedBytes: layout.bytes,
                           sha256: "", columnarPath: nil, profileJSON: "", reportJSON: try encodeCompactJSON(report))
        case .imageClassification:
            let set = Self.pick(layout.imageClassSets)
            let csv = directory + "/table.csv"
            let rows = try TableWriter.imageFoldersToCSV(root: root, set: set, relativeTo: directory, to: csv)
            var notes = ["image classification: \(set.classes.count) classes under '\(set.root.isEmpty ? "." : set.root)', \(rows) images"]
            if layout.imageClassSets.count > 1 {
                notes.append("other class-folder sets left out: \(layout.imageClassSets.filter { $0.root != set.root }.map(\.root).joined(separator: ", "))")
            }
            return try await table(csv: csv, source: source, kind: .imageFolders, skipBadRows: false, layout: summary,
                                   notes: notes, removeAfter: [csv], types: ["path": .text, "label": .categorical])
        case .textClassification:
            let set = Self.pick(layout.textClassSets)
            let csv = directory + "/table.csv"
            let rows = try TableWriter.textFoldersToCSV(root: root, set: set, to: csv)
            return try await table(csv: csv, source: source, kind: .textFolders, skipBadRows: false, layout: summary,
                                   notes: ["text classification: \(set.classes.count) classes, \(rows) documents"],
                                   removeAfter: [csv, root], types: ["text": .text, "label": .categorical])
        case .tabular:
            let chosen = Self.pickTable(layout.tables)
            var notes = ["table \(chosen.path) (\(humanBytes(chosen.bytes)))"]
            if layout.tables.count > 1 {
                notes.append("other tables left out: \(layout.tables.filter { $0.path != chosen.path }.map(\.path).joined(separator: ", ")) (upload one alone to use it)")
            }
            return try await table(csv: root + "/" + chosen.path, source: source, kind: .table, skipBadRows: skipBadRows,
                                   layout: summary, notes: notes, removeAfter: [root])
        case .unknown:
            throw DatasetError(.invalidArgument, """
                found no CSV table, no class folders of images or text files, and no COCO annotations among \
                \(layout.files) files; expected e.g. data.csv, or train/<class>/<file>.jpg, or annotations.json with images
                """, path: source)
        }
    }

    /// Prefers a set rooted at `train`, then the one with most files.
    static func pick(_ sets: [DatasetLayout.ClassFolderSet]) -> DatasetLayout.ClassFolderSet {
        if let train = sets.first(where: { ($0.root as NSString).lastPathComponent.lowercased() == "train" }) { return train }
        return sets.max { $0.classes.reduce(0) { $0 + $1.files } < $1.classes.reduce(0) { $0 + $1.files } }!
    }

    /// Prefers `train.csv`, then the largest table.
    static func pickTable(_ tables: [DatasetLayout.Table]) -> DatasetLayout.Table {
        if let train = tables.first(where: { ($0.path as NSString).lastPathComponent.lowercased().hasPrefix("train.") }) {
            return train
        }
        return tables.max { $0.bytes < $1.bytes }!
    }

    private func table(csv: String, source: String, kind: DatasetKind, skipBadRows: Bool, layout: Report.Layout?,
                       notes: [String], removeAfter: [String], types: [String: ColumnType] = [:]) async throws -> Outcome {
        var options = CSVIngestOptions()
        options.threads = configuration.ingestThreads
        options.skipBadRows = skipBadRows
        options.columnTypes = types
        let progress = report
        options.progress = { done, total in progress("converting", total > 0 ? Double(done) / Double(total) : -1) }
        let output = directory + "/data.nbds"
        report("converting", 0)
        let settings = options
        let ingest = try await runOnThread(name: "nebula.ingest") {
            try CSVIngest.ingest(csv: csv, to: output, options: settings)
        }
        for path in removeAfter { try? FileManager.default.removeItem(atPath: path) }
        if kind != .imageFolders { try? FileManager.default.removeItem(atPath: directory + "/upload") }
        let bytes = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? NSNumber)?.uint64Value ?? 0
        let reportDocument = Report(
            source: source, converted: (csv as NSString).lastPathComponent,
            ingest: .init(delimiter: String(UnicodeScalar(ingest.dialect.delimiter)), header: ingest.dialect.hasHeader,
                          columns: ingest.columnNames, types: ingest.types.map(\.rawValue), rows: ingest.rows,
                          badRows: ingest.badRows, badRowSamples: ingest.badRowSamples, widenings: ingest.widenings,
                          chunks: ingest.chunks, reparsedChunks: ingest.reparsedChunks, restarts: ingest.restarts,
                          seconds: ingest.timings.sniff + ingest.timings.parse + ingest.timings.assemble),
            layout: layout, notes: notes)
        return Outcome(kind: kind, rows: ingest.rows, columns: ingest.columnNames.count, storedBytes: bytes,
                       sha256: try Self.headerDigest(output), columnarPath: output,
                       profileJSON: try encodeCompactJSON(ingest.profile), reportJSON: try encodeCompactJSON(reportDocument))
    }

    /// The SHA-256 of a dataset file's header, stored in its preamble; the header holds every
    /// buffer's checksum, so this names the whole content.
    static func headerDigest(_ path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DatasetError(.io, "cannot open", path: path) }
        defer { try? handle.close() }
        try handle.seek(toOffset: 32)
        let digest = try handle.read(upToCount: 32) ?? Data()
        guard digest.count == 32 else { throw DatasetError(.corrupt, "dataset file too short", path: path) }
        return SHA256.hex([UInt8](digest))
    }

    private func readHead(_ path: String) throws -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw DatasetError(.io, "cannot open the upload", path: path) }
        defer { try? handle.close() }
        return [UInt8](try handle.read(upToCount: FileSample.headLength) ?? Data())
    }

    /// A `.txt` whose first lines split into the same number (> 1) of fields on `,` `;` tab or `|`
    /// is a table with an unusual extension.
    private func looksDelimited(_ head: [UInt8]) -> Bool {
        let lines = String(decoding: head, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).prefix(6)
        guard lines.count >= 2 else { return false }
        for d in [",", "\t", ";", "|"] {
            let counts = Set(lines.dropLast().map { $0.components(separatedBy: d).count })
            if counts.count == 1, let n = counts.first, n > 1 { return true }
        }
        return false
    }

    static func summary(_ layout: DatasetLayout) -> Report.Layout {
        func set(_ s: DatasetLayout.ClassFolderSet) -> Report.Layout.ClassSet {
            .init(root: s.root, classes: Dictionary(uniqueKeysWithValues: s.classes.map { ($0.name, $0.files) }))
        }
        return Report.Layout(kind: layout.kind.rawValue, files: layout.files, bytes: layout.bytes,
                             tables: layout.tables.map { .init(path: $0.path, bytes: $0.bytes) },
                             imageClassSets: layout.imageClassSets.map(set), textClassSets: layout.textClassSets.map(set),
                             coco: layout.cocoFiles.map { .init(path: $0.path, images: $0.summary.images,
                                                                annotations: $0.summary.annotations,
                                                                categories: $0.summary.categories) })
    }
}

/// Writes the CSV tables Nebula derives from folder and text datasets.
enum TableWriter {
    /// Largest text file of a text-folder dataset taken as one document.
    static let maxDocumentBytes = 4 << 20

    static func imageFoldersToCSV(root: String, set: DatasetLayout.ClassFolderSet, relativeTo base: String,
                                  to csv: String) throws -> Int {
        var out = CSVOut(path: csv)
        try out.row(["path", "label"])
        var rows = 0
        let setRoot = set.root.isEmpty ? root : root + "/" + set.root
        for cls in set.classes {
            for file in try files(in: setRoot + "/" + cls.name) {
                let head = try FileHandle(forReadingFrom: URL(fileURLWithPath: file)).read(upToCount: 16) ?? Data()
                let content = FileSample.sniff(path: file, head: head)
                guard content == .png || content == .jpeg else { continue }
                let relative = file.hasPrefix(base + "/") ? String(file.dropFirst(base.count + 1)) : file
                try out.row([relative, cls.name])
                rows += 1
            }
        }
        try out.close()
        return rows
    }

    static func textFoldersToCSV(root: String, set: DatasetLayout.ClassFolderSet, to csv: String) throws -> Int {
        var out = CSVOut(path: csv)
        try out.row(["text", "label"])
        var rows = 0
        let setRoot = set.root.isEmpty ? root : root + "/" + set.root
        for cls in set.classes {
            for file in try files(in: setRoot + "/" + cls.name) {
                let data = try Data(contentsOf: URL(fileURLWithPath: file))
                guard data.count <= maxDocumentBytes else {
                    throw DatasetError(.invalidArgument, "text file larger than \(humanBytes(UInt64(maxDocumentBytes))): not a document of a text-classification dataset",
                                       path: file)
                }
                guard !data.contains(0) else { continue }
                try out.row([String(decoding: data, as: UTF8.self), cls.name])
                rows += 1
            }
        }
        try out.close()
        return rows
    }

    /// One document per non-empty line.
    static func linesToCSV(_ path: String, to csv: String) throws -> Int {
        var out = CSVOut(path: csv)
        try out.row(["text"])
        var rows = 0
        guard let input = FileHandle(forReadingAtPath: path) else { throw DatasetError(.io, "cannot open", path: path) }
        defer { try? input.close() }
        var pending = Data()
        func flush(_ line: Data) throws {
            var s = String(decoding: line, as: UTF8.self)
            if s.hasSuffix("\r") { s.removeLast() }
            if s.trimmingCharacters(in: .whitespaces).isEmpty { return }
            try out.row([s])
            rows += 1
        }
        while let block = try input.read(upToCount: 1 << 20), !block.isEmpty {
            pending.append(block)
            while let newline = pending.firstIndex(of: 0x0A) {
                try flush(pending[pending.startIndex..<newline])
                pending.removeSubrange(pending.startIndex...newline)
            }
        }
        if !pending.isEmpty { try flush(pending) }
        try out.close()
        return rows
    }

    /// Regular files under `directory`, sorted, hidden ones left out.
    static func files(in directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { !$0.hasPrefix(".") }.sorted()
            .map { directory + "/" + $0 }
            .filter { (try? FileManager.default.attributesOfItem(atPath: $0)[.type] as? FileAttributeType) == .typeRegular }
    }
}

/// A buffered RFC 4180 writer.
struct CSVOut {
    private let handle: FileHandle?
    private var buffer: [UInt8] = []
    let path: String

    init(path: String) {
        self.path = path
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        handle = FileHandle(forWritingAtPath: path)
    }

    mutating func row(_ fields: [String]) throws {
        guard handle != nil else { throw DatasetError(.io, "cannot write", path: path) }
        for (i, field) in fields.enumerated() {
            if i > 0 { buffer.append(UInt8(ascii: ",")) }
            let needsQuotes = field.utf8.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
            if needsQuotes {
                buffer.append(UInt8(ascii: "\""))
                for b in field.utf8 {
                    if b == UInt8(ascii: "\"") { buffer.append(b) }
                    buffer.append(b)
                }
                buffer.append(UInt8(ascii: "\""))
            } else {
                buffer.append(contentsOf: field.utf8)
            }
        }
        buffer.append(0x0A)
        if buffer.count >= 1 << 20 { try flush() }
    }

    private mutating func flush() throws {
        try handle?.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    mutating func close() throws {
        try flush()
        try handle?.close()
    }
}
