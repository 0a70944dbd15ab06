import Foundation
import NebulaDataset
import Testing

@Suite("Type inference and widening")
struct TypeInferenceTests {
    @Test func inferredTypesAndMissingTokens() throws {
        let s = Scratch()
        defer { s.remove() }
        let text = """
            i,f,b,d,t,c,s
            1,1.5,true,2020-01-31,2020-01-31T10:20:30Z,red,the quick brown fox
            NA,2e3,False,2020-02-29,2020-02-01 00:00,blue,jumps over the lazy dog
            -3,N/A,yes,,2020-03-01T00:00:00.250+01:00,red,null
            ?,nan,no,None,,NULL,and runs far away

            """
        let (r, d) = try ingest(text, scratch: s)
        #expect(r.types == [.integer, .float, .boolean, .date, .datetime, .categorical, .text])
        #expect(try strings(d, "i") == ["1", nil, "-3", nil])
        #expect(try d.column("f").withFloat64s { Array($0) } == [1.5, 2000, 0, 0])
        #expect(try strings(d, "b") == ["true", "false", "true", "false"])
        #expect(try strings(d, "d") == ["2020-01-31", "2020-02-29", nil, nil])
        #expect(try strings(d, "t") == ["2020-01-31T10:20:30", "2020-02-01T00:00:00", "2020-02-29T23:00:00.250000", nil])
        #expect(try strings(d, "c") == ["red", "blue", "red", nil])
        #expect(try d.column("c").dictionary == ["red", "blue"])
        #expect(try strings(d, "s") == ["the quick brown fox", "jumps over the lazy dog", nil, "and runs far away"])
        #expect(r.profile.column("f")?.missing == 2)
        #expect(r.widenings.isEmpty && r.restarts == 0)
    }

    /// The sample (5 rows) says integer; a float far into the file widens the column in place.
    @Test func integerWidensToFloatAfterTheSample() throws {
        let s = Scratch()
        defer { s.remove() }
        var text = "k,v\n"
        for i in 0..<300 { text += "\(i),\(i == 250 ? "2.5" : String(i))\n" }
        var o = tinyChunks(96)
        o.sampleRows = 5
        let (r, d) = try ingest(text, options: o, scratch: s)
        #expect(r.types == [.integer, .float])
        #expect(r.widenings == [Widening(column: "v", from: .integer, to: .float, values: 1)])
        #expect(r.restarts == 0)
        let v = try d.column("v").withFloat64s { Array($0) }
        #expect(v == (0..<300).map { $0 == 250 ? 2.5 : Double($0) })
        #expect(r.profile.column("v")?.max == 299)
    }

    /// A word after the sample widens int → categorical; rows already written are re-read so the
    /// original text ("007") survives.
    @Test func integerWidensToCategoricalWithRestart() throws {
        let s = Scratch()
        defer { s.remove() }
        var text = "code\n"
        for i in 0..<200 { text += i == 7 ? "007\n" : i == 180 ? "X1\n" : "\(i)\n" }
        var o = tinyChunks(64)
        o.sampleRows = 20
        o.header = .present
        let (r, d) = try ingest(text, options: o, scratch: s)
        #expect(r.types == [.categorical])
        #expect(r.restarts == 1)
        #expect(r.widenings.count == 1 && r.widenings[0].from == .integer && r.widenings[0].to == .categorical)
        let values = try strings(d, "code")
        #expect(values[7] == "007" && values[180] == "X1" && values[199] == "199")
        #expect(r.profile.column("code")?.distinct == 200)
    }

    @Test func columnMissingInTheSampleTakesItsTypeLater() throws {
        let s = Scratch()
        defer { s.remove() }
        var text = "a,b\n"
        for i in 0..<100 { text += "\(i),\(i < 60 ? "" : String(Double(i) / 2))\n" }
        var o = tinyChunks(128)
        o.sampleRows = 10
        let (r, d) = try ingest(text, options: o, scratch: s)
        #expect(r.types == [.integer, .float])
        #expect(r.widenings.isEmpty)
        let b = try d.column("b")
        #expect(b.nullCount == 60)
        #expect(b.double(59) == nil && b.double(61) == 30.5)
    }

    @Test func largeDictionaryBecomesText() throws {
        let s = Scratch()
        defer { s.remove() }
        var text = "name\n"
        for i in 0..<300 { text += "user\(i % 50)\n" }
        var o = tinyChunks(256)
        o.maxDictionarySize = 20
        o.header = .present
        let (r, d) = try ingest(text, options: o, scratch: s)
        #expect(r.types == [.text])
        #expect(try strings(d, "name")[123] == "user23")
        #expect(r.profile.column("name")?.distinct == 50)
        #expect(r.profile.column("name")?.topValues?.first?.count == 6)
    }

    @Test func forcedTypes() throws {
        let s = Scratch()
        defer { s.remove() }
        var o = CSVIngestOptions()
        o.columnTypes = ["zip": .categorical]
        let (r, d) = try ingest("zip,n\n02134,1\n10001,2\n", options: o, scratch: s)
        #expect(r.types == [.categorical, .integer])
        #expect(try strings(d, "zip") == ["02134", "10001"])
    }
}

@Suite("Project data files")
struct DataFileTests {
    struct Entry: Decodable {
        var name: String
        var file: String
        var rows: Int
        var cols: Int
        var missing_cells: Int
        var text_col: String?
        var target: String
    }

    static let expectedTypes: [String: [ColumnType]] = [
        "sklearn_iris": [.float, .float, .float, .float, .integer],
        "sklearn_wine": [ColumnType](repeating: .float, count: 13) + [.integer],
        "sklearn_diabetes": [ColumnType](repeating: .float, count: 11),
        "sklearn_digits_8x8": [ColumnType](repeating: .integer, count: 65),
        "penguins": [.categorical, .categorical, .float, .float, .float, .float, .categorical, .integer],
        "vega_seattle_weather": [.date, .float, .float, .float, .float, .categorical],
        "rotten_tomatoes": [.text, .categorical, .categorical],
    ]

    static func entries() throws -> [Entry] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dataDirectory + "/MANIFEST.json"))
        return try JSONDecoder().decode([Entry].self, from: data)
    }

    @Test(arguments: ["sklearn_iris", "sklearn_wine", "sklearn_diabetes", "sklearn_digits_8x8", "penguins",
                      "vega_seattle_weather", "rotten_tomatoes"])
    func manifestRowsColumnsTypesAndMissingCells(_ name: String) throws {
        let entry = try #require(try Self.entries().first { $0.name == name })
        let s = Scratch()
        defer { s.remove() }
        var o = CSVIngestOptions()
        o.chunkSize = 4096  // many chunks even for small files
        o.threads = 3
        let out = s.path("\(name).nbds")
        let r = try CSVIngest.ingest(csv: dataDirectory + "/" + entry.file, to: out, options: o)
        #expect(r.rows == entry.rows)
        #expect(r.columnNames.count == entry.cols)
        #expect(r.types == Self.expectedTypes[name])
        #expect(r.profile.columnProfiles.reduce(0) { $0 + $1.missing } == entry.missing_cells)
        if let text = entry.text_col {
            #expect(r.types[r.columnNames.firstIndex(of: text)!] == .text)
        }
        #expect(r.columnNames.contains(entry.target))
        let d = try ColumnarDataset(path: out)
        #expect(d.rowCount == entry.rows)
        // the parallel result equals a single-threaded one with one big chunk
        let single = s.path("\(name)-single.nbds")
        _ = try CSVIngest.ingest(csv: dataDirectory + "/" + entry.file, to: single)
        let e = try ColumnarDataset(path: single)
        for c in 0..<d.columnCount {
            let a = d.column(at: c)
            let b = e.column(at: c)
            #expect((0..<a.count).allSatisfy { a.string($0) == b.string($0) }, "column \(a.name)")
        }
    }
}
