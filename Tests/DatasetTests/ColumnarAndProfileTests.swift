import Foundation
@testable import NebulaDataset
import NebulaCommon
import Testing

@Suite("Columnar file")
struct ColumnarFileTests {
    static let mixed = """
        id,x,flag,day,at,color,note
        1,0.5,true,2024-02-29,2024-02-29T12:00:00,red,"first, with comma"
        2,,false,,2024-03-01T00:00:00.5,green,
        3,-1e-3,,2024-03-02,,red,"multi
        line"

        """

    @Test func roundTripEveryType() throws {
        let s = Scratch()
        defer { s.remove() }
        var o = CSVIngestOptions()
        o.columnTypes = ["note": .text]
        let (r, d) = try ingest(Self.mixed, options: o, scratch: s)
        #expect(r.types == [.integer, .float, .boolean, .date, .datetime, .categorical, .text])
        #expect(d.rowCount == 3 && d.columnNames == r.columnNames)
        #expect(try d.column("id").withInt64s { Array($0) } == [1, 2, 3])
        let x = try d.column("x")
        #expect(x.nullCount == 1 && x.isNull(1) && x.double(2) == -0.001)
        #expect(try x.withFloat64s { Array($0) } == [0.5, 0, -0.001])
        let flag = try d.column("flag")
        #expect(flag.double(0) == 1 && flag.double(1) == 0 && flag.double(2) == nil)
        #expect(try d.column("day").withDays { Array($0) } == [19782, 0, 19784])
        #expect(try strings(d, "at") == ["2024-02-29T12:00:00", "2024-03-01T00:00:00.500000", nil])
        #expect(try d.column("color").withCodes { Array($0) } == [0, 1, 0])
        #expect(try strings(d, "note") == ["first, with comma", nil, "multi\nline"])
        #expect(throws: DatasetError.self) { try d.column("id").withFloat64s { $0.count } }
        #expect(throws: DatasetError.self) { try d.column("nope") }
        // the profile travels in the file
        #expect(d.profile.column("x")?.missing == 1)
    }

    /// Note [Direct regions]: long rows in the sample make the row estimate far too small, so the
    /// fixed-width columns outgrow their regions and continue in spill files.
    @Test func regionOverflowMovesToSpill() throws {
        let s = Scratch()
        defer { s.remove() }
        let long = String(repeating: "very long words here ", count: 100)
        var text = "id,x,note,day\n"
        for i in 0..<5 { text += "\(i),\(Double(i) / 2),\(long) \(i),2020-01-01\n" }
        for i in 5..<30_000 { text += "\(i),\(Double(i) / 2),n\(i % 7),2020-01-0\(1 + i % 9)\n" }
        var o = tinyChunks(64 << 10, threads: 2)
        o.sampleRows = 5
        let (r, d) = try ingest(text, options: o, scratch: s)
        #expect(r.rows == 30_000)
        #expect(try d.column("id").withInt64s { Array($0) } == (0..<30_000).map { Int64($0) })
        #expect(try d.column("x").withFloat64s { Array($0) } == (0..<30_000).map { Double($0) / 2 })
        #expect(try strings(d, "day")[29_999] == "2020-01-0\(1 + 29_999 % 9)")
        #expect(r.profile.column("x")?.histogram?.counts.reduce(0, +) == 30_000)
    }

    /// Where ranges cannot be collapsed (tmpfs), buffers are moved down instead: same bytes.
    @Test(.enabled(if: FileManager.default.isWritableFile(atPath: "/dev/shm")))
    func sameFileWithoutRangeCollapse() throws {
        let s = Scratch()
        defer { s.remove() }
        let csv = dataDirectory + "/penguins.csv"
        let here = s.path("p.nbds")
        let shm = "/dev/shm/nebula-dataset-test-\(UUID().uuidString).nbds"
        defer { try? FileManager.default.removeItem(atPath: shm) }
        _ = try CSVIngest.ingest(csv: csv, to: here)
        _ = try CSVIngest.ingest(csv: csv, to: shm)
        #expect(try Data(contentsOf: URL(fileURLWithPath: here)) == Data(contentsOf: URL(fileURLWithPath: shm)))
        #expect(try ColumnarDataset(path: shm).rowCount == 344)
    }

    @Test func streamedSHA256MatchesOneShot() {
        var bytes = [UInt8]()
        var state: UInt64 = 1
        for _ in 0..<10_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            bytes.append(UInt8(truncatingIfNeeded: state >> 33))
        }
        for n in [0, 1, 55, 56, 63, 64, 65, 1000, 10_000] {
            var d = SHA256()
            bytes.withUnsafeBytes { d.update(UnsafeRawBufferPointer(rebasing: $0[0..<(n / 3)])) }
            bytes.withUnsafeBytes { d.update(UnsafeRawBufferPointer(rebasing: $0[(n / 3)..<n])) }
            #expect(d.finalize() == SHA256.hash(bytes[0..<n]), "n = \(n)")
        }
    }

    /// Note [Buffer checksums]: SHA-256 over the SHA-256 digests of 1 MiB pieces, computed eight
    /// pieces at a time; checked against the plain definition with NebulaCommon's SHA-256.
    @Test(arguments: [0, 100, 1 << 20, (1 << 20) + 1, 5 * (1 << 20) + 12345])
    func pieceChecksumMatchesItsDefinition(_ n: Int) {
        var bytes = [UInt8](repeating: 0, count: n)
        var state: UInt64 = UInt64(n) | 1
        for i in 0..<n {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        var pieces: [UInt8] = []
        var o = 0
        while o < n {
            pieces += SHA256.hash(bytes[o..<min(n, o + (1 << 20))])
            o += 1 << 20
        }
        let expected = SHA256.hex(SHA256.hash(pieces))
        let streamed = PieceDigest()
        var at = 0
        var step = 1
        while at < n {
            let m = min(step, n - at)
            bytes.withUnsafeBytes { streamed.update(UnsafeRawBufferPointer(rebasing: $0[at..<(at + m)])) }
            at += m
            step = step * 7 % 3_000_001 + 1
        }
        #expect(streamed.finalize() == expected)
        #expect(bytes.withUnsafeBytes { PieceDigest.checksum($0) } == expected)
    }

    /// The four-lane SIMD SHA-256 against the scalar one (release builds use it for every piece).
    @Test func multiLaneSHA256MatchesScalar() {
        let length = 4096 + 64
        let messages = (0..<MultiLaneSHA256.lanes).map { lane in (0..<length).map { UInt8(truncatingIfNeeded: $0 * 31 + lane * 7) } }
        let pointers = messages.map { m -> UnsafeMutableRawPointer in
            let p = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 16)
            m.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: length) }
            return p
        }
        defer { pointers.forEach { $0.deallocate() } }
        let lanes = MultiLaneSHA256.hashLanes(pointers.map { UnsafeRawPointer($0) }, length: length)
        for (i, m) in messages.enumerated() { #expect(lanes[i] == SHA256.hash(m)) }
    }

    @Test func corruptionIsDetected() throws {
        let s = Scratch()
        defer { s.remove() }
        let csv = s.write("m.csv", Self.mixed)
        let out = s.path("m.nbds")
        _ = try CSVIngest.ingest(csv: csv, to: out)
        let good = try Data(contentsOf: URL(fileURLWithPath: out))
        func expectCorrupt(_ bytes: Data, _ code: DatasetError.Code, _ verify: ColumnarDataset.Verification = .full,
                           _ fragment: String) throws
        {
            let p = s.path("bad-\(UUID().uuidString).nbds")
            try bytes.write(to: URL(fileURLWithPath: p))
            do {
                _ = try ColumnarDataset(path: p, verify: verify)
                Issue.record("expected \(code)")
            } catch let e as DatasetError {
                #expect(e.code == code)
                #expect(e.description.contains(fragment), "\(e)")
            }
        }
        // a flipped byte in the first column's values
        var data = good
        let first = try ColumnarDataset(path: out, verify: .header).header.columns[0].values.offset
        data[first] ^= 0x40
        try expectCorrupt(data, .corrupt, .full, "checksum mismatch in column 'id' (values buffer)")
        let p = s.path("flipped.nbds")
        try data.write(to: URL(fileURLWithPath: p))
        #expect((try? ColumnarDataset(path: p, verify: .header)) != nil)
        // a flipped byte in the JSON header
        data = good
        data[data.count - 10] ^= 0x01
        try expectCorrupt(data, .corrupt, .header, "header checksum mismatch")
        // truncated
        try expectCorrupt(good.prefix(good.count - 100), .corrupt, .header, "out of bounds")
        // another version
        data = good
        data[8] = 9
        try expectCorrupt(data, .unsupportedVersion, .header, "version 9")
        // a foreign file
        try expectCorrupt(Data(Self.mixed.utf8), .notADataset, .header, "not a Nebula dataset file")
        try expectCorrupt(Data([1, 2, 3]), .notADataset, .header, "too short")
    }
}

@Suite("Profile")
struct ProfileTests {
    struct Expected {
        var file: String
        var column: String
        var count: Int
        var mean: Double
        var std: Double
        var min: Double
        var q: [Double]
        var max: Double
        var distinct: Int
        var histogram: [Int]
    }

    /// numpy 2.4.6: mean, std(ddof=1), min, quantile([.25, .5, .75]) (linear), max,
    /// len(set(x)), histogram(x, bins=20)[0] over the non-missing values.
    static let expected: [Expected] = [
        Expected(file: "sklearn_iris.csv", column: "sepal length (cm)", count: 150, mean: 5.843333333333334,
                 std: 0.828066127977863, min: 4.3, q: [5.1, 5.8, 6.4], max: 7.9, distinct: 35,
                 histogram: [4, 5, 7, 16, 9, 5, 13, 14, 10, 6, 10, 16, 7, 11, 4, 2, 4, 1, 5, 1]),
        Expected(file: "sklearn_iris.csv", column: "petal width (cm)", count: 150, mean: 1.1993333333333336,
                 std: 0.7622376689603465, min: 0.1, q: [0.3, 1.3, 1.8], max: 2.5, distinct: 22,
                 histogram: [34, 7, 7, 1, 1, 0, 0, 7, 3, 5, 21, 12, 4, 2, 12, 11, 6, 3, 8, 6]),
        Expected(file: "penguins.csv", column: "bill_length_mm", count: 342, mean: 43.9219298245614,
                 std: 5.4595837139265315, min: 32.1, q: [39.225, 44.45, 48.5], max: 59.6, distinct: 164,
                 histogram: [2, 7, 20, 20, 30, 27, 29, 19, 17, 32, 34, 21, 27, 34, 13, 3, 3, 2, 1, 1]),
        Expected(file: "penguins.csv", column: "body_mass_g", count: 342, mean: 4201.754385964912,
                 std: 801.9545356980955, min: 2700, q: [3550, 4050, 4750], max: 6300, distinct: 94,
                 histogram: [3, 12, 13, 30, 32, 39, 35, 18, 25, 17, 19, 22, 16, 12, 10, 17, 11, 5, 5, 1]),
        Expected(file: "vega_seattle_weather.csv", column: "precipitation", count: 1461, mean: 3.02943189596167,
                 std: 6.680194322314738, min: 0, q: [0, 0, 2.8], max: 55.9, distinct: 111,
                 histogram: [1090, 123, 68, 48, 35, 22, 21, 15, 5, 12, 4, 7, 3, 2, 0, 1, 2, 0, 0, 3]),
        Expected(file: "vega_seattle_weather.csv", column: "wind", count: 1461, mean: 3.24113620807666,
                 std: 1.4378250588746193, min: 0.4, q: [2.2, 3.0, 4.0], max: 9.5, distinct: 79,
                 histogram: [15, 72, 92, 197, 213, 243, 120, 145, 85, 87, 67, 35, 36, 24, 11, 7, 8, 1, 2, 1]),
    ]

    func close(_ a: Double?, _ b: Double, _ tolerance: Double = 1e-12) -> Bool {
        guard let a else { return false }
        return abs(a - b) <= tolerance * max(1, abs(b))
    }

    @Test(arguments: 0..<6)
    func matchesNumpy(_ i: Int) throws {
        let e = Self.expected[i]
        let s = Scratch()
        defer { s.remove() }
        var o = CSVIngestOptions()
        o.chunkSize = 2048
        o.threads = 2
        let r = try CSVIngest.ingest(csv: dataDirectory + "/" + e.file, to: s.path("p.nbds"), options: o)
        let p = try #require(r.profile.column(e.column))
        #expect(p.count == e.count)
        #expect(close(p.mean, e.mean) && close(p.std, e.std))
        #expect(p.min == e.min && p.max == e.max)
        #expect(p.quantilesExact == true)
        #expect(close(p.q25, e.q[0]) && close(p.q50, e.q[1]) && close(p.q75, e.q[2]))
        #expect(p.distinct == e.distinct && p.distinctExact)
        #expect(p.histogram?.counts == e.histogram)
        #expect(p.histogram?.lower == e.min && p.histogram?.upper == e.max)
        let json = try JSONEncoder().encode(r.profile)
        let back = try JSONDecoder().decode(DatasetProfile.self, from: json)
        #expect(back.column(e.column)?.histogram == p.histogram)
    }

    @Test func categoricalTopValuesAndDatasetTotals() throws {
        let s = Scratch()
        defer { s.remove() }
        let path = dataDirectory + "/vega_seattle_weather.csv"
        let r = try CSVIngest.ingest(csv: path, to: s.path("w.nbds"))
        // pandas value_counts()
        let top = try #require(r.profile.column("weather")?.topValues)
        #expect(top.map(\.value) == ["sun", "fog", "rain", "drizzle", "snow"])
        #expect(top.map(\.count) == [714, 411, 259, 54, 23])
        #expect(r.profile.rows == 1461 && r.profile.columns == 6 && r.profile.bytes == 47838)
        #expect(r.profile.column("date")?.min == Double(15340))  // 2012-01-01
    }

    /// Text past `exactDistinctLimit`: Misra-Gries keeps the heavy hitters (counts low by at most
    /// n/(k+1)), HyperLogLog estimates the distinct count.
    @Test func frequentTextValuesPastTheExactLimit() throws {
        let s = Scratch()
        defer { s.remove() }
        var text = "comment\n"
        var distinct = Set<String>()
        for i in 0..<6000 {
            let v = i % 4 == 0 ? "the usual hot take" : i % 10 == 1 ? "a warm and fuzzy one" : "unique remark number \(i)"
            distinct.insert(v)
            text += v + "\n"
        }
        var o = CSVIngestOptions()
        o.chunkSize = 16 << 10
        o.threads = 2
        o.exactDistinctLimit = 200
        o.header = .present
        let (r, _) = try ingest(text, options: o, scratch: s)
        let p = try #require(r.profile.column("comment"))
        #expect(r.types == [.text])
        #expect(p.topValuesExact == false && p.distinctExact == false)
        let top = try #require(p.topValues)
        #expect(top.count >= 2)
        #expect(top[0].value == "the usual hot take" && top[0].count <= 1500 && top[0].count >= 1500 - 6000 / 1025 * 2)
        #expect(top[1].value == "a warm and fuzzy one" && top[1].count <= 600)
        #expect(abs(Double(p.distinct - distinct.count)) / Double(distinct.count) < 0.03, "\(p.distinct) vs \(distinct.count)")
    }

    /// Past `exactQuantileLimit` the quartiles come from the sketch; against the exact order
    /// statistics their rank error stays within 1% (Note [Profile sketches]), and the distinct
    /// count past `exactDistinctLimit` is a HyperLogLog estimate within 3%.
    @Test func sketchesAreAccurate() throws {
        let s = Scratch()
        defer { s.remove() }
        var values: [Double] = []
        var state: UInt64 = 42
        var text = "v\n"
        for _ in 0..<150_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let u = Double(state >> 11) / Double(1 << 53)
            let v = (-log(1 - u) * 1000).rounded() / 10  // exponential, 0.1 resolution
            values.append(v)
            text += "\(v)\n"
        }
        var o = CSVIngestOptions()
        o.chunkSize = 64 << 10
        o.threads = 2
        o.exactQuantileLimit = 10_000
        o.exactDistinctLimit = 1000
        o.header = .present
        let (r, _) = try ingest(text, options: o, scratch: s)
        let p = try #require(r.profile.column("v"))
        #expect(p.quantilesExact == false && p.distinctExact == false)
        let sorted = values.sorted()
        func rank(_ x: Double) -> Double {
            // mid-rank of x among the values
            var lo = 0, hi = sorted.count
            while lo < hi { let m = (lo + hi) / 2; if sorted[m] < x { lo = m + 1 } else { hi = m } }
            var up = lo
            while up < sorted.count && sorted[up] == x { up += 1 }
            return Double(lo + up) / 2 / Double(sorted.count)
        }
        for (q, v) in [(0.25, p.q25), (0.5, p.q50), (0.75, p.q75)] {
            let x = try #require(v)
            let lo = rank(x) - 0.01, hi = rank(x) + 0.01
            #expect(q >= lo - 0.005 && q <= hi + 0.005, "q\(q): \(x) at rank \(rank(x))")
        }
        let distinct = Set(values).count
        #expect(abs(Double(p.distinct - distinct)) / Double(distinct) < 0.03, "\(p.distinct) vs \(distinct)")
        #expect(p.count == 150_000)
    }
}
