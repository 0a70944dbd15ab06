import Foundation
import Hummingbird
import MultipartKit
import NebulaCommon
import NebulaModel
import NIOCore

// Note [Multipart uploads]
// ~~~~~~~~~~~~~~~~~~~~~~~~
// `POST /api/datasets` reads `multipart/form-data` as it arrives: each file part is written straight to
// a staging directory (never held in memory), counted against the upload limit as it goes, and
// sniffed from its first bytes (text, ZIP, image) so a binary file sent as `.csv` is refused before it
// is stored. Text fields `name` and `skip_bad_rows` may come as parts or as query parameters. One file
// becomes a file upload; several become a folder upload (their file names may carry relative paths,
// such as `cats/1.jpg`, as browsers send for a chosen folder). On any error the staging directory
// is removed, so nothing half-written stays, and the answer says which part was wrong.

struct StagedUpload {
    var directory: String
    var header: UploadHeader
}

/// What the first bytes of a file say it is.
enum SniffedType: String {
    case text, zip, image, binary

    static func of(_ prefix: [UInt8]) -> SniffedType {
        if prefix.starts(with: [0x50, 0x4B, 0x03, 0x04]) || prefix.starts(with: [0x50, 0x4B, 0x05, 0x06]) { return .zip }
        if prefix.starts(with: [0x89, 0x50, 0x4E, 0x47]) || prefix.starts(with: [0xFF, 0xD8, 0xFF])
            || prefix.starts(with: Array("GIF8".utf8)) || prefix.starts(with: Array("BM".utf8))
            || (prefix.count >= 12 && prefix[0..<4].elementsEqual(Array("RIFF".utf8)) && prefix[8..<12].elementsEqual(Array("WEBP".utf8))) {
            return .image
        }
        if prefix.contains(0) { return .binary }
        // Valid UTF-8 except perhaps a sequence cut at the end of the prefix.
        var bytes = prefix
        for _ in 0..<4 where String(validating: bytes, as: UTF8.self) == nil && !bytes.isEmpty { bytes.removeLast() }
        return String(validating: bytes, as: UTF8.self) != nil && (!bytes.isEmpty || prefix.isEmpty) ? .text : .binary
    }
}

extension APIRoutes {
    /// Streams a multipart body to a staging directory (Note [Multipart uploads]).
    func receiveMultipart(_ request: Request, context: APIContext) async throws -> StagedUpload {
        guard let contentType = request.headers[.contentType], contentType.lowercased().hasPrefix("multipart/form-data"),
              let boundary = Self.boundary(of: contentType)
        else {
            throw APIError(.unsupportedMediaType, "unsupported_media_type",
                           "send the files as multipart/form-data with a boundary (curl -F file=@data.csv)")
        }
        let limit = configuration.maxUploadBytes ?? services.datasets.configuration.maxUploadBytes
        if let length = request.headers[.contentLength].flatMap(UInt64.init), length > limit + 64 * 1024 {
            throw APIError(.contentTooLarge, "upload_too_large",
                           "the upload is \(humanBytes(length)), more than this coordinator accepts (\(humanBytes(limit)))")
        }
        let staging = uploadDirectory + "/" + UUID().uuidString.lowercased()
        try FileManager.default.createDirectory(atPath: staging + "/files", withIntermediateDirectories: true)
        let receiver = MultipartReceiver(root: staging + "/files", limit: limit)
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { receiver.header($0, $1) }
        parser.onBody = { receiver.body(&$0) }
        parser.onPartComplete = { receiver.partComplete() }
        do {
            for try await buffer in request.body {
                do {
                    try parser.execute(buffer)
                } catch {
                    throw APIError.badRequest("the multipart body is malformed (\(error)); check the boundary and the part headers")
                }
                if let error = receiver.error { throw error }
            }
            receiver.finish(endOfBody: true)
            if let error = receiver.error { throw error }
            guard !receiver.files.isEmpty else {
                throw APIError.validation("file", "no file part: send at least one part with a filename (curl -F file=@data.csv)")
            }
            let name = receiver.fields["name"] ?? request.query("name") ?? ""
            let skip = (receiver.fields["skip_bad_rows"] ?? request.query("skip_bad_rows") ?? "false").lowercased()
            guard ["true", "false", "1", "0"].contains(skip) else { throw APIError.validation("skip_bad_rows", "use true or false") }
            let total = receiver.files.reduce(UInt64(0)) { $0 + $1.bytes }
            let header: UploadHeader
            if receiver.files.count == 1, !receiver.files[0].path.contains("/") {
                let file = receiver.files[0].path
                try FileManager.default.moveItem(atPath: staging + "/files/" + file, toPath: staging + "/" + file)
                try FileManager.default.removeItem(atPath: staging + "/files")
                header = UploadHeader(name: name, fileName: file, totalBytes: total, skipBadRows: skip == "true" || skip == "1")
            } else {
                let folder = Self.folderName(name)
                try FileManager.default.moveItem(atPath: staging + "/files", toPath: staging + "/" + folder)
                header = UploadHeader(name: name.isEmpty ? folder : name, fileName: folder, directory: true, totalBytes: total,
                                      fileCount: receiver.files.count, skipBadRows: skip == "true" || skip == "1")
            }
            return StagedUpload(directory: staging, header: header)
        } catch {
            receiver.finish()
            try? FileManager.default.removeItem(atPath: staging)
            if let e = error as? APIError { throw e }
            throw error
        }
    }

    static func boundary(of contentType: String) -> String? {
        for part in contentType.split(separator: ";") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                let value = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return value.isEmpty || value.count > 70 ? nil : value
            }
        }
        return nil
    }

    static func folderName(_ name: String) -> String {
        let cleaned = String(name.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }.prefix(64))
        return cleaned.isEmpty ? "upload" : cleaned
    }
}

/// The parser's callbacks: one part at a time, files to disk, small fields to memory.
final class MultipartReceiver: @unchecked Sendable {
    // Thread-safety: used by one request's body loop only.
    struct Malformed: Error, CustomStringConvertible { var description: String }
    struct File {
        var path: String
        var bytes: UInt64
    }

    let root: String
    let limit: UInt64
    private(set) var files: [File] = []
    private(set) var fields: [String: String] = [:]
    private(set) var error: APIError?
    private var headers: [String: String] = [:]
    private var handle: FileHandle?
    private var current: (path: String, bytes: UInt64, sniffed: Bool, prefix: [UInt8])?
    private var field: (name: String, value: [UInt8])?
    private var total: UInt64 = 0
    private var started = false

    init(root: String, limit: UInt64) {
        self.root = root
        self.limit = limit
    }

    func header(_ name: String, _ value: String) { headers[name.lowercased()] = value }

    func body(_ buffer: inout ByteBuffer) {
        guard error == nil else { return }
        if !started { startPart() }
        guard error == nil else { return }
        let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        if var f = field {
            f.value += bytes
            guard f.value.count <= 4096 else { return fail(.validation(f.name, "a form field may have at most 4096 bytes")) }
            field = f
            return
        }
        guard var c = current else { return }
        total += UInt64(bytes.count)
        guard total <= limit else {
            return fail(APIError(.contentTooLarge, "upload_too_large",
                                 "the upload is larger than this coordinator accepts (\(humanBytes(limit))); nothing was stored"))
        }
        c.bytes += UInt64(bytes.count)
        if !c.sniffed {
            c.prefix += bytes.prefix(4096 - c.prefix.count)
            if c.prefix.count >= 4096 { current = c; sniff(); c = current ?? c; c.sniffed = true }
        }
        current = c
        guard error == nil else { return }
        do { try handle?.write(contentsOf: bytes) } catch { fail(APIError(.insufficientStorage, "write_failed", "the coordinator could not store the upload: \(error)")) }
    }

    func partComplete() {
        guard error == nil else { return }
        if !started { startPart() }
        if let f = field {
            fields[f.name] = String(decoding: f.value, as: UTF8.self)
        } else if let c = current {
            if !c.sniffed { sniff() }
            try? handle?.close()
            handle = nil
            if error == nil {
                guard c.bytes > 0 else { return fail(.validation("file", "\(c.path) is empty")) }
                files.append(File(path: c.path, bytes: c.bytes))
            }
        }
        headers = [:]
        current = nil
        field = nil
        started = false
    }

    /// Closes what is open; at the end of the body, a part still open means the body was cut short.
    func finish(endOfBody: Bool = false) {
        try? handle?.close()
        handle = nil
        if endOfBody, started, error == nil {
            let what = current.map { "file \($0.path)" } ?? field.map { "field \($0.name)" } ?? "a part"
            fail(.badRequest("the multipart body ended inside \(what) (no closing boundary): the upload was cut short; send it again"))
        }
    }

    private func fail(_ e: APIError) {
        if error == nil { error = e }
        try? handle?.close()
        handle = nil
    }

    private func startPart() {
        started = true
        guard let disposition = headers["content-disposition"] else {
            return fail(.badRequest("a multipart part has no Content-Disposition header"))
        }
        let params = Self.parameters(disposition)
        guard let name = params["name"] else { return fail(.badRequest("a multipart part has no name (Content-Disposition: form-data; name=...)")) }
        guard let filename = params["filename"] else {
            guard ["name", "skip_bad_rows"].contains(name) else {
                return fail(.validation(name, "unknown form field; send files as parts named 'file' and optionally 'name' and 'skip_bad_rows'"))
            }
            field = (name, [])
            return
        }
        guard name == "file" || name == "files" || name == "file[]" else {
            return fail(.validation(name, "send files in parts named 'file'"))
        }
        let path = filename.replacingOccurrences(of: "\\", with: "/")
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), parts.count <= 8,
              parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.hasPrefix(".") }), path.utf8.count <= 512
        else { return fail(.validation("file", "file name '\(filename)' must be a plain relative name (no '..', no absolute path, no hidden files)")) }
        guard !files.contains(where: { $0.path == path }) else { return fail(.validation("file", "\(path) is sent twice")) }
        let full = root + "/" + path
        do {
            try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: full, contents: nil) else { throw Malformed(description: "cannot create \(path)") }
            handle = try FileHandle(forWritingTo: URL(fileURLWithPath: full))
        } catch {
            return fail(APIError(.insufficientStorage, "write_failed", "the coordinator could not store \(path)"))
        }
        current = (path, 0, false, [])
    }

    /// Refuses a file whose bytes do not fit what it claims to be (Note [Multipart uploads]).
    private func sniff() {
        guard let c = current else { return }
        let type = SniffedType.of(c.prefix)
        let ext = (c.path as NSString).pathExtension.lowercased()
        let textExtensions: Set<String> = ["csv", "tsv", "txt", "json", "jsonl", "tab", ""]
        let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "gif", "bmp", "webp"]
        let ok: Bool
        switch type {
        case .text: ok = textExtensions.contains(ext)
        case .zip: ok = ext == "zip"
        case .image: ok = imageExtensions.contains(ext)
        case .binary: ok = false
        }
        if !ok {
            let what = type == .binary ? "binary data of an unknown type" : "\(type.rawValue) data"
            fail(APIError(.unsupportedMediaType, "unsupported_file_type",
                          "\(c.path) holds \(what); upload CSV, TSV, text or JSON files, a ZIP archive, or images (png, jpg, gif, bmp, webp) with matching extensions",
                          details: ["field": "file", "file": c.path, "sniffed": type.rawValue]))
        }
    }

    /// `form-data; name="file"; filename="a.csv"` → ["name": "file", "filename": "a.csv"].
    static func parameters(_ header: String) -> [String: String] {
        var result: [String: String] = [:]
        for part in header.split(separator: ";").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1)
            guard kv.count == 2 else { continue }
            var value = kv[1].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            result[kv[0].trimmingCharacters(in: .whitespaces).lowercased()] = value.replacingOccurrences(of: "\\\"", with: "\"")
        }
        return result
    }
}
