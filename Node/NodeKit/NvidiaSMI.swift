import NebulaModel

/// What one `nvidia-smi` query says about the GPUs: their identity and their current use.
public struct NvidiaSMIReport: Sendable, Hashable {
    /// The query `GPUProbe` runs; `init(csv:)` parses its output.
    public static let arguments = [
        "--query-gpu=index,name,uuid,memory.total,memory.used,utilization.gpu",
        "--format=csv,noheader,nounits",
    ]

    public var gpus: [GpuInfo]
    public var samples: [GpuSample]

    public init(gpus: [GpuInfo] = [], samples: [GpuSample] = []) {
        self.gpus = gpus
        self.samples = samples
    }

    /// Parses the output of `nvidia-smi` run with `arguments`: one line per GPU,
    /// `0, NVIDIA H100 80GB HBM3, GPU-5b8c…, 81559, 1024, 37` (memory in MiB, utilization in percent).
    ///
    /// A value the driver cannot give is printed in brackets (`[N/A]`, `[Not Supported]`,
    /// `[Unknown Error]`); for memory and utilization it counts as 0, for name and uuid as "". The index
    /// must always be a number. Empty output means no GPUs.
    public init(csv text: String, path: String = "nvidia-smi") throws(ProbeError) {
        var gpus: [GpuInfo] = []
        var samples: [GpuSample] = []
        for (number, line) in text.split(whereSeparator: \.isNewline).enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingWhitespace() }
            guard fields.count == 6 else {
                throw ProbeError(.malformed, file: path, "line \(number + 1): expected 6 comma-separated fields, found \(fields.count)")
            }
            guard let index = Int(fields[0]), index >= 0 else {
                throw ProbeError(.malformed, file: path, "line \(number + 1): index is not a number: '\(fields[0])'")
            }
            let context = "line \(number + 1)"
            let totalMiB = try Self.number(fields[3], path: path, what: "\(context) memory.total")
            let usedMiB = try Self.number(fields[4], path: path, what: "\(context) memory.used")
            let utilization = try Self.number(fields[5], path: path, what: "\(context) utilization.gpu")
            let total = Self.bytes(mebibytes: totalMiB)
            gpus.append(GpuInfo(index: index, name: Self.text(fields[1]), uuid: Self.text(fields[2]),
                                memoryTotalBytes: total))
            samples.append(GpuSample(index: index, utilizationPercent: min(utilization, 100),
                                     memoryUsedBytes: Self.bytes(mebibytes: usedMiB), memoryTotalBytes: total))
        }
        self.init(gpus: gpus, samples: samples)
    }

    /// True for the bracketed placeholders nvidia-smi prints instead of a value.
    private static func isUnavailable(_ field: Substring) -> Bool {
        (field.hasPrefix("[") && field.hasSuffix("]")) || field == "N/A"
    }

    private static func text(_ field: Substring) -> String {
        isUnavailable(field) ? "" : String(field)
    }

    private static func number(_ field: Substring, path: String, what: String) throws(ProbeError) -> Double {
        if isUnavailable(field) { return 0 }
        guard let value = Double(field), value.isFinite, value >= 0 else {
            throw ProbeError(.malformed, file: path, "\(what) is not a non-negative number: '\(field.prefix(40))'")
        }
        return value
    }

    private static func bytes(mebibytes: Double) -> UInt64 {
        let bytes = (mebibytes * 1_048_576).rounded()
        return bytes < 0x1p64 ? UInt64(bytes) : .max
    }
}
