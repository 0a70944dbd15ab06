/// The lifecycle of a training job. Raw values are what the store and the wire carry
/// (`JobInfo.state`, the `job_event` rows).
///
/// Transition table (the only allowed changes; `JobState.allowedTransitions` is the source of truth):
///
///     (new)       -> pending                                   submitted
///     pending     -> running | cancelled | failed              placed / cancelled / invalid
///     running     -> completing | failed | cancelled           attempt ended / could not restart / cancelled
///     running     -> node_fail                                 a node of the attempt was lost
///     running     -> restarting                                a rank died, restarts remain
///     node_fail   -> restarting | failed                       restarts remain / exhausted
///     restarting  -> running | pending                         placed again at once / waiting for nodes
///     restarting  -> cancelled | failed                       (unused by `Scheduler`, which never rests
///                                                              in restarting; kept for a store that
///                                                              recorded one before a crash)
///     completing  -> completed | failed
///     completed, failed, cancelled: terminal.
///
/// See Note [Transient states] in Scheduler.swift for which states a job can rest in.
public enum JobState: String, Sendable, Hashable, CaseIterable, Codable {
    case pending
    case running
    case completing
    case completed
    case failed
    case cancelled
    case nodeFail = "node_fail"
    case restarting

    public var isTerminal: Bool { Self.terminal.contains(self) }

    public static let terminal: Set<JobState> = [.completed, .failed, .cancelled]

    /// A job is created pending: the one transition whose `from` is nil.
    public static let initial: JobState = .pending

    public struct Transition: Sendable, Hashable {
        public var from: JobState
        public var to: JobState
        public init(_ from: JobState, _ to: JobState) {
            self.from = from
            self.to = to
        }
    }

    public static let allowedTransitions: Set<Transition> = [
        .init(.pending, .running), .init(.pending, .cancelled), .init(.pending, .failed),
        .init(.running, .completing), .init(.running, .failed), .init(.running, .cancelled),
        .init(.running, .nodeFail), .init(.running, .restarting),
        .init(.nodeFail, .restarting), .init(.nodeFail, .failed),
        .init(.restarting, .pending), .init(.restarting, .running),
        .init(.restarting, .cancelled), .init(.restarting, .failed),
        .init(.completing, .completed), .init(.completing, .failed),
    ]

    /// Whether `from -> to` is in the table; `from == nil` means the job is being created.
    public static func isAllowed(from: JobState?, to: JobState) -> Bool {
        guard let from else { return to == initial }
        return allowedTransitions.contains(Transition(from, to))
    }

    /// Throws when `from -> to` is not in the table (for the shell, e.g. when replaying stored events).
    public static func validate(from: JobState?, to: JobState) throws(JobTransitionError) {
        guard isAllowed(from: from, to: to) else { throw JobTransitionError(from: from, to: to) }
    }
}

public struct JobTransitionError: Error, Hashable, CustomStringConvertible {
    public var from: JobState?
    public var to: JobState
    public init(from: JobState?, to: JobState) {
        self.from = from
        self.to = to
    }
    public var description: String {
        "job state transition \(from?.rawValue ?? "(new)") -> \(to.rawValue) is not allowed"
    }
}
