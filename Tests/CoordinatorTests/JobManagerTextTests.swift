@testable import NebulaCoordinator
import Testing

@Suite("Job manager texts")
struct JobManagerTextTests {
    @Test func attemptNumbersShiftAfterARestart() {
        #expect(JobManager.shiftAttempts("placed on a, b (attempt 1)", by: 3) == "placed on a, b (attempt 4)")
        #expect(JobManager.shiftAttempts("restart 1 of 3 after attempt 2 failed: attempt 2 died", by: 1)
                == "restart 1 of 3 after attempt 3 failed: attempt 3 died")
        #expect(JobManager.shiftAttempts("attempt x and attempt", by: 2) == "attempt x and attempt")
        #expect(JobManager.shiftAttempts("placed (attempt 1)", by: 0) == "placed (attempt 1)")
    }
}
