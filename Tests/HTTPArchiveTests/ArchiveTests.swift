import Foundation
import NebulaArchive
import Testing

@Suite("Entry path validation")
struct EntryPathTests {
    @Test(arguments: [
        ("a/b.txt", ["a", "b.txt"]), ("./a//b/", ["a", "b"]), ("dir/", ["dir"]), ("a\\b.txt", ["a", "b.txt"]),
        ("..a/b..", ["..a", "b.."]), ("日本/データ.csv", ["日本", "データ.csv"]),
    ])
    func accepted(raw: String, expected: [String]) throws {
        #expect(try EntryPath.components(of: raw) == expected)
    }

    @Test(arguments: [
        ("../x", ArchiveError.Code.pathTraversal), ("a/../../x", .pathTraversal), ("a/..", .pathTraversal),
        ("..\\x", .pathTraversal), ("/etc/passwd", .absolutePath), ("\\\\server\\share", .absolutePath),
        ("C:/x", .absolutePath), ("c:x", .absolutePath), ("", .invalidPath), ("a\u{0}b", .invalidPath),
        ("a\nb", .invalidPath),
    ])
    func rejected(raw: String, code: ArchiveError.Code) {
        let error = #expect(throws: ArchiveError.self) { try EntryPath.components(of: raw) }
        #expect(error?.code == code)
        #expect(error?.entry == raw)
    }

    @Test func lengthAndDepthLimits() {
        #expect(throws: ArchiveError.self) { try EntryPath.components(of: String(repeating: "a/", count: 70) + "f") }
        #expect(throws: ArchiveError.self) { try EntryPath.components(of: String(repeating: "x", count: 300)) }
        #expect(throws: ArchiveError.self) { try EntryPath.components(of: "a/b/c", maxLength: 4) }
    }
}

@Suite("Safe ZIP extraction")
struct ZIPExtractionTests {
    /// Extracts and returns the error; asserts that nothing was left beside the destination.
    func rejection(_ name: String, limits: ZIPExtractionLimits = ZIPExtractionLimits(),
                   sourceLocation: SourceLocation = #_sourceLocation) throws -> ArchiveError? {
        let dir = try TempDir("nebula-zip-test")
        defer { dir.remove() }
        let zip = try makeZip(name, in: dir)
        let destination = dir.file("out/dataset")
        let error = #expect(throws: ArchiveError.self, sourceLocation: sourceLocation) {
            try ZIPExtractor(limits: limits).extractBlocking(archive: zip, to: destination)
        }
        #expect(!FileManager.default.fileExists(atPath: destination), sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: dir.file("out")), "left behind: \(dir.listing("out"))",
                sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/nebula-evil.txt"), sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: dir.file("evil.txt")), sourceLocation: sourceLocation)
        return error
    }

    @Test func extractsImageFoldersAndSkipsMacMetadata() async throws {
        let dir = try TempDir("nebula-zip-test")
        defer { dir.remove() }
        let zip = try makeZip("images", in: dir)
        let destination = dir.file("datasets/pets")
        let report = try await ZIPExtractor().extract(archive: zip, to: destination)
        #expect(report.files == 36)
        #expect(report.skipped.sorted() == ["__MACOSX/train/._x", "train/.DS_Store"])
        #expect(report.destination == destination)
        #expect(dir.listing("datasets") == ["pets"])
        #expect(dir.listing("datasets/pets") == ["test", "train"])
        #expect(dir.listing("datasets/pets/train/cat") == ["0.jpg", "0.png", "1.jpg", "1.png", "2.jpg", "2.png"])
        let attributes = try FileManager.default.attributesOfItem(atPath: destination + "/train/cat/0.png")
        #expect((attributes[.posixPermissions] as? Int) == 0o644)
    }

    @Test func refusesAnExistingDestination() throws {
        let dir = try TempDir("nebula-zip-test")
        defer { dir.remove() }
        let zip = try makeZip("csv", in: dir)
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: true)
        let error = #expect(throws: ArchiveError.self) { try ZIPExtractor().extractBlocking(archive: zip, to: dir.file("out")) }
        #expect(error?.code == .destinationExists)
        #expect(dir.listing("out").isEmpty)
    }

    @Test func pathTraversalIsRejected() throws {
        let error = try rejection("traversal")
        #expect(error?.code == .pathTraversal)
        #expect(error?.entry == "data/../../evil.txt")
        #expect(error?.description.contains("data/../../evil.txt") == true)
        #expect(try rejection("backslash")?.code == .pathTraversal)
    }

    @Test func absolutePathIsRejected() throws {
        let error = try rejection("absolute")
        #expect(error?.code == .absolutePath)
        #expect(error?.entry == "/tmp/nebula-evil.txt")
    }

    @Test func symlinkIsRejected() throws {
        let error = try rejection("symlink")
        #expect(error?.code == .symlink)
        #expect(error?.entry == "link")
    }

    @Test func bombByDeclaredRatio() throws {
        let error = try rejection("bomb-ratio")
        #expect(error?.code == .compressionRatio)
        #expect(error?.entry == "zeros.bin")
        #expect(error?.message.contains("declares 20971520 bytes") == true)
    }

    @Test func bombByRatioWhileInflatingDespiteAnInnocentHeader() throws {
        let error = try rejection("bomb-stream")
        #expect(error?.code == .compressionRatio)
        #expect(error?.entry == "mixed.bin")
        #expect(error?.message.contains("while inflating") == true)
    }

    @Test func bombWithForgedSizeStopsAtTheDeclaredSize() throws {
        let error = try rejection("bomb-forged")
        #expect(error?.code == .corrupt)
        #expect(error?.entry == "zeros.bin")
        #expect(error?.message.contains("more than the 1000 bytes its header declares") == true)
    }

    @Test func bombByTotalSize() throws {
        var limits = ZIPExtractionLimits()
        limits.maxTotalSize = 1_000_000
        let error = try rejection("bomb-total", limits: limits)
        #expect(error?.code == .totalTooLarge)
        #expect(error?.entry == "part3.bin")
        limits = ZIPExtractionLimits()
        limits.maxEntrySize = 200_000
        let single = try rejection("bomb-total", limits: limits)
        #expect(single?.code == .entryTooLarge)
        #expect(single?.entry == "part0.bin")
    }

    @Test func tooManyFiles() throws {
        var limits = ZIPExtractionLimits()
        limits.maxEntries = 20
        let error = try rejection("many", limits: limits)
        #expect(error?.code == .tooManyEntries)
        #expect(error?.message.contains("30 entries") == true)
    }

    @Test(arguments: ["crc", "deflate-garbage", "truncated", "not-zip", "overlap"])
    func corruptArchives(name: String) throws {
        let error = try rejection(name)
        #expect(error?.code == .corrupt)
        switch name {
        case "crc":
            #expect(error?.entry == "a.txt")
            #expect(error?.message.contains("CRC-32 mismatch") == true)
        case "deflate-garbage":
            #expect(error?.entry == "a.txt")
        case "overlap":
            #expect(error?.message.contains("overlaps") == true)
        default:
            #expect(error?.message.contains("not a ZIP archive") == true)
        }
    }

    @Test func duplicatesConflictsAndUnsupportedEntries() throws {
        let duplicate = try rejection("duplicate")
        #expect(duplicate?.code == .duplicateEntry)
        #expect(duplicate?.entry == "a.txt")
        let conflict = try rejection("file-dir-conflict")
        #expect(conflict?.code == .duplicateEntry)
        #expect(conflict?.entry == "a/b.txt")
        let encrypted = try rejection("encrypted")
        #expect(encrypted?.code == .unsupported)
        #expect(encrypted?.message.contains("encrypted") == true)
        let bzip2 = try rejection("bzip2")
        #expect(bzip2?.code == .unsupported)
        #expect(bzip2?.message.contains("bzip2") == true)
    }

    @Test func cancelledExtractionLeavesNothing() async throws {
        let dir = try TempDir("nebula-zip-test")
        defer { dir.remove() }
        let zip = try makeZip("images", in: dir)
        let destination = dir.file("out/images")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await ZIPExtractor().extract(archive: zip, to: destination)
        }
        let result = await task.result
        let error = #expect(throws: ArchiveError.self) { try result.get() }
        #expect(error?.code == .cancelled)
        #expect(dir.listing("out").isEmpty)
    }

    @Test func readsZIP64Archives() throws {
        let dir = try TempDir("nebula-zip-test")
        defer { dir.remove() }
        let zip = try makeZip("zip64", in: dir)
        let archive = try ZIPArchive(path: zip)
        #expect(archive.entries.map(\.path) == ["sub/t.csv", "blob.bin", "empty/"])
        #expect(archive.entries[1].uncompressedSize == 100_000)
        let report = try ZIPExtractor().extractBlocking(archive: zip, to: dir.file("out"))
        #expect(report.files == 2 && report.bytes == 100_008)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("out/blob.bin"))) == Data(repeating: 7, count: 100_000))
        #expect(dir.listing("out") == ["blob.bin", "empty", "sub"])
    }

    @Test func readsZIP64ArchivesFromInfoZip() throws {
        let dir = try TempDir("nebula-zip-test")
        defer { dir.remove() }
        guard (try? runProgram("zip", ["-v"])) != nil else { return }  // Info-ZIP not installed
        try FileManager.default.createDirectory(atPath: dir.file("src/sub"), withIntermediateDirectories: true)
        try Data("a,b\n1,2\n".utf8).write(to: URL(fileURLWithPath: dir.file("src/sub/t.csv")))
        try Data(repeating: 7, count: 100_000).write(to: URL(fileURLWithPath: dir.file("src/blob.bin")))
        try runProgram("zip", ["-q", "-r", "-fz", dir.file("z64.zip"), "."], cwd: dir.file("src"))
        let report = try ZIPExtractor().extractBlocking(archive: dir.file("z64.zip"), to: dir.file("out"))
        #expect(report.files == 2)
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir.file("out/blob.bin"))) == Data(repeating: 7, count: 100_000))
        #expect(try String(contentsOfFile: dir.file("out/sub/t.csv"), encoding: .utf8) == "a,b\n1,2\n")
    }
}

@Suite("Dataset layout classification")
struct DatasetLayoutTests {
    func classifyBothWays(_ name: String) throws -> (extracted: DatasetLayout, archive: DatasetLayout) {
        let dir = try TempDir("nebula-layout-test")
        defer { dir.remove() }
        let zip = try makeZip(name, in: dir)
        try ZIPExtractor().extractBlocking(archive: zip, to: dir.file("out"))
        let extracted = try DatasetLayout.classify(directory: dir.file("out"))
        let fromArchive = try DatasetLayout.classify(archive: try ZIPArchive(path: zip))
        return (extracted, fromArchive)
    }

    @Test func csvTables() throws {
        let (layout, fromArchive) = try classifyBothWays("csv")
        #expect(layout == fromArchive)
        #expect(layout.kind == .tabular)
        #expect(layout.tables.map(\.path) == ["test.csv", "train.csv"])
        #expect(layout.tables.map(\.columns) == [["id", "name"], ["id", "name, full", "label"]])
        #expect(layout.files == 3)
    }

    @Test func imageClassFolders() throws {
        let (layout, fromArchive) = try classifyBothWays("images")
        #expect(layout == fromArchive)
        #expect(layout.kind == .imageClassification)
        #expect(layout.imageClassSets.map(\.root) == ["test", "train"])
        #expect(layout.imageClassSets[1].classes.map(\.name) == ["bird", "cat", "dog"])
        #expect(layout.imageClassSets[1].classes.allSatisfy { $0.files == 6 })
        #expect(layout.files == 36)  // the macOS metadata is not counted
    }

    @Test func textClassFolders() throws {
        let (layout, fromArchive) = try classifyBothWays("text")
        #expect(layout == fromArchive)
        #expect(layout.kind == .textClassification)
        #expect(layout.textClassSets == [DatasetLayout.ClassFolderSet(root: "aclImdb/train", classes: [
            .init(name: "neg", files: 4), .init(name: "pos", files: 4)])])
    }

    @Test func cocoObjectDetection() throws {
        let (layout, fromArchive) = try classifyBothWays("coco")
        #expect(layout == fromArchive)
        #expect(layout.kind == .objectDetection)
        #expect(layout.cocoFiles.count == 1)
        #expect(layout.cocoFiles[0].path == "annotations/instances_train.json")
        #expect(layout.cocoFiles[0].summary == COCOSummary(images: 3, annotations: 2, categories: ["person", "bicycle"]))
    }

    @Test func sniffingByMagicBytesNotExtensions() {
        #expect(FileSample.sniff(path: "a.jpg", head: Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0])) == .png)
        #expect(FileSample.sniff(path: "a.png", head: Data([0xFF, 0xD8, 0xFF, 0xE0])) == .jpeg)
        #expect(FileSample.sniff(path: "a.jpg", head: Data("not an image".utf8)) == .text)
        #expect(FileSample.sniff(path: "a.bin", head: Data([0, 1, 2])) == .other)
        #expect(FileSample.sniff(path: "t.TSV", head: Data("x\ty\n1\t2".utf8)) == .csv(columns: ["x", "y"]))
        // A multi-byte character cut by the head is still text.
        #expect(FileSample.sniff(path: "r.txt", head: Data("caf\u{e9}".utf8).dropLast()) == .text)
    }

    @Test func pureClassificationNeedsTwoPureClassFolders() {
        func files(_ dir: String, _ n: Int, _ content: SniffedContent) -> [FileSample] {
            (0..<n).map { FileSample(path: "\(dir)/\($0)", size: 10, content: content) }
        }
        // One folder of images is not a classification dataset.
        #expect(DatasetLayout.classify(files("imgs", 5, .png)).kind == .unknown)
        // Mostly text with a few images: text classification, not images.
        let mixed = files("d/a", 10, .text) + files("d/b", 10, .text) + files("d/b", 1, .png)
        #expect(DatasetLayout.classify(mixed).kind == .textClassification)
        // Images win over tables when both are present.
        let both = files("x/cat", 3, .jpeg) + files("x/dog", 3, .jpeg) + [FileSample(path: "labels.csv", size: 5, content: .csv(columns: ["f"]))]
        let layout = DatasetLayout.classify(both)
        #expect(layout.kind == .imageClassification)
        #expect(layout.tables.count == 1)
    }
}
