import Foundation
import Logging
import NebulaModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds the node's NVIDIA GPUs and their use by running `nvidia-smi`.
///
/// A node without `nvidia-smi` simply has no GPUs: that is never an error. When `nvidia-smi` exists but
/// fails or hangs (a wedged driver does that), the round reports no GPUs and logs a warning; the next
/// round tries again.
public struct GPUProbe: Sendable {
    /// The environment variable that names the `nvidia-smi` to run instead of the one on `PATH`.
    public static let overrideVariable = "NEBULA_NVIDIA_SMI"
    /// How long one `nvidia-smi` run may take before it is killed.
    public static let defaultTimeout: Duration = .seconds(5)

    public let environment: [String: String]
    public let timeout: Duration
    private let logger: Logger

    /// - Parameters:
    ///   - environment: where `NEBULA_NVIDIA_SMI` and `PATH` are looked up (the process environment by
    ///     default; tests pass their own instead of changing the process's).
    ///   - timeout: how long one run may take before it is killed.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment,
                timeout: Duration = GPUProbe.defaultTimeout, logger: Logger) {
        self.environment = environment
        self.timeout = timeout
        self.logger = logger
    }

    /// The `nvidia-smi` to run: `NEBULA_NVIDIA_SMI` when set (nil if it is not an executable file),
    /// otherwise the first executable `nvidia-smi` in a `PATH` directory; nil when there is none.
    public func locateNvidiaSMI() -> String? {
        if let override = environment[Self.overrideVariable], !override.isEmpty {
            return Self.isExecutableFile(override) ? override : nil
        }
        let path = environment["PATH"] ?? ""
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/nvidia-smi"
            if Self.isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    /// Runs `nvidia-smi` once. Returns nil when there is no `nvidia-smi`; throws `ProbeError` when it
    /// cannot start, exits non-zero, runs past `timeout` (it is then killed) or prints an unexpected format.
    public func query() async throws(ProbeError) -> NvidiaSMIReport? {
        guard let executable = locateNvidiaSMI() else { return nil }
        let output = try await CommandRunner.run(executable, arguments: NvidiaSMIReport.arguments, timeout: timeout)
        return try NvidiaSMIReport(csv: output, path: executable)
    }

    /// The GPUs and their use now; empty when there is no `nvidia-smi` or when the query failed, which
    /// is logged as a warning.
    public func report() async -> NvidiaSMIReport {
        do {
            return try await query() ?? NvidiaSMIReport()
        } catch {
            logger.warning("GPU query failed; reporting no GPUs this round",
                           metadata: ["probe.file": "\(error.file)", "probe.error": "\(error)"])
            return NvidiaSMIReport()
        }
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            && !isDirectory.boolValue && access(path, X_OK) == 0
    }
}
