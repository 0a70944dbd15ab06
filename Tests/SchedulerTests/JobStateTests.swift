import NebulaScheduler
import Testing

extension JobState.Transition: CustomTestStringConvertible {
    public var testDescription: String { "\(from.rawValue) -> \(to.rawValue)" }
}

@Suite("Job state transition table")
struct JobStateTests {
    @Test(arguments: Array(JobState.allowedTransitions))
    func everyAllowedPairIsAccepted(_ t: JobState.Transition) throws {
        #expect(JobState.isAllowed(from: t.from, to: t.to))
        try JobState.validate(from: t.from, to: t.to)
    }

    @Test func theTableIsTheOneDocumented() {
        let expected: [JobState: Set<JobState>] = [
            .pending: [.running, .cancelled, .failed],
            .running: [.completing, .failed, .cancelled, .nodeFail, .restarting],
            .nodeFail: [.restarting, .failed],
            .restarting: [.pending, .running, .cancelled, .failed],
            .completing: [.completed, .failed],
            .completed: [], .failed: [], .cancelled: [],
        ]
        for from in JobState.allCases {
            for to in JobState.allCases {
                #expect(JobState.isAllowed(from: from, to: to) == expected[from]!.contains(to), "\(from) -> \(to)")
            }
        }
    }

    @Test(arguments: [
        (JobState?.some(.completed), JobState.running), (.failed, .restarting), (.cancelled, .pending),
        (.pending, .completed), (.pending, .nodeFail), (.pending, .restarting), (.nodeFail, .running),
        (.completing, .cancelled), (.running, .pending), (.restarting, .completing), (.running, .running),
        (nil, .running), (nil, .failed),
    ])
    func forbiddenPairsAreRefused(from: JobState?, to: JobState) {
        #expect(!JobState.isAllowed(from: from, to: to))
        #expect(throws: JobTransitionError.self) { try JobState.validate(from: from, to: to) }
    }

    @Test func creationIsTheOnlyNilTransition() throws {
        try JobState.validate(from: nil, to: .pending)
        #expect(JobState.initial == .pending)
    }

    @Test func terminalStatesHaveNoWayOutAndOthersDo() {
        for s in JobState.allCases {
            let out = JobState.allCases.filter { JobState.isAllowed(from: s, to: $0) }
            #expect(out.isEmpty == s.isTerminal, "\(s)")
        }
        #expect(JobState.terminal == [.completed, .failed, .cancelled])
    }

    @Test func everyStateIsReachableFromPending() {
        var seen: Set<JobState> = [.pending]
        var frontier: [JobState] = [.pending]
        while let s = frontier.popLast() {
            for t in JobState.allCases where JobState.isAllowed(from: s, to: t) && seen.insert(t).inserted {
                frontier.append(t)
            }
        }
        #expect(seen == Set(JobState.allCases))
    }

    @Test func rawValuesMatchTheWireContract() {
        #expect(JobState.allCases.map(\.rawValue) ==
            ["pending", "running", "completing", "completed", "failed", "cancelled", "node_fail", "restarting"])
        #expect(JobState(rawValue: "node_fail") == .nodeFail)
    }

    @Test func errorSaysWhichTransition() {
        #expect(JobTransitionError(from: .completed, to: .running).description
            == "job state transition completed -> running is not allowed")
    }
}
