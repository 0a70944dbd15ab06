/// Detects a hung collective in one attempt of a job. Each rank reports the sequence number of the
/// collective op it has entered (allreduce #1, #2, ...); when some rank entered #k (the highest number
/// any rank reported) and others have not reached #k within `timeout` of the first rank entering it,
/// those others are stuck (dead, deadlocked or far too slow), and the whole world waits on them.
///
/// A pure state machine: the caller passes the time in. Make a new one for every attempt.
///
/// Note [Watchdog fires once per op]: `tick` returns a verdict once for a given #k, so the shell acts
/// (stops the attempt) once; a new verdict needs a higher #k to hang. A rank that has never reported
/// counts as not having entered anything. What this cannot see: every rank inside #k and the op
/// itself never completing (no rank reaches #k+1, but none is missing); that needs a progress
/// timeout on top.
public struct CollectiveWatchdog: Sendable {
    public let worldSize: Int
    public let timeout: Duration

    /// The highest sequence each rank has entered.
    private var entered: [Int: UInt64] = [:]
    /// The highest sequence any rank entered, and when the first rank entered it.
    private var front: (seq: UInt64, since: Int64)?
    private var reported: UInt64?

    public init(worldSize: Int, timeout: Duration = .seconds(120)) {
        self.worldSize = worldSize
        self.timeout = timeout
    }

    /// Rank `rank` entered collective `seq` at `now`. Ranks outside the world and reports that go
    /// backwards for a rank are ignored.
    public mutating func entered(rank: Int, seq: UInt64, now: Int64) {
        guard rank >= 0, rank < worldSize else { return }
        if let previous = entered[rank], seq <= previous { return }
        entered[rank] = seq
        if front == nil || seq > front!.seq { front = (seq, now) }
    }

    /// The hang verdict for the newest collective, once its timeout has passed, or nil.
    public mutating func tick(now: Int64) -> HangVerdict? {
        guard let front, reported != front.seq, now - front.since >= timeoutMs else { return nil }
        let missing = (0..<worldSize).filter { (entered[$0].map { $0 < front.seq }) ?? true }
        guard !missing.isEmpty else { return nil }
        reported = front.seq
        return HangVerdict(seq: front.seq, missingRanks: missing, firstEnteredAt: front.since,
                           waitedMs: now - front.since)
    }

    /// The highest sequence a rank has entered, if it has reported.
    public func lastEntered(rank: Int) -> UInt64? { entered[rank] }

    private var timeoutMs: Int64 {
        let (s, atto) = timeout.components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}

/// Ranks that have not entered collective `seq` though another rank entered it `waitedMs` ago.
public struct HangVerdict: Sendable, Hashable, CustomStringConvertible {
    public var seq: UInt64
    /// Sorted.
    public var missingRanks: [Int]
    /// When the first rank entered `seq` (ms, the caller's clock).
    public var firstEnteredAt: Int64
    public var waitedMs: Int64

    public init(seq: UInt64, missingRanks: [Int], firstEnteredAt: Int64, waitedMs: Int64) {
        self.seq = seq
        self.missingRanks = missingRanks
        self.firstEnteredAt = firstEnteredAt
        self.waitedMs = waitedMs
    }

    public var description: String {
        let ranks = missingRanks.map(String.init).joined(separator: ", ")
        return "rank\(missingRanks.count == 1 ? "" : "s") \(ranks) did not enter collective #\(seq) "
            + "within \(waitedMs / 1000) s of the first rank"
    }
}
