import NebulaScheduler
import Testing

@Suite("Collective watchdog")
struct CollectiveWatchdogTests {
    @Test func namesTheMissingRanksAfterTheTimeout() {
        var w = CollectiveWatchdog(worldSize: 4)
        for r in 0..<4 { w.entered(rank: r, seq: 1, now: 0) }
        w.entered(rank: 0, seq: 2, now: 1_000)
        w.entered(rank: 3, seq: 2, now: 1_500)
        #expect(w.tick(now: 60_000) == nil)
        #expect(w.tick(now: 120_999) == nil)  // 119.999 s after rank 0 entered #2
        let v = w.tick(now: 121_000)
        #expect(v == HangVerdict(seq: 2, missingRanks: [1, 2], firstEnteredAt: 1_000, waitedMs: 120_000))
        #expect(v?.description == "ranks 1, 2 did not enter collective #2 within 120 s of the first rank")
        #expect(w.tick(now: 200_000) == nil)  // once per op
    }

    @Test func doesNotFireWhenEveryRankArrives() {
        var w = CollectiveWatchdog(worldSize: 3, timeout: .seconds(10))
        for seq in UInt64(1)...5 {
            for r in 0..<3 { w.entered(rank: r, seq: seq, now: Int64(seq) * 1_000 + Int64(r)) }
            #expect(w.tick(now: Int64(seq) * 1_000 + 20_000) == nil)
        }
    }

    @Test func ranksThatNeverReportedAreMissing() {
        var w = CollectiveWatchdog(worldSize: 3, timeout: .seconds(5))
        #expect(w.tick(now: 1_000_000) == nil)  // nobody entered anything
        w.entered(rank: 1, seq: 1, now: 0)
        #expect(w.tick(now: 5_000)?.missingRanks == [0, 2])
    }

    @Test func theTimerFollowsTheNewestOp() {
        var w = CollectiveWatchdog(worldSize: 2, timeout: .seconds(10))
        w.entered(rank: 0, seq: 1, now: 0)
        w.entered(rank: 1, seq: 1, now: 9_000)
        w.entered(rank: 0, seq: 2, now: 9_500)
        #expect(w.tick(now: 15_000) == nil)
        #expect(w.tick(now: 19_500)?.seq == 2)
        // A later hang gets its own verdict.
        w.entered(rank: 1, seq: 2, now: 20_000)
        w.entered(rank: 1, seq: 3, now: 21_000)
        #expect(w.tick(now: 31_000) == HangVerdict(seq: 3, missingRanks: [0], firstEnteredAt: 21_000, waitedMs: 10_000))
    }

    @Test func ignoresBackwardReportsAndRanksOutsideTheWorld() {
        var w = CollectiveWatchdog(worldSize: 2, timeout: .seconds(1))
        w.entered(rank: 0, seq: 4, now: 0)
        w.entered(rank: 0, seq: 3, now: 10)
        w.entered(rank: 7, seq: 9, now: 10)
        w.entered(rank: -1, seq: 9, now: 10)
        #expect(w.lastEntered(rank: 0) == 4)
        #expect(w.lastEntered(rank: 7) == nil)
        #expect(w.tick(now: 1_000) == HangVerdict(seq: 4, missingRanks: [1], firstEnteredAt: 0, waitedMs: 1_000))
    }
}
