import Testing
@testable import NebulaStore

/// Pure tests of NebulaStore: no database, no files.
@Suite("Store: values, rows, COPY text, backoff")
struct StoreValueTests {
    @Test func literalsAndOptionals() {
        let values: [PGValue] = ["text", 42, 2.5, true, nil]
        #expect(values == [.text("text"), .int(42), .double(2.5), .bool(true), .null])
        #expect(PGValue(String?.none) == .null)
        #expect(PGValue(String?("a")) == .text("a"))
        #expect(PGValue(Int?(7)) == .int(7))
        #expect(PGValue(Int32?.none) == .null)
        #expect(PGValue(Double?(1.5)) == .double(1.5))
        #expect(PGValue(Bool?(false)) == .bool(false))
    }

    @Test func textFormat() {
        #expect(PGValue.null.textValue == nil)
        #expect(PGValue.int(.min).textValue == "-9223372036854775808")
        #expect(PGValue.bool(true).textValue == "t")
        #expect(PGValue.bool(false).textValue == "f")
        #expect(PGValue.double(0.1).textValue == "0.1")
        #expect(PGValue.double(.nan).textValue == "NaN")
        #expect(PGValue.double(.infinity).textValue == "Infinity")
        #expect(PGValue.double(-.infinity).textValue == "-Infinity")
    }

    @Test func copyTextEscaping() {
        var buffer: [UInt8] = []
        CopyText.appendRow(["a\tb\nc\\d\re", nil, 5, true, "\\N", "Grüße"], to: &buffer)
        let expected = "a\\tb\\nc\\\\d\\re\t\\N\t5\tt\t\\\\N\tGrüße\n"
        #expect(String(decoding: buffer, as: UTF8.self) == expected)
    }

    @Test func copyValidation() throws {
        #expect(throws: PostgresError.self) { try CopyText.validate([["a", "b"]], columnCount: 1) }
        #expect(throws: PostgresError.self) { try CopyText.validate([["a\u{0}b"]], columnCount: 1) }
        try CopyText.validate([["a"], [nil]], columnCount: 1)
    }

    @Test func identifierQuoting() throws {
        #expect(try PostgresConnection.quoteIdentifier("jobs") == "\"jobs\"")
        #expect(try PostgresConnection.quoteIdentifier("we\"ird") == "\"we\"\"ird\"")
        #expect(throws: PostgresError.self) { try PostgresConnection.quoteIdentifier("") }
    }

    @Test func rowAccessors() throws {
        let rows = PGRows(columns: ["id", "name", "score", "ok", "missing_value", "bad"],
                          rows: [["7", "node-a", "1.5", "t", nil, "x1"]])
        #expect(rows.count == 1)
        let row = try #require(rows.first)
        #expect(try row.int64("id") == 7)
        #expect(try row.int("id") == 7)
        #expect(try row.string("name") == "node-a")
        #expect(try row.double("score") == 1.5)
        #expect(try row.bool("ok"))
        #expect(try row.optionalInt("missing_value") == nil)
        #expect(try row.optionalString("missing_value") == nil)
        #expect(row[1] == "node-a")

        let missing = #expect(throws: PostgresError.self) { try row.string("nope") }
        #expect(missing?.code == .decoding)
        #expect(missing?.description.contains("\"nope\"") == true)
        let null = #expect(throws: PostgresError.self) { try row.int64("missing_value") }
        #expect(null?.description.contains("\"missing_value\" is NULL") == true)
        let unparsable = #expect(throws: PostgresError.self) { try row.int64("bad") }
        #expect(unparsable?.code == .decoding)
        #expect(unparsable?.description.contains("\"bad\"") == true)
        #expect(throws: PostgresError.self) { try row.bool("name") }
    }

    @Test func doubleSpecialValues() throws {
        let rows = PGRows(columns: ["a", "b", "c"], rows: [["NaN", "Infinity", "-Infinity"]])
        let row = try #require(rows.first)
        #expect(try row.double("a").isNaN)
        #expect(try row.double("b") == .infinity)
        #expect(try row.double("c") == -.infinity)
    }

    @Test func backoffDoublesToCapWithJitter() {
        let start = ContinuousClock.now
        var backoff = ReconnectBackoff()
        #expect(backoff.mayAttempt(at: start))
        let delays = (0..<8).map { _ in backoff.connectFailed(at: start, jitterSample: 0) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .milliseconds(1600), .milliseconds(3200), .seconds(5), .seconds(5)])
        #expect(!backoff.mayAttempt(at: start + .seconds(4)))
        #expect(backoff.mayAttempt(at: start + .seconds(5)))

        let jittered = backoff.connectFailed(at: start, jitterSample: 1)
        #expect(nearlyEqual(jittered, .seconds(4)))  // 5 s shortened by the full 20 %
        backoff.connected()
        #expect(backoff.failures == 0)
        #expect(backoff.mayAttempt(at: start))
        #expect(nearlyEqual(backoff.connectFailed(at: start, jitterSample: 0.5), .milliseconds(90)))
    }

    private func nearlyEqual(_ a: Duration, _ b: Duration) -> Bool {
        (a > b ? a - b : b - a) < .microseconds(1)
    }

    @Test func connectionTargetHidesPassword() {
        let target = ConnectionTarget(url: "postgresql://nebula:s3cr%65t@db.example:6543/jobs")
        #expect(target.description == "nebula@db.example:6543/jobs")
        #expect(target.scrub("password s3cret and s3cr%65t") == "password *** and ***")

        let keyValue = ConnectionTarget(url: "host=h port=1 user=u password=hunter2 dbname=d")
        #expect(keyValue.description == "u@h:1/d")
        #expect(!keyValue.scrub("x hunter2 y").contains("hunter2"))
    }

    @Test func errorDescription() {
        let error = PostgresError(.query, "statement failed", sqlState: "42601", libpqMessage: "ERROR:  syntax error")
        #expect(error.description == "PostgresError.query [42601]: statement failed — ERROR:  syntax error")
        #expect(PostgresError(.unavailable).description == "PostgresError.unavailable")
        #expect(PostgresError.Code.copy != .query)
    }
}
