import Foundation
import NebulaCommon

/// A dataset file (Note [Dataset file format]) mapped read-only. Column data are never copied:
/// views point into the mapping, which lives as long as this object. The mapping is immutable
/// (PROT_READ) and the object has no mutable state, so it can be shared between threads.
public final class ColumnarDataset: @unchecked Sendable {
    public enum Verification: Sendable {
        /// Check the header and every buffer's SHA-256 (reads the whole file once).
        case full
        /// Check the preamble, the header's SHA-256 and the buffer layout only.
        case header
    }

    public let path: String
    public let rowCount: Int
    public let profile: DatasetProfile
    public let columnNames: [String]
    let header: FileHeader
    let base: UnsafeRawPointer
    let length: Int

    public init(path: String, verify: Verification = .full) throws {
        self.path = path
        let fd = try FileIO.openRead(path)
        defer { FileIO.close(fd) }
        let size = Int(try FileIO.size(fd, path: path))
        guard size >= 64 else { throw DatasetError(.notADataset, "not a Nebula dataset file (too short)", path: path) }
        let mapped = try FileIO.mapReadOnly(fd, size, path: path)
        do {
            header = try Self.readHeader(mapped, size: size, path: path)
        } catch {
            FileIO.unmap(mapped, size)
            throw error
        }
        base = mapped
        length = size
        rowCount = header.rows
        profile = header.profile
        columnNames = header.columns.map(\.name)
        if verify == .full { try verifyChecksums() }
    }

    deinit { FileIO.unmap(base, length) }

    private static func readHeader(_ p: UnsafeRawPointer, size: Int, path: String) throws -> FileHeader {
        let magic = UnsafeRawBufferPointer(start: p, count: 8)
        guard Array(magic) == datasetMagic else {
            throw DatasetError(.notADataset, "not a Nebula dataset file (bad magic)", path: path)
        }
        func le(_ at: Int, _ n: Int) -> UInt64 {
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(p.load(fromByteOffset: at + i, as: UInt8.self)) << (8 * UInt64(i)) }
            return v
        }
        let version = le(8, 4)
        guard version == UInt64(datasetVersion) else {
            throw DatasetError(.unsupportedVersion, "dataset format version \(version) is not supported (expected \(datasetVersion))",
                               path: path)
        }
        let offset = le(16, 8)
        let count = le(24, 8)
        guard offset >= 64, count > 0, offset <= UInt64(size), count <= UInt64(size) - offset else {
            throw DatasetError(.corrupt, "corrupt dataset file: header out of bounds", path: path)
        }
        let json = UnsafeRawBufferPointer(start: p + Int(offset), count: Int(count))
        guard SHA256.hash(json) == Array(UnsafeRawBufferPointer(start: p + 32, count: 32)) else {
            throw DatasetError(.corrupt, "corrupt dataset file: header checksum mismatch", path: path)
        }
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let header: FileHeader
        do {
            header = try decoder.decode(FileHeader.self, from: Data(json))
        } catch {
            throw DatasetError(.corrupt, "corrupt dataset file: unreadable header (\(error))", path: path)
        }
        guard header.format == "nebula-dataset" else {
            throw DatasetError(.notADataset, "not a Nebula dataset file (format \(header.format))", path: path)
        }
        let rows = header.rows
        let bitmap = (rows + 7) / 8
        for column in header.columns {
            func check(_ ref: BufferRef?, _ expected: Int?, _ what: String) throws {
                guard let ref else { return }
                guard ref.offset >= 64, ref.offset % 64 == 0, ref.length >= 0, ref.offset + ref.length <= Int(offset),
                      expected == nil || ref.length == expected!
                else {
                    throw DatasetError(.corrupt, "corrupt dataset file: column '\(column.name)' \(what) buffer is out of bounds",
                                       path: path)
                }
            }
            let width: Int? = switch column.type {
            case .integer, .float, .datetime: rows * 8
            case .date, .categorical: rows * 4
            case .boolean: bitmap
            case .text: nil
            }
            try check(column.values, width, "values")
            try check(column.validity, bitmap, "validity")
            if column.type == .text {
                guard column.offsets != nil else {
                    throw DatasetError(.corrupt, "corrupt dataset file: text column '\(column.name)' has no offsets", path: path)
                }
                try check(column.offsets, (rows + 1) * 8, "offsets")
            }
            if column.type == .categorical && column.dictionary == nil {
                throw DatasetError(.corrupt, "corrupt dataset file: categorical column '\(column.name)' has no dictionary",
                                   path: path)
            }
        }
        return header
    }

    /// Recomputes every buffer's SHA-256 (in parallel) and compares it with the header.
    public func verifyChecksums() throws {
        var refs: [(String, String, BufferRef)] = []
        for c in header.columns {
            refs.append((c.name, "values", c.values))
            if let o = c.offsets { refs.append((c.name, "offsets", o)) }
            if let v = c.validity { refs.append((c.name, "validity", v)) }
        }
        let bad = Array(repeating: false, count: refs.count)
        let flags = UnsafeMutableBufferPointer<Bool>.allocate(capacity: max(1, refs.count))
        _ = flags.initialize(from: bad)
        defer { flags.deallocate() }
        let box = FlagBox(flags: flags, base: base)
        let list = refs
        DispatchQueue.concurrentPerform(iterations: list.count) { i in
            let ref = list[i].2
            let digest = PieceDigest.checksum(UnsafeRawBufferPointer(start: box.base + ref.offset, count: ref.length))
            box.flags[i] = digest != ref.sha256
        }
        if let i = flags.firstIndex(of: true) {
            throw DatasetError(.corrupt, "corrupt dataset file: checksum mismatch in column '\(refs[i].0)' (\(refs[i].1) buffer)",
                               path: path)
        }
    }

    /// Each iteration writes only its own slot; the mapping is read-only.
    private struct FlagBox: @unchecked Sendable {
        let flags: UnsafeMutableBufferPointer<Bool>
        let base: UnsafeRawPointer
    }

    public var columnCount: Int { header.columns.count }

    public func column(_ name: String) throws -> ColumnView {
        guard let i = header.columns.firstIndex(where: { $0.name == name }) else {
            throw DatasetError(.invalidArgument, "no column '\(name)'", path: path)
        }
        return column(at: i)
    }

    public func column(at index: Int) -> ColumnView { ColumnView(dataset: self, header: header.columns[index]) }
}

/// Zero-copy access to one column of a `ColumnarDataset`; keeps the dataset (and its mapping) alive.
public struct ColumnView: @unchecked Sendable {
    public let dataset: ColumnarDataset
    let header: ColumnHeader

    init(dataset: ColumnarDataset, header: ColumnHeader) {
        self.dataset = dataset
        self.header = header
    }

    public var name: String { header.name }
    public var type: ColumnType { header.type }
    public var nullCount: Int { header.nullCount }
    public var count: Int { dataset.rowCount }
    /// The dictionary of a categorical column (code → value).
    public var dictionary: [String] { header.dictionary ?? [] }

    private func pointer(_ ref: BufferRef) -> UnsafeRawPointer { dataset.base + ref.offset }

    public func isNull(_ row: Int) -> Bool {
        guard let v = header.validity else { return false }
        return pointer(v).load(fromByteOffset: row >> 3, as: UInt8.self) & (1 << UInt8(row & 7)) == 0
    }

    private func typed<T, R>(_ as: T.Type, _ types: [ColumnType], _ body: (UnsafeBufferPointer<T>) throws -> R) throws -> R {
        guard types.contains(type) else {
            throw DatasetError(.typeMismatch, "column '\(name)' is \(type.rawValue), not \(types.map(\.rawValue).joined(separator: "/"))")
        }
        return try withExtendedLifetime(dataset) {
            let p = pointer(header.values).bindMemory(to: T.self, capacity: count)
            return try body(UnsafeBufferPointer(start: p, count: count))
        }
    }

    /// The Float64 values of a float column, in place (missing rows hold 0).
    public func withFloat64s<R>(_ body: (UnsafeBufferPointer<Double>) throws -> R) throws -> R {
        try typed(Double.self, [.float], body)
    }

    /// The Int64 values of an integer (or datetime, µs) column, in place.
    public func withInt64s<R>(_ body: (UnsafeBufferPointer<Int64>) throws -> R) throws -> R {
        try typed(Int64.self, [.integer, .datetime], body)
    }

    /// The Int32 days of a date column, in place.
    public func withDays<R>(_ body: (UnsafeBufferPointer<Int32>) throws -> R) throws -> R {
        try typed(Int32.self, [.date], body)
    }

    /// The UInt32 codes of a categorical column, in place.
    public func withCodes<R>(_ body: (UnsafeBufferPointer<UInt32>) throws -> R) throws -> R {
        try typed(UInt32.self, [.categorical], body)
    }

    /// One value as a Double (numeric, date in days, datetime in µs, boolean 0/1); nil when missing
    /// or for string columns.
    public func double(_ row: Int) -> Double? {
        precondition(row >= 0 && row < count, "row out of range")
        if isNull(row) { return nil }
        let p = pointer(header.values)
        switch type {
        case .float: return p.load(fromByteOffset: row * 8, as: Double.self)
        case .integer, .datetime: return Double(p.load(fromByteOffset: row * 8, as: Int64.self))
        case .date: return Double(p.load(fromByteOffset: row * 4, as: Int32.self))
        case .boolean: return p.load(fromByteOffset: row >> 3, as: UInt8.self) & (1 << UInt8(row & 7)) != 0 ? 1 : 0
        case .categorical, .text: return nil
        }
    }

    /// One value as text (strings as stored, numbers formatted, dates ISO 8601); nil when missing.
    public func string(_ row: Int) -> String? {
        precondition(row >= 0 && row < count, "row out of range")
        if isNull(row) { return nil }
        let p = pointer(header.values)
        switch type {
        case .text:
            let o = pointer(header.offsets!)
            let start = Int(o.load(fromByteOffset: row * 8, as: Int64.self))
            let end = Int(o.load(fromByteOffset: row * 8 + 8, as: Int64.self))
            return String(decoding: UnsafeRawBufferPointer(start: p + start, count: end - start), as: UTF8.self)
        case .categorical:
            let code = Int(p.load(fromByteOffset: row * 4, as: UInt32.self))
            return code < dictionary.count ? dictionary[code] : nil
        case .integer: return String(p.load(fromByteOffset: row * 8, as: Int64.self))
        case .float: return String(p.load(fromByteOffset: row * 8, as: Double.self))
        case .boolean: return double(row) == 1 ? "true" : "false"
        case .date: return FieldValue.formatDate(days: Int(p.load(fromByteOffset: row * 4, as: Int32.self)))
        case .datetime: return FieldValue.formatDatetime(micros: p.load(fromByteOffset: row * 8, as: Int64.self))
        }
    }
}
