import Foundation

/// What a file looks like from its first bytes (and, for JSON, its parsed top level).
public enum SniffedContent: Sendable, Equatable {
    case png
    case jpeg
    /// A .csv/.tsv file; the header row's column names.
    case csv(columns: [String])
    /// A COCO object-detection annotation file.
    case coco(COCOSummary)
    /// Other JSON.
    case json
    /// UTF-8 text without NUL bytes (any other extension).
    case text
    case other
}

/// The top level of a COCO annotation file: `images`, `annotations` and `categories` arrays.
public struct COCOSummary: Sendable, Equatable {
    public var images: Int
    public var annotations: Int
    public var categories: [String]

    public init(images: Int, annotations: Int, categories: [String]) {
        self.images = images
        self.annotations = annotations
        self.categories = categories
    }

    /// Nil unless `data` is a JSON object with the three arrays.
    public static func parse(_ data: Data) -> COCOSummary? {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let images = object["images"] as? [Any], let annotations = object["annotations"] as? [Any],
              let categories = object["categories"] as? [Any] else { return nil }
        let names = categories.compactMap { ($0 as? [String: Any])?["name"] as? String }
        return COCOSummary(images: images.count, annotations: annotations.count, categories: names)
    }
}

/// One file of a dataset, as the classifier sees it.
public struct FileSample: Sendable, Equatable {
    /// Relative path with `/` separators.
    public var path: String
    public var size: UInt64
    public var content: SniffedContent

    public init(path: String, size: UInt64, content: SniffedContent) {
        self.path = path
        self.size = size
        self.content = content
    }

    /// Bytes of a file's start that `sniff` looks at.
    public static let headLength = 8192

    /// Classifies a file from its path and first bytes (JSON is decided by the caller, which has to
    /// parse the whole file: pass `.json` files' content through `COCOSummary.parse`).
    public static func sniff(path: String, head: Data) -> SniffedContent {
        let bytes = [UInt8](head.prefix(headLength))
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        let ext = (path as NSString).pathExtension.lowercased()
        guard isText(bytes) else { return .other }
        switch ext {
        case "csv": return .csv(columns: headerColumns(bytes, separator: ","))
        case "tsv": return .csv(columns: headerColumns(bytes, separator: "\t"))
        case "json": return .json
        default: return .text
        }
    }

    /// UTF-8 (a multi-byte sequence cut at the end is fine) without NUL bytes.
    static func isText(_ bytes: [UInt8]) -> Bool {
        guard !bytes.contains(0) else { return false }
        var end = bytes.count
        // Drop an incomplete trailing sequence (at most 3 continuation/lead bytes).
        var back = 0
        while back < 3, end - back - 1 >= 0, bytes[end - back - 1] & 0xC0 == 0x80 { back += 1 }
        if end - back - 1 >= 0, bytes[end - back - 1] >= 0xC0 {
            let lead = bytes[end - back - 1]
            let need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : 1
            if back < need { end = end - back - 1 }
        }
        return String(validating: bytes[..<end], as: UTF8.self) != nil
    }

    /// Column names of the first row (double quotes understood, a BOM dropped).
    static func headerColumns(_ bytes: [UInt8], separator: Character) -> [String] {
        var text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
        var columns: [String] = []
        var field = ""
        var quoted = false
        var iterator = text.makeIterator()
        var pending: Character?
        while let c = pending ?? iterator.next() {
            pending = nil
            if quoted {
                if c == "\"" {
                    let next = iterator.next()
                    if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                } else {
                    field.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == separator {
                columns.append(field.trimmingCharacters(in: .whitespaces))
                field = ""
            } else if c == "\n" || c == "\r" || c == "\r\n" {
                break
            } else {
                field.append(c)
            }
        }
        columns.append(field.trimmingCharacters(in: .whitespaces))
        return columns == [""] ? [] : columns
    }
}

/// The shape of an extracted dataset, for choosing how to train on it.
public struct DatasetLayout: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// COCO JSON annotations (images, annotations, categories).
        case objectDetection
        /// Folders named after classes holding PNG/JPEG images (`train/cat/1.jpg`).
        case imageClassification
        /// Folders named after classes holding text files (`train/pos/1.txt`).
        case textClassification
        /// CSV/TSV tables.
        case tabular
        case unknown
    }

    public struct Table: Sendable, Equatable {
        public var path: String
        public var bytes: UInt64
        public var columns: [String]
        public init(path: String, bytes: UInt64, columns: [String]) {
            self.path = path
            self.bytes = bytes
            self.columns = columns
        }
    }

    public struct ClassFolder: Sendable, Equatable {
        public var name: String
        public var files: Int
        public init(name: String, files: Int) {
            self.name = name
            self.files = files
        }
    }

    /// A directory whose subdirectories are classes (one per split, e.g. `train` and `test`).
    public struct ClassFolderSet: Sendable, Equatable {
        /// Relative path of the directory holding the class folders; "" for the top.
        public var root: String
        public var classes: [ClassFolder]
        public init(root: String, classes: [ClassFolder]) {
            self.root = root
            self.classes = classes
        }
    }

    public struct COCOFile: Sendable, Equatable {
        public var path: String
        public var summary: COCOSummary
        public init(path: String, summary: COCOSummary) {
            self.path = path
            self.summary = summary
        }
    }

    /// The primary kind: object detection, then image classification, text classification, tabular.
    public var kind: Kind
    public var tables: [Table]
    public var imageClassSets: [ClassFolderSet]
    public var textClassSets: [ClassFolderSet]
    public var cocoFiles: [COCOFile]
    /// Files considered (metadata such as `__MACOSX/`, `.DS_Store` and hidden files left out).
    public var files: Int
    public var bytes: UInt64

    /// Share of a folder's files that must be of the class kind for it to count as a class folder.
    static let classFolderPurity = 0.9

    /// Classifies sniffed files (pure).
    public static func classify(_ samples: [FileSample]) -> DatasetLayout {
        let relevant = samples.filter { !isMetadata($0.path) }
        var tables: [Table] = []
        var cocoFiles: [COCOFile] = []
        var byDirectory: [String: [FileSample]] = [:]
        for sample in relevant {
            switch sample.content {
            case .csv(let columns): tables.append(Table(path: sample.path, bytes: sample.size, columns: columns))
            case .coco(let summary): cocoFiles.append(COCOFile(path: sample.path, summary: summary))
            default: break
            }
            byDirectory[parent(of: sample.path), default: []].append(sample)
        }

        func classSets(_ isMember: (SniffedContent) -> Bool) -> [ClassFolderSet] {
            var classFolders: [String: Int] = [:]  // directory -> member files
            for (directory, files) in byDirectory where !directory.isEmpty {
                let members = files.filter { isMember($0.content) }.count
                if members > 0, Double(members) >= classFolderPurity * Double(files.count) { classFolders[directory] = members }
            }
            var roots: [String: [ClassFolder]] = [:]
            for (directory, count) in classFolders {
                roots[parent(of: directory), default: []].append(ClassFolder(name: name(of: directory), files: count))
            }
            return roots.filter { $0.value.count >= 2 }
                .map { ClassFolderSet(root: $0.key, classes: $0.value.sorted { $0.name < $1.name }) }
                .sorted { $0.root < $1.root }
        }
        let imageSets = classSets { $0 == .png || $0 == .jpeg }
        let textSets = classSets { $0 == .text }

        let kind: Kind = !cocoFiles.isEmpty ? .objectDetection
            : !imageSets.isEmpty ? .imageClassification
            : !textSets.isEmpty ? .textClassification
            : !tables.isEmpty ? .tabular
            : .unknown
        return DatasetLayout(kind: kind, tables: tables.sorted { $0.path < $1.path }, imageClassSets: imageSets,
                             textClassSets: textSets, cocoFiles: cocoFiles.sorted { $0.path < $1.path },
                             files: relevant.count, bytes: relevant.reduce(0) { $0 + $1.size })
    }

    /// Classifies the regular files under `directory` (symbolic links are not followed).
    /// - Parameter maxJSONBytes: larger JSON files are not parsed (not recognised as COCO).
    public static func classify(directory: String, maxJSONBytes: UInt64 = 512 << 20) throws -> DatasetLayout {
        let root = URL(fileURLWithPath: directory).standardizedFileURL
        guard let enumerator = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey, .fileSizeKey],
                                                              options: []) else {
            throw ArchiveError(code: .unreadable, message: "cannot list \(directory)")
        }
        var samples: [FileSample] = []
        let prefixLength = root.path.count + 1
        while let url = enumerator.nextObject() as? URL {
            let values = try? url.resourceValues(forKeys: [.isRegularFileKey, .fileSizeKey])
            guard values?.isRegularFile == true else { continue }
            let relative = String(url.standardizedFileURL.path.dropFirst(prefixLength))
            if isMetadata(relative) { continue }
            let size = UInt64(values?.fileSize ?? 0)
            let head: Data
            do {
                let handle = try FileHandle(forReadingFrom: url)
                defer { try? handle.close() }
                head = try handle.read(upToCount: FileSample.headLength) ?? Data()
            } catch {
                throw ArchiveError(code: .unreadable, entry: relative, message: "cannot read: \(error.localizedDescription)")
            }
            var content = FileSample.sniff(path: relative, head: head)
            if content == .json, size <= maxJSONBytes, let data = try? Data(contentsOf: url), let coco = COCOSummary.parse(data) {
                content = .coco(coco)
            }
            samples.append(FileSample(path: relative, size: size, content: content))
        }
        return classify(samples)
    }

    /// Classifies an archive's content without extracting it (reads each file's first bytes and
    /// whole JSON files up to `maxJSONBytes`).
    public static func classify(archive: ZIPArchive, maxJSONBytes: UInt64 = 512 << 20) throws -> DatasetLayout {
        var samples: [FileSample] = []
        for entry in archive.entries where entry.kind == .file {
            let components = try EntryPath.components(of: entry.path)
            let relative = components.joined(separator: "/")
            if relative.isEmpty || isMetadata(relative) { continue }
            var content = FileSample.sniff(path: relative, head: try archive.readPrefix(entry, maxBytes: FileSample.headLength))
            if content == .json, entry.uncompressedSize <= maxJSONBytes,
               let coco = COCOSummary.parse(try archive.readAll(entry, limit: Int(maxJSONBytes))) {
                content = .coco(coco)
            }
            samples.append(FileSample(path: relative, size: entry.uncompressedSize, content: content))
        }
        return classify(samples)
    }

    static func isMetadata(_ path: String) -> Bool {
        path.split(separator: "/").contains { component in
            component.hasPrefix(".") || component == "__MACOSX" || component == "Thumbs.db" || component == "desktop.ini"
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    static func name(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
