import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a short-lived command with Foundation's `Process` and returns its standard output.
///
/// Starting a process and waiting for it block a thread, so the work runs on a dedicated Dispatch queue
/// and the caller awaits a continuation: the Swift concurrency pool is never blocked.
enum CommandRunner {
    /// Concurrent: one stuck command does not hold up an unrelated one. Each command occupies one
    /// Dispatch thread for at most its time limit.
    private static let queue = DispatchQueue(label: "nebula.node.command", attributes: .concurrent)

    /// Runs `executable` with `arguments`, stdin from /dev/null, and returns what it printed on stdout.
    ///
    /// Throws `ProbeError` (`file` is `executable`): `.commandFailed` when it cannot start, exits non-zero
    /// or dies of a signal; `.timedOut` when it runs longer than `timeout`, after which it is killed.
    static func run(_ executable: String, arguments: [String], timeout: Duration) async throws(ProbeError) -> String {
        let result: Result<String, ProbeError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(ProbeError) in
                    try runBlocking(executable, arguments: arguments, timeout: timeout)
                })
            }
        }
        return try result.get()
    }

    // Note [Command output goes to files]: stdout and stderr go to temporary files (removed on return)
    // rather than pipes. A pipe must be drained while the command runs, or a command printing more than
    // the pipe buffer blocks forever; that takes a second thread per command. A file needs none: wait for
    // the exit (or the kill), then read what is there.
    //
    // Note [Killing the process group]: on Linux, Foundation notices that a child exited only when an
    // internal socket it hands the child is closed by every process holding it, grandchildren included;
    // killing only the child would leave the wait hanging for as long as, say, a wrapper script's
    // `sleep` runs. Foundation starts every child as the leader of its own process group, so the timeout
    // kills that whole group (`kill(-pid)`). A descendant that left the group (`setsid`) can still hold
    // the socket, so the wait after the kill is bounded: the caller gets its answer regardless, and
    // Foundation reaps the child whenever that descendant ends.
    private static func runBlocking(_ executable: String, arguments: [String], timeout: Duration) throws(ProbeError) -> String {
        let stdoutFile = try TemporaryFile(for: executable)
        defer { stdoutFile.remove() }
        let stderrFile = try TemporaryFile(for: executable)
        defer { stderrFile.remove() }

        let exited = DispatchSemaphore(value: 0)
        let process = try start(executable, arguments: arguments, stdout: stdoutFile.handle, stderr: stderrFile.handle) {
            exited.signal()
        }

        if exited.wait(timeout: .now() + timeout.dispatchInterval) == .timedOut {
            // See Note [Killing the process group].
            kill(-process.processIdentifier, SIGKILL)
            _ = exited.wait(timeout: .now() + .seconds(1))
            throw ProbeError(.timedOut, file: executable, "no exit within \(timeout); killed")
        }

        let stdout = stdoutFile.contents()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how = process.terminationReason == .exit
                ? "exited with status \(process.terminationStatus)"
                : "killed by signal \(process.terminationStatus)"
            var said = stderrFile.contents().trimmingCharacters(in: .whitespacesAndNewlines)
            if said.isEmpty { said = stdout.trimmingCharacters(in: .whitespacesAndNewlines) }
            throw ProbeError(.commandFailed, file: executable, said.isEmpty ? how : "\(how): \(said.prefix(300))")
        }
        return stdout
    }
}

extension CommandRunner {
    /// Starts the command, calling `onExit` once it has exited and been reaped.
    ///
    /// Note [Retrying "Text file busy"]: exec fails with ETXTBSY while any process holds the executable
    /// open for writing. That is transient: a package upgrade replacing the binary, or, in a threaded
    /// process, another thread forking a child (which inherits every descriptor until it execs) at the
    /// moment a third thread has just written the file (as tests writing a stand-in script do). A few
    /// quick retries ride it out; any other start failure is final.
    fileprivate static func start(_ executable: String, arguments: [String], stdout: FileHandle, stderr: FileHandle,
                                  onExit: @escaping @Sendable () -> Void) throws(ProbeError) -> Process {
        var delayMs = 10
        while true {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardInput = FileHandle.nullDevice
            process.standardOutput = stdout
            process.standardError = stderr
            process.terminationHandler = { _ in onExit() }
            do {
                try process.run()
                return process
            } catch where isTextFileBusy(error) && delayMs <= 160 {
                usleep(UInt32(delayMs * 1000))
                delayMs *= 2
            } catch {
                throw ProbeError(.commandFailed, file: executable, "cannot start: \(error)")
            }
        }
    }

    /// True when `error`, or an error underlying it, is ETXTBSY.
    private static func isTextFileBusy(_ error: any Error) -> Bool {
        var current: NSError? = error as NSError
        while let nsError = current {
            if nsError.domain == NSPOSIXErrorDomain && nsError.code == Int(ETXTBSY) { return true }
            current = nsError.userInfo[NSUnderlyingErrorKey] as? NSError
        }
        return false
    }
}

/// A fresh file in the temporary directory, open for writing, that a child process writes into.
private struct TemporaryFile {
    let url: URL
    let handle: FileHandle

    init(for executable: String) throws(ProbeError) {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("nebula-command-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let handle = try? FileHandle(forWritingTo: url) else {
            throw ProbeError(.commandFailed, file: executable, "cannot create a temporary file at \(url.path)")
        }
        self.handle = handle
    }

    /// What was written, decoded as UTF-8 (invalid bytes replaced).
    func contents() -> String {
        let data = (try? Data(contentsOf: url)) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    func remove() {
        try? handle.close()
        try? FileManager.default.removeItem(at: url)
    }
}

extension Duration {
    /// The duration for a Dispatch deadline, at nanosecond resolution.
    var dispatchInterval: DispatchTimeInterval {
        let (seconds, attoseconds) = components
        let nanoseconds = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !nanoseconds.overflow, seconds >= 0 else { return seconds < 0 ? .nanoseconds(0) : .never }
        let total = nanoseconds.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        return total.overflow ? .never : .nanoseconds(Int(clamping: total.partialValue))
    }
}
