import NebulaEngine
import NebulaTraining
import Testing

@Suite("Training data: CSV, task detection, features, split")
struct DataTests {
    @Test func csvHandlesQuotesNewlinesCRLFAndBOM() throws {
        let text = "\u{FEFF}id,text,label\r\n1,\"a, b\",x\r\n2,\"say \"\"hi\"\"\nthere\",y\r\n\r\n3,plain,x\r\n"
        let t = try CSVTable.parse(Array(text.utf8))
        #expect(t.header == ["id", "text", "label"])
        #expect(t.rowCount == 3)
        #expect(t.columns[1] == ["a, b", "say \"hi\"\nthere", "plain"])
    }

    @Test func csvErrorsNameTheLine() {
        #expect { try CSVTable.parse(Array("a,b\n1,2\n3\n".utf8), source: "f.csv") } throws: { "\($0)" == "f.csv:3: expected 2 fields like the header, found 1" }
        #expect { try CSVTable.parse(Array("a,b\n1,\"2\n".utf8), source: "f.csv") } throws: { "\($0)".contains("never closed") }
        #expect { try CSVTable.parse(Array("a,b\n".utf8), source: "f.csv") } throws: { "\($0)".contains("no rows") }
        #expect { try CSVTable.parse([], source: "f.csv") } throws: { "\($0)".contains("empty") }
    }

    @Test func unknownColumnListsTheColumns() throws {
        let t = try CSVTable.parse(Array("a,b\n1,2\n".utf8))
        #expect { try t.column(named: "c") } throws: { "\($0)".contains("the columns are: a, b") }
    }

    @Test func taskDetectionFollowsAutoGluonRules() throws {
        #expect(try TaskDetection.detect(["a", "b", "a"], column: "y").task == .binary)
        #expect(try TaskDetection.detect(["0", "1", "1", "0"], column: "y").task == .binary)
        #expect(try TaskDetection.detect(["cat", "dog", "eel"], column: "y").task == .multiclass)
        // 100 rows, 5 integer classes: ratio 0.05 ≤ 0.1 → multiclass.
        #expect(try TaskDetection.detect((0..<100).map { String($0 % 5) }, column: "y").task == .multiclass)
        // 100 rows, 20 integer values: ratio 0.2 > 0.1 → regression.
        #expect(try TaskDetection.detect((0..<100).map { String($0 % 20) }, column: "y").task == .regression)
        // 2000 rows, 60 integer values: ratio 0.03 ≤ 0.05 → multiclass; 150 values: 0.075 > 0.05 → regression.
        #expect(try TaskDetection.detect((0..<2000).map { String($0 % 60) }, column: "y").task == .multiclass)
        #expect(try TaskDetection.detect((0..<2000).map { String($0 % 150) }, column: "y").task == .regression)
        // Floats that are not integral are regression even with few values.
        #expect(try TaskDetection.detect((0..<100).map { String(Double($0 % 3) + 0.5) }, column: "y").task == .regression)
        #expect { try TaskDetection.detect(["", "NA", "nan"], column: "y") } throws: { "\($0)".contains("no values") }
        #expect { try TaskDetection.detect(["x", "x"], column: "y") } throws: { "\($0)".contains("single value") }
    }

    @Test func columnKinds() {
        #expect(ColumnInference.kind(of: ["1", "2.5", "", "-3e2"]) == .numeric)
        #expect(ColumnInference.kind(of: ["true", "False", "NA"]) == .boolean)
        #expect(ColumnInference.kind(of: ["2012-01-01", "2015-12-31"]) == .date)
        #expect(ColumnInference.kind(of: ["red", "blue", "red"]) == .categorical)
        #expect(ColumnInference.kind(of: ["a fine film indeed", "what a dull movie", "not bad at all"]) == .text)
    }

    @Test func featuresAreFittedOnTrainingRowsOnly() throws {
        let t = try CSVTable.parse(Array("x,c,d\n1,red,2020-01-01\n3,blue,2020-06-15\n,red,\n100,green,2021-01-01\n".utf8))
        let enc = try FeatureEncoder.fit(t, columns: ["x", "c", "d"], rows: [0, 1, 2])
        #expect(enc.width == 1 + 3 + 4)  // x; red, blue, other; date parts
        #expect(enc.featureNames.prefix(4) == ["x", "c=red", "c=blue", "c=other"])
        let m = try enc.transform(t, rows: [0, 2, 3])
        #expect(m[0, 0] == -1)       // (1 - 2) / 1
        #expect(m[1, 0] == 0)        // missing → mean
        #expect(m[2, 0] == 98)       // (100 - 2) / 1: test rows are not refitted
        #expect(m[2, 3] == 1)        // unseen level → other
        #expect(m[0, 1] == 1)
    }

    @Test func splitIsSeededAndStratified() {
        let a = trainTestSplit(rows: 100, testFraction: 0.2, seed: 0)
        let b = trainTestSplit(rows: 100, testFraction: 0.2, seed: 0)
        let c = trainTestSplit(rows: 100, testFraction: 0.2, seed: 1)
        #expect(a.train == b.train && a.test == b.test)
        #expect(a.test != c.test)
        #expect(a.test.count == 20 && Set(a.train + a.test).count == 100)
        let labels = (0..<100).map { $0 < 90 ? 0 : 1 }
        let s = trainTestSplit(rows: 100, testFraction: 0.2, seed: 3, stratifyBy: labels)
        #expect(s.test.filter { labels[$0] == 1 }.count == 2)
        #expect(s.test.filter { labels[$0] == 0 }.count == 18)
    }
}
