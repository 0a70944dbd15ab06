import Foundation
import NebulaModel
import NebulaNode
import Testing

/// Output of `nvidia-smi --query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu
/// --format=csv,noheader,nounits` on a two-GPU node where the second GPU cannot report its use.
let twoGPUOutput = """
    0, NVIDIA A100-SXM4-80GB, GPU-1d3b5c2a-8f4e-4b7d-9a61-2c0e5f7d8b90, 81920, 1024, 37
    1, NVIDIA A100-SXM4-80GB, GPU-7e9f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b, 81920, [N/A], [Not Supported]

    """

/// A script standing in for nvidia-smi: prints `output` when called with exactly the query arguments.
func fakeNvidiaSMI(in directory: TemporaryDirectory, name: String = "nvidia-smi", output: String) throws -> String {
    try directory.script(name, """
        [ "$#" -eq 2 ] && [ "$1" = "\(NvidiaSMIReport.arguments[0])" ] && [ "$2" = "\(NvidiaSMIReport.arguments[1])" ] || {
            echo "unexpected arguments: $*" >&2; exit 2; }
        cat <<'EOF'
        \(output)EOF
        """)
}

@Suite("nvidia-smi output")
struct NvidiaSMIParserTests {
    static let mib: UInt64 = 1_048_576

    @Test func twoGPUsWithUnavailableFields() throws {
        let report = try NvidiaSMIReport(csv: twoGPUOutput)
        #expect(report.gpus == [
            GpuInfo(index: 0, name: "NVIDIA A100-SXM4-80GB", uuid: "GPU-1d3b5c2a-8f4e-4b7d-9a61-2c0e5f7d8b90",
                    memoryTotalBytes: 81920 * Self.mib),
            GpuInfo(index: 1, name: "NVIDIA A100-SXM4-80GB", uuid: "GPU-7e9f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
                    memoryTotalBytes: 81920 * Self.mib),
        ])
        #expect(report.samples == [
            GpuSample(index: 0, utilizationPercent: 37, memoryUsedBytes: 1024 * Self.mib, memoryTotalBytes: 81920 * Self.mib),
            GpuSample(index: 1, utilizationPercent: 0, memoryUsedBytes: 0, memoryTotalBytes: 81920 * Self.mib),
        ])
    }

    @Test func unavailableNameAndMemory() throws {
        let report = try NvidiaSMIReport(csv: "0, [N/A], [N/A], [N/A], [Unknown Error], 5\r\n")
        #expect(report.gpus == [GpuInfo(index: 0, name: "", uuid: "", memoryTotalBytes: 0)])
        #expect(report.samples == [GpuSample(index: 0, utilizationPercent: 5, memoryUsedBytes: 0, memoryTotalBytes: 0)])
    }

    @Test func emptyOutputIsNoGPUs() throws {
        #expect(try NvidiaSMIReport(csv: "") == NvidiaSMIReport())
        #expect(try NvidiaSMIReport(csv: "\n") == NvidiaSMIReport())
    }

    @Test("malformed output names the command", arguments: [
        "No devices were found\n",
        "0, Tesla T4, GPU-1, 15360, 0\n",
        "x, Tesla T4, GPU-1, 15360, 0, 0\n",
        "0, Tesla T4, GPU-1, lots, 0, 0\n",
        "0, Tesla T4, GPU-1, 15360, 0, -4\n",
    ])
    func malformed(text: String) {
        let error = #expect(throws: ProbeError.self) { try NvidiaSMIReport(csv: text, path: "/usr/bin/nvidia-smi") }
        #expect(error?.file == "/usr/bin/nvidia-smi")
        #expect(error?.code == .malformed, "\(String(describing: error))")
    }
}

@Suite("GPU probe running nvidia-smi")
struct GPUProbeTests {
    @Test func overrideRunsTheScript() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = try fakeNvidiaSMI(in: directory, name: "smi.sh", output: twoGPUOutput)
        let logs = LogRecords()
        let probe = GPUProbe(environment: [GPUProbe.overrideVariable: script, "PATH": "/nonexistent"], logger: logs.logger())

        #expect(probe.locateNvidiaSMI() == script)
        let report = await probe.report()
        #expect(report == (try NvidiaSMIReport(csv: twoGPUOutput)))
        #expect(report.gpus.map(\.index) == [0, 1])
        #expect(logs.warnings.isEmpty)
    }

    @Test func foundOnPath() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = try fakeNvidiaSMI(in: directory, name: "bin/nvidia-smi", output: twoGPUOutput)
        let probe = GPUProbe(environment: ["PATH": "/nonexistent:\(directory.path)/missing:\(directory.path)/bin"],
                             logger: LogRecords().logger())
        #expect(probe.locateNvidiaSMI() == script)
        #expect(try await probe.query()?.gpus.count == 2)
    }

    @Test(arguments: [
        [GPUProbe.overrideVariable: "/nonexistent/nvidia-smi"],
        [GPUProbe.overrideVariable: "/tmp"],
        ["PATH": "/nonexistent"],
        [:],
    ])
    func absentMeansNoGPUsAndNoWarning(environment: [String: String]) async throws {
        let logs = LogRecords()
        let probe = GPUProbe(environment: environment, logger: logs.logger())
        #expect(probe.locateNvidiaSMI() == nil)
        #expect(try await probe.query() == nil)
        #expect(await probe.report() == NvidiaSMIReport())
        #expect(logs.warnings.isEmpty)
    }

    @Test func failingRunIsAWarningAndNoGPUs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = try directory.script("nvidia-smi", """
            echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver." >&2
            exit 9
            """)
        let logs = LogRecords()
        let probe = GPUProbe(environment: [GPUProbe.overrideVariable: script], logger: logs.logger())

        let error = await #expect(throws: ProbeError.self) { try await probe.query() }
        #expect(error?.code == .commandFailed, "\(String(describing: error))")
        #expect(error?.file == script)
        #expect(error?.detail.contains("status 9") == true)
        #expect(error?.detail.contains("couldn't communicate") == true)

        #expect(await probe.report() == NvidiaSMIReport())
        #expect(logs.warnings.count == 1)
        #expect(logs.warnings.first?.metadata["probe.file"] == "\(script)")
    }

    @Test func unparsableOutputIsAnErrorNamingTheScript() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let script = try directory.script("nvidia-smi", "echo 'No devices were found'")
        let probe = GPUProbe(environment: [GPUProbe.overrideVariable: script], logger: LogRecords().logger())
        let error = await #expect(throws: ProbeError.self) { try await probe.query() }
        #expect(error?.code == .malformed, "\(String(describing: error))")
        #expect(error?.file == script)
    }

    @Test func hangingRunIsKilledAtTheTimeLimit() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // The shell's `sleep` child holds the shell's stdout and Foundation's exit-notification socket:
        // only killing the whole process group gets the result back before the sleep ends.
        // The script would run for an hour: the test only returns because the run is cut off.
        let script = try directory.script("nvidia-smi", "echo partial\nsleep 3600\necho late")
        let logs = LogRecords()
        let probe = GPUProbe(environment: [GPUProbe.overrideVariable: script], timeout: .milliseconds(300),
                             logger: logs.logger())

        let error = await #expect(throws: ProbeError.self) { try await probe.query() }
        #expect(error?.code == .timedOut, "\(String(describing: error))")
        #expect(error?.file == script)

        #expect(await probe.report() == NvidiaSMIReport())
        #expect(logs.warnings.count == 1)
    }
}
