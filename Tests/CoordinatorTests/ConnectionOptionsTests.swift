import Foundation
import NebulaCLI
import NebulaCommon
import Testing

@Suite("CLI connection settings")
struct ConnectionOptionsTests {
    @Test func flagsBeatEnvironmentBeatClusterEnv() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-env-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("cluster.env").path
        try "# written by cluster/up\nNEBULA_COORDINATOR=10.0.0.5:7070\nexport NEBULA_ADMIN_TOKEN=\"from-file\"\n"
            .write(toFile: file, atomically: true, encoding: .utf8)

        var options = try ConnectionOptions.parse([])
        var r = try options.resolve(environment: [:], clusterEnvPath: file)
        #expect(r.target == "10.0.0.5:7070")
        #expect(r.token == "from-file")

        r = try options.resolve(environment: ["NEBULA_ADMIN_TOKEN": "from-env"], clusterEnvPath: file)
        #expect(r.token == "from-env")

        options = try ConnectionOptions.parse(["--coordinator", "h:1", "--admin-token", "flag"])
        r = try options.resolve(environment: ["NEBULA_ADMIN_TOKEN": "from-env"], clusterEnvPath: file)
        #expect(r.target == "h:1")
        #expect(r.token == "flag")
    }

    @Test func missingSettingsSayHowToFixThem() throws {
        let options = try ConnectionOptions.parse([])
        #expect(throws: (any Error).self) { _ = try options.resolve(environment: [:], clusterEnvPath: nil) }
        do {
            _ = try options.resolve(environment: ["NEBULA_COORDINATOR": "h:1"], clusterEnvPath: nil)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("NEBULA_ADMIN_TOKEN"))
        }
    }

    @Test func envFileParsing() {
        let parsed = EnvFile.parse("A=1\n# c\n\nexport B='two words'\nC = \"x=y\"\nbroken line\n")
        #expect(parsed == ["A": "1", "B": "two words", "C": "x=y"])
    }

    @Test(arguments: [("500ms", Int64(500)), ("1s", 1000), ("1.5s", 1500), ("2m", 120_000), ("3", 3000), ("2d", 172_800_000)])
    func durations(text: String, ms: Int64) {
        #expect(Duration.parse(text)?.wholeMilliseconds == ms)
    }

    @Test(arguments: ["", "abc", "-1s", "1x", "d", "-2d"])
    func badDurations(text: String) { #expect(Duration.parse(text) == nil) }
}
