import NebulaCommon
import Testing

@Suite("Label and size formatting")
struct LabelParsingTests {
    @Test func labelsParseAndBadItemsAreNamed() throws {
        #expect(try parseLabels("rack=a,gpu=a100,,note=x=y") == ["rack": "a", "gpu": "a100", "note": "x=y"])
        #expect(try parseLabels(nil).isEmpty)
        #expect(throws: LabelError(item: "rack")) { try parseLabels("zone=1,rack") }
        #expect(throws: LabelError(item: "=a")) { try parseLabels("=a") }
        #expect("\(LabelError(item: "rack"))".contains("key=value"))
    }

    @Test func bytesForPeople() {
        #expect(humanBytes(512) == "512 B")
        #expect(humanBytes(1536) == "1.5 KiB")
        #expect(humanBytes(64 << 30) == "64.0 GiB")
    }
}
