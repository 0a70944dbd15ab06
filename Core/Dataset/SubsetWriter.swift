#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NebulaCommon

// Note [Subset files]
// ~~~~~~~~~~~~~~~~~~~
// A subset of a dataset's rows (a shard) is written as a dataset file of its own
// (Note [Dataset file format]): the same columns, types and categorical dictionaries as the source,
// so a categorical code means the same value in every shard, whatever values the shard happens to
// hold. Columns are gathered one at a time from the source mapping into memory (one column of the
// subset is the most held at once), hashed (Note [Buffer checksums]) and written at the next
// 64-byte boundary; the padding between buffers is a hole that reads as zeros. A column gets a
// validity bitmap only when some selected row is missing, as at ingest. The profile is recomputed
// for the subset with the ingest's summaries (Note [Profile sketches]) fed every value: exact up
// to the same limits, sketched beyond them; `bytes` stays the source CSV's size and `badRows` is 0.
// The source description is copied unchanged. The output is a function of the source and the rows
// alone (no clock, no random seed), so cutting the same shard twice gives byte-identical files with
// the same SHA-256.
//
// The file is written under a hidden temporary name in the target directory, synced, and renamed
// over `path`, so a reader (or a crash) never sees half a file under the real name.

extension ColumnarDataset {
    /// Writes the rows `rows` (indices into this dataset, in the order given, repeats allowed) as a
    /// dataset file at `path` (Note [Subset files]). Returns the file's size and the hex SHA-256 of
    /// the whole file.
    public func writeSubset(rows: [Int], to path: String) throws -> (bytes: Int, sha256: String) {
        if let bad = rows.first(where: { $0 < 0 || $0 >= rowCount }) {
            throw DatasetError(.invalidArgument, "row \(bad) is out of range: the dataset has \(rowCount) rows", path: self.path)
        }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let partial = (directory.isEmpty ? "" : directory) + "/." + name + ".partial-" + UUID().uuidString
        let fd = try FileIO.openWrite(partial)
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { FileIO.close(fd) }
            if !renamed { FileIO.unlink(partial) }
        }
        var writer = SubsetFileWriter(fd: fd, path: partial)
        var columns: [ColumnHeader] = []
        var profiles: [ColumnProfile] = []
        for c in header.columns {
            let sourceProfile = profile.column(c.name)
            let gathered = try withExtendedLifetime(self) {
                try writer.gather(c, rows: rows, source: base, sourceProfile: sourceProfile)
            }
            columns.append(gathered.0)
            profiles.append(gathered.1)
        }
        let subsetProfile = DatasetProfile(rows: rows.count, columns: columns.count, bytes: profile.bytes, badRows: 0,
                                           columnProfiles: profiles)
        let fileHeader = FileHeader(format: header.format, version: header.version, rows: rows.count, columns: columns,
                                    source: header.source, profile: subsetProfile)
        let size = try writer.finish(fileHeader)
        try FileIO.sync(fd, path: partial)
        let digest = try FileIO.sha256(fd, length: size, path: partial)
        FileIO.close(fd)
        isOpen = false
        try FileIO.rename(partial, path)
        renamed = true
        return (Int(size), digest)
    }
}

/// Lays out the buffers of one subset file (Note [Subset files]).
struct SubsetFileWriter {
    let fd: Int32
    let path: String
    /// Where the next buffer goes (a multiple of 64).
    private var cursor: Int64 = 64

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    private mutating func put(_ bytes: UnsafeRawBufferPointer) throws -> BufferRef {
        let offset = cursor
        if let p = bytes.baseAddress, bytes.count > 0 {
            try FileIO.writeFully(fd, p, bytes.count, at: offset, path: path)
        }
        cursor = (offset + Int64(bytes.count) + 63) / 64 * 64
        return BufferRef(offset: Int(offset), length: bytes.count, sha256: PieceDigest.checksum(bytes))
    }

    private mutating func put(_ bytes: [UInt8]) throws -> BufferRef { try bytes.withUnsafeBytes { try put($0) } }

    /// Gathers one column of the subset from the source mapping, writes its buffers and profiles it.
    mutating func gather(_ c: ColumnHeader, rows: [Int], source: UnsafeRawPointer, sourceProfile: ColumnProfile?) throws
        -> (ColumnHeader, ColumnProfile)
    {
        let n = rows.count
        // one byte per selected row: 1 = present (the form the profile summaries take)
        var valid = [UInt8](repeating: 1, count: n)
        var nulls = 0
        if let v = c.validity {
            let bits = source + v.offset
            for (i, row) in rows.enumerated() where bits.load(fromByteOffset: row >> 3, as: UInt8.self) & (1 << UInt8(row & 7)) == 0 {
                valid[i] = 0
                nulls += 1
            }
        }
        let values = source + c.values.offset
        var profiler = SubsetProfiler(name: c.name, type: c.type, valid: valid, nulls: nulls,
                                      bins: sourceProfile?.histogram?.counts.count ?? 20)
        var out = ColumnHeader(name: c.name, type: c.type, nullCount: nulls, values: c.values, offsets: nil, validity: nil,
                               dictionary: c.dictionary)
        switch c.type {
        case .integer, .datetime, .float:
            var gathered = [UInt64](repeating: 0, count: n)
            for (i, row) in rows.enumerated() { gathered[i] = values.load(fromByteOffset: row * 8, as: UInt64.self) }
            out.values = try gathered.withUnsafeBytes { try put($0) }
            profiler.numeric(gathered.map { c.type == .float ? Double(bitPattern: $0) : Double(Int64(bitPattern: $0)) })
        case .date:
            var gathered = [Int32](repeating: 0, count: n)
            for (i, row) in rows.enumerated() { gathered[i] = values.load(fromByteOffset: row * 4, as: Int32.self) }
            out.values = try gathered.withUnsafeBytes { try put($0) }
            profiler.numeric(gathered.map { Double($0) })
        case .categorical:
            var gathered = [UInt32](repeating: 0, count: n)
            for (i, row) in rows.enumerated() { gathered[i] = values.load(fromByteOffset: row * 4, as: UInt32.self) }
            out.values = try gathered.withUnsafeBytes { try put($0) }
            profiler.categorical(gathered, dictionary: c.dictionary ?? [])
        case .boolean:
            var bits = [UInt8](repeating: 0, count: (n + 7) / 8)
            var trues = 0
            for (i, row) in rows.enumerated() where values.load(fromByteOffset: row >> 3, as: UInt8.self) & (1 << UInt8(row & 7)) != 0 {
                bits[i >> 3] |= 1 << UInt8(i & 7)
                if valid[i] != 0 { trues += 1 }
            }
            out.values = try put(bits)
            profiler.boolean(trues: trues)
        case .text:
            let sourceOffsets = source + c.offsets!.offset
            var offsets = [Int64](repeating: 0, count: n + 1)
            var total: Int64 = 0
            for (i, row) in rows.enumerated() {
                let start = sourceOffsets.load(fromByteOffset: row * 8, as: Int64.self)
                let end = sourceOffsets.load(fromByteOffset: row * 8 + 8, as: Int64.self)
                total += end - start
                offsets[i + 1] = total
            }
            var bytes = [UInt8](repeating: 0, count: Int(total))
            bytes.withUnsafeMutableBytes { b in
                for (i, row) in rows.enumerated() {
                    let start = Int(sourceOffsets.load(fromByteOffset: row * 8, as: Int64.self))
                    let count = Int(offsets[i + 1] - offsets[i])
                    if count > 0 { (b.baseAddress! + Int(offsets[i])).copyMemory(from: values + start, byteCount: count) }
                }
            }
            out.offsets = try offsets.withUnsafeBytes { try put($0) }
            out.values = try put(bytes)
            profiler.text(offsets: offsets, bytes: bytes)
        }
        if nulls > 0 {
            var bits = [UInt8](repeating: 0, count: (n + 7) / 8)
            for i in 0..<n where valid[i] != 0 { bits[i >> 3] |= 1 << UInt8(i & 7) }
            out.validity = try put(bits)
        }
        return (out, profiler.result)
    }

    /// Writes the header and the preamble; returns the file's length.
    func finish(_ header: FileHeader) throws -> Int64 {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let json = [UInt8](try encoder.encode(header))
        let headerOffset = cursor
        try json.withUnsafeBytes { try FileIO.writeFully(fd, $0.baseAddress!, json.count, at: headerOffset, path: path) }
        var preamble = [UInt8](repeating: 0, count: 64)
        preamble.replaceSubrange(0..<8, with: datasetMagic)
        DatasetWriter.storeLE(&preamble, 8, UInt64(datasetVersion), bytes: 4)
        DatasetWriter.storeLE(&preamble, 16, UInt64(headerOffset), bytes: 8)
        DatasetWriter.storeLE(&preamble, 24, UInt64(json.count), bytes: 8)
        preamble.replaceSubrange(32..<64, with: SHA256.hash(json))
        try preamble.withUnsafeBytes { try FileIO.writeFully(fd, $0.baseAddress!, 64, at: 0, path: path) }
        let length = headerOffset + Int64(json.count)
        try FileIO.truncate(fd, length, path: path)
        return length
    }
}

/// The profile of one column of a subset, from the same summaries as ingest (Note [Profile sketches]).
struct SubsetProfiler {
    static let exactDistinctLimit = 16_384
    static let exactQuantileLimit = 131_072
    static let topValueCount = 10

    let type: ColumnType
    let valid: [UInt8]
    let bins: Int
    var result: ColumnProfile

    init(name: String, type: ColumnType, valid: [UInt8], nulls: Int, bins: Int) {
        self.type = type
        self.valid = valid
        self.bins = max(1, bins)
        result = ColumnProfile(name: name, type: type, count: valid.count - nulls, missing: nulls, distinct: 0, distinctExact: true)
    }

    /// Integer, float, date (days) and datetime (µs) values as Doubles; missing rows hold 0.
    mutating func numeric(_ values: [Double]) {
        var doubles = values
        let n = doubles.count
        guard n > 0 else { return }
        let moments = doubles.withUnsafeBufferPointer { v in
            valid.withUnsafeBufferPointer { Moments.of(v.baseAddress!, count: n, valid: $0.baseAddress!) }
        }
        guard moments.count > 0 else { return }
        var keys: [UInt64] = []
        keys.reserveCapacity(moments.count)
        var sketch = QuantileSketch(exactLimit: Self.exactQuantileLimit, seed: 0x6E65_6275_6C61)
        for i in 0..<n where valid[i] != 0 {
            keys.append(numericKey(doubles[i]))
            sketch.insert(doubles[i], level: 0)
        }
        sketch.compress()
        var distinct = DistinctCounter(limit: Self.exactDistinctLimit)
        keys.withUnsafeBufferPointer { distinct.add(keys: $0.baseAddress!, count: $0.count) }
        result.distinct = distinct.estimate
        result.distinctExact = distinct.isExact
        result.mean = moments.mean
        result.std = moments.sampleStd
        result.min = moments.min
        result.max = moments.max
        if let q = sketch.quantiles([0.25, 0.5, 0.75]) {
            result.q25 = q[0]
            result.q50 = q[1]
            result.q75 = q[2]
            result.quantilesExact = sketch.isExact
        }
        if let table = distinct.exactTable {
            let type = self.type
            result.topValues = table.top(Self.topValueCount).map { key, count in
                let v = Double(bitPattern: key)
                let label: String = switch type {
                case .integer: String(Int64(v))
                case .date: FieldValue.formatDate(days: Int(v))
                case .datetime: FieldValue.formatDatetime(micros: Int64(v))
                default: String(v)
                }
                return ValueCount(value: label, count: count)
            }
            result.topValuesExact = true
        }
        var histogram = HistogramBuilder(bins: bins, lower: moments.min, upper: moments.max, enabled: true)
        doubles.withUnsafeMutableBufferPointer { d in
            valid.withUnsafeBufferPointer { histogram.add(d.baseAddress!, $0.baseAddress!, n) }
        }
        if histogram.enabled { result.histogram = histogram.result }
    }

    mutating func boolean(trues: Int) {
        let nonNull = result.count
        let falses = nonNull - trues
        result.distinct = (trues > 0 ? 1 : 0) + (falses > 0 ? 1 : 0)
        result.mean = nonNull > 0 ? Double(trues) / Double(nonNull) : nil
        result.topValues = [ValueCount(value: "true", count: trues), ValueCount(value: "false", count: falses)]
            .filter { $0.count > 0 }.sorted { $0.count > $1.count }
        result.topValuesExact = true
    }

    mutating func categorical(_ codes: [UInt32], dictionary: [String]) {
        var counts = [Int](repeating: 0, count: dictionary.count)
        for i in codes.indices where valid[i] != 0 && Int(codes[i]) < counts.count { counts[Int(codes[i])] += 1 }
        result.distinct = counts.filter { $0 > 0 }.count
        let order = counts.indices.sorted { counts[$0] != counts[$1] ? counts[$0] > counts[$1] : $0 < $1 }
        result.topValues = order.prefix(Self.topValueCount).filter { counts[$0] > 0 }
            .map { ValueCount(value: dictionary[$0], count: counts[$0]) }
        result.topValuesExact = true
    }

    mutating func text(offsets: [Int64], bytes: [UInt8]) {
        var distinct = DistinctCounter(limit: Self.exactDistinctLimit)
        var frequent = FrequentStrings(exactLimit: Self.exactDistinctLimit)
        let n = valid.count
        let block = 65_536
        var keys: [UInt64] = []
        let storage = bytes.isEmpty ? [0] : bytes  // every string empty: a valid pointer for the hash
        storage.withUnsafeBufferPointer { b in
            var start = 0
            while start < n {
                let end = min(n, start + block)
                var counts: [String: Int] = [:]
                keys.removeAll(keepingCapacity: true)
                for i in start..<end where valid[i] != 0 {
                    let from = Int(offsets[i])
                    let count = Int(offsets[i + 1]) - from
                    let p = b.baseAddress! + from
                    keys.append(hashBytes(p, count))
                    counts[String(decoding: UnsafeBufferPointer(start: p, count: count), as: UTF8.self), default: 0] += 1
                }
                keys.withUnsafeBufferPointer { if let k = $0.baseAddress { distinct.add(keys: k, count: $0.count) } }
                frequent.merge(counts)
                start = end
            }
        }
        result.distinct = distinct.estimate
        result.distinctExact = distinct.isExact
        result.topValues = frequent.top(Self.topValueCount).map { ValueCount(value: $0.0, count: $0.1) }
        result.topValuesExact = frequent.exact
    }
}

extension FileIO {
    /// fsync: the bytes are on disk before the file is renamed into place.
    static func sync(_ fd: Int32, path: String) throws {
        if fsync(fd) != 0 { throw DatasetError(.io, "cannot sync: \(lastError())", path: path) }
    }

    /// Hex SHA-256 of the first `length` bytes of the file.
    static func sha256(_ fd: Int32, length: Int64, path: String) throws -> String {
        var hash = SHA256()
        var block = [UInt8](repeating: 0, count: Int(min(Int64(4 << 20), max(1, length))))
        var done: Int64 = 0
        while done < length {
            let n = Int(min(Int64(block.count), length - done))
            let got = try block.withUnsafeMutableBytes { try FileIO.readFully(fd, $0.baseAddress!, n, done, path: path) }
            if got != n { throw DatasetError(.io, "file is shorter than written", path: path) }
            block.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            done += Int64(n)
        }
        return SHA256.hex(hash.finalize())
    }
}
