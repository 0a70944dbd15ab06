import Foundation
import NebulaDataset
import Testing

@Suite("CSV parsing")
struct CSVParsingTests {
    @Test func quotesDoubledQuotesAndEmbeddedNewlines() throws {
        let s = Scratch()
        defer { s.remove() }
        let text = "name,note,n\n\"Smith, J\",\"said \"\"hi\"\"\",1\nplain,\"two\nlines\",2\n\"\",\"x\"\"\",3\n"
        let (r, d) = try ingest(text, scratch: s)
        #expect(r.rows == 3)
        #expect(try strings(d, "name") == ["Smith, J", "plain", nil])
        #expect(try strings(d, "note") == ["said \"hi\"", "two\nlines", "x\""])
        #expect(r.types == [.categorical, .categorical, .integer])
    }

    @Test func crlfAndByteOrderMark() throws {
        let s = Scratch()
        defer { s.remove() }
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("a,b\r\n1,\"x\r\ny\"\r\n2,z\r\n".utf8)
        let csv = s.write("bom.csv", bytes)
        let out = s.path("bom.nbds")
        let r = try CSVIngest.ingest(csv: csv, to: out)
        let d = try ColumnarDataset(path: out)
        #expect(r.dialect.hasByteOrderMark)
        #expect(r.columnNames == ["a", "b"])
        #expect(try strings(d, "a") == ["1", "2"])
        #expect(try strings(d, "b") == ["x\r\ny", "z"])
    }

    @Test func noTrailingNewlineAndBlankLines() throws {
        let s = Scratch()
        defer { s.remove() }
        let (r, d) = try ingest("x,y\n1,2\n\n3,4", scratch: s)
        #expect(r.rows == 2)
        #expect(try strings(d, "y") == ["2", "4"])
    }

    /// Quoted fields with embedded newlines, delimiters and quotes, cut into 40-200 byte chunks
    /// over 4 threads: every chunk boundary guess that lands inside a quoted field must be fixed.
    @Test(arguments: [40, 77, 128, 200])
    func recordsCrossChunkAndThreadBoundaries(chunk: Int) throws {
        let s = Scratch()
        defer { s.remove() }
        var text = "id,comment,value\n"
        var expected: [String] = []
        for i in 0..<400 {
            let comment = i % 3 == 0 ? "line one\nline \"two\", and\nthree \(i)" : "c\(i)"
            expected.append(comment)
            let quoted = "\"" + comment.replacingOccurrences(of: "\"", with: "\"\"") + "\""
            text += "\(i),\(quoted),\(Double(i) / 4)\n"
        }
        var options = tinyChunks(chunk)
        options.sampleRows = 5
        let (r, d) = try ingest(text, options: options, scratch: s)
        #expect(r.rows == 400)
        #expect(r.reparsedChunks > 0 && r.reparsedChunks < r.chunks)
        #expect(try strings(d, "comment").map { $0 ?? "" } == expected)
        let ids = try d.column("id").withInt64s { Array($0) }
        #expect(ids == (0..<400).map { Int64($0) })
        let values = try d.column("value").withFloat64s { Array($0) }
        #expect(values == (0..<400).map { Double($0) / 4 })
    }

    @Test func raggedRowNamesFileLineAndColumn() throws {
        let s = Scratch()
        defer { s.remove() }
        let csv = s.write("ragged.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n")
        do {
            _ = try CSVIngest.ingest(csv: csv, to: s.path("r.nbds"))
            Issue.record("expected an error")
        } catch let e as DatasetError {
            #expect(e.code == .malformedRow)
            #expect(e.line == 3)
            #expect(e.column == 4)
            #expect(e.path == csv)
            #expect(e.description.hasPrefix("\(csv):3:4: expected 3 fields, found 2"))
        }
        let long = s.write("long.csv", "a,b\n1,2\n3,4,5\n\"x\"y,6\n7,8\n")
        do {
            _ = try CSVIngest.ingest(csv: long, to: s.path("l.nbds"))
            Issue.record("expected an error")
        } catch let e as DatasetError {
            #expect(e.line == 3 && e.column == 4)
        }
    }

    @Test func skipBadRowsCountsThem() throws {
        let s = Scratch()
        defer { s.remove() }
        var options = tinyChunks(32, threads: 3)
        options.skipBadRows = true
        options.header = .present
        let text = "a,b\n1,2\n3,4,5\n\"x\"y,6\n7,8\n9\n10,11\n12,\"unterminated\n13,14\n"
        let (r, d) = try ingest(text, options: options, scratch: s)
        #expect(r.badRows == 4)
        #expect(r.rows == 3)
        #expect(try strings(d, "a") == ["1", "7", "10"])
        #expect(r.badRowSamples.count == 4)
        #expect(r.badRowSamples[0].hasSuffix(":3:4: expected 2 fields, found more"))
        #expect(r.badRowSamples[1].hasSuffix(":4:4: unexpected character after a closing quote"))
        #expect(r.badRowSamples[3].hasSuffix(":8:4: unterminated quoted field"))
        #expect(r.profile.badRows == 4)
    }

    @Test func emptyFileIsAnError() throws {
        let s = Scratch()
        defer { s.remove() }
        let csv = s.write("empty.csv", "")
        #expect(throws: DatasetError.self) { try CSVIngest.ingest(csv: csv, to: s.path("e.nbds")) }
        let blank = s.write("blank.csv", "\n\n")
        #expect(throws: DatasetError.self) { try CSVIngest.ingest(csv: blank, to: s.path("b.nbds")) }
    }

    @Test func headerOnlyFileHasNoRows() throws {
        let s = Scratch()
        defer { s.remove() }
        let (r, d) = try ingest("a,b,c\n", scratch: s)
        #expect(r.rows == 0)
        #expect(r.columnNames == ["a", "b", "c"])
        #expect(d.rowCount == 0 && d.columnCount == 3)
    }

    @Test(arguments: [(",", UInt8(ascii: ",")), (";", UInt8(ascii: ";")), ("\t", UInt8(ascii: "\t")), ("|", UInt8(ascii: "|"))])
    func delimiterDetection(_ d: String, _ byte: UInt8) throws {
        let s = Scratch()
        defer { s.remove() }
        let rows = ["name\(d)score\(d)when", "\"a\(d)b\"\(d)1.5\(d)2020-01-02", "c\(d)2.5\(d)2021-03-04", "e f\(d)3\(d)2022-12-31"]
        let (r, data) = try ingest(rows.joined(separator: "\n") + "\n", scratch: s)
        #expect(r.dialect.delimiter == byte)
        #expect(r.columnNames == ["name", "score", "when"])
        #expect(r.types == [.categorical, .float, .date])
        #expect(try strings(data, "name") == ["a\(d)b", "c", "e f"])
        #expect(try strings(data, "when") == ["2020-01-02", "2021-03-04", "2022-12-31"])
    }

    @Test func headerDetection() throws {
        let s = Scratch()
        defer { s.remove() }
        let (r1, _) = try ingest("1,2\n3,4\n5,6\n", scratch: s)
        #expect(!r1.dialect.hasHeader && r1.rows == 3 && r1.columnNames == ["column_1", "column_2"])
        let (r2, _) = try ingest("x,y\n3,4\n5,6\n", scratch: s)
        #expect(r2.dialect.hasHeader && r2.rows == 2)
        let (r3, _) = try ingest("city,country\nParis,France\nLyon,France\n", scratch: s)
        #expect(r3.dialect.hasHeader && r3.rows == 2)
        let (r4, _) = try ingest("5,6.5\n", scratch: s)
        #expect(!r4.dialect.hasHeader && r4.rows == 1)
    }

    @Test func streamingReaderYieldsRecords() throws {
        let s = Scratch()
        defer { s.remove() }
        let csv = s.write("r.csv", "a;b\n\"1;2\";\"x\ny\"\n\n3;4")
        let reader = try CSVReader(path: csv, blockSize: 16)
        #expect(reader.delimiter == UInt8(ascii: ";"))
        var records: [[String]] = []
        while let r = try reader.next() { records.append(r) }
        #expect(records == [["a", "b"], ["1;2", "x\ny"], ["3", "4"]])
        let bad = s.write("bad.csv", "a,b\n1,\"open\n")
        let r2 = try CSVReader(path: bad)
        _ = try r2.next()
        #expect(throws: DatasetError.self) { try r2.next() }
    }
}
