import Foundation
import Logging
import Testing
@testable import NebulaStore

/// SpoolingWriter against an in-memory sink that can be switched to fail; no database.
@Suite("Store: spooling writer")
struct StoreSpoolingWriterTests {
    struct Event: Codable, Sendable, Equatable {
        var id: Int
        var text: String
        var value: Double
    }

    struct SinkDown: Error {}

    /// Collects batches; throws while `failing`.
    actor MemorySink {
        var failing = false
        var batches: [[Event]] = []
        var attempts = 0

        func setFailing(_ failing: Bool) {
            self.failing = failing
        }

        func write(_ events: [Event]) throws {
            attempts += 1
            if failing { throw SinkDown() }
            batches.append(events)
        }

        var delivered: [Event] { batches.flatMap { $0 } }
    }

    let logger = Logger(label: "nebula.store.tests.spool") { _ in SwiftLogNoOpLogHandler() }

    static func events(_ range: Range<Int>) -> [Event] {
        range.map { Event(id: $0, text: "event \($0)\twith\nnewline \"quoted\" ✓", value: $0 == 3 ? .nan : Double($0) / 2) }
    }

    /// A fresh spool directory under the temporary directory, removed afterwards.
    static func withDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("nebula-spool-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await body(directory + "/nested")
    }

    func makeWriter(_ directory: String, _ sink: MemorySink, maxBatch: Int = 3,
                    interval: Duration = .seconds(60)) throws -> SpoolingWriter<Event> {
        try SpoolingWriter<Event>(directory: directory, maxBatch: maxBatch, flushInterval: interval, logger: logger) {
            try await sink.write($0)
        }
    }

    func files(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    }

    /// Events equal up to NaN (which never equals itself).
    func same(_ a: [Event], _ b: [Event]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            x.id == y.id && x.text == y.text && (x.value == y.value || (x.value.isNaN && y.value.isNaN))
        }
    }

    @Test func batchesByMaxBatchAndFlush() async throws {
        try await Self.withDirectory { directory in
            let sink = MemorySink()
            let writer = try makeWriter(directory, sink)
            await writer.append(Self.events(0..<2))
            #expect(await sink.batches.isEmpty)
            await writer.append(Self.events(2..<4))  // reaches maxBatch
            #expect(await sink.batches.map(\.count) == [3, 1])
            await writer.append(Self.events(4..<5))
            await writer.flush()
            #expect(same(await sink.delivered, Self.events(0..<5)))
            #expect(await writer.spooledCount == 0)
            #expect(await writer.bufferedCount == 0)
        }
    }

    @Test func spoolsWhileSinkFailsThenDeliversExactlyOnceInOrder() async throws {
        try await Self.withDirectory { directory in
            let sink = MemorySink()
            await sink.setFailing(true)
            let writer = try makeWriter(directory, sink)

            await writer.append(Self.events(0..<4))
            await writer.append(Self.events(4..<7))
            await writer.append(Self.events(7..<8))
            await writer.flush()
            #expect(await sink.delivered.isEmpty)
            #expect(await writer.spooledCount == 8)
            #expect(await writer.bufferedCount == 0)
            let spooled = try files(directory)
            #expect(spooled.count >= 3)
            #expect(spooled.allSatisfy { $0.hasPrefix("spool-") && $0.hasSuffix(".jsonl") })

            await sink.setFailing(false)
            await writer.append(Self.events(8..<9))  // newer than everything on disk
            await writer.flush()
            #expect(same(await sink.delivered, Self.events(0..<9)))
            #expect(await writer.spooledCount == 0)
            #expect(try files(directory).isEmpty)

            await writer.flush()
            #expect(await sink.delivered.count == 9)
        }
    }

    @Test func newWriterReplaysLeftoverSpool() async throws {
        try await Self.withDirectory { directory in
            let failing = MemorySink()
            await failing.setFailing(true)
            do {
                let first = try makeWriter(directory, failing)
                await first.append(Self.events(0..<5))
                await first.flush()
                #expect(await first.spooledCount == 5)
            }

            let sink = MemorySink()
            let second = try makeWriter(directory, sink)
            #expect(await second.spooledCount == 5)
            await second.append(Self.events(5..<6))
            await second.flush()
            #expect(same(await sink.delivered, Self.events(0..<6)))
            #expect(await second.spooledCount == 0)
            #expect(try files(directory).isEmpty)
        }
    }

    @Test func corruptSpoolFileIsMovedAside() async throws {
        try await Self.withDirectory { directory in
            let failing = MemorySink()
            await failing.setFailing(true)
            do {
                let first = try makeWriter(directory, failing)
                await first.append(Self.events(0..<2))
                await first.flush()
            }
            // An older, corrupt file and an interrupted write.
            let corrupt = "spool-00000000000000000001-000001.jsonl"
            try Data("{\"id\": 1, \"text\": \"ok\", \"value\": 1}\nnot json at all\n".utf8)
                .write(to: URL(fileURLWithPath: directory + "/" + corrupt))
            try Data("{\"id\":".utf8).write(to: URL(fileURLWithPath: directory + "/spool-00000000000000000002-000001.jsonl.tmp"))

            let sink = MemorySink()
            let writer = try makeWriter(directory, sink)
            #expect(await writer.spooledCount == 4)
            await writer.flush()
            #expect(same(await sink.delivered, Self.events(0..<2)))
            #expect(await writer.spooledCount == 0)
            let left = try files(directory)
            #expect(left.contains(corrupt + ".corrupt"))
            #expect(left.contains("spool-00000000000000000002-000001.jsonl.tmp.corrupt"))
            #expect(left.count == 2)
        }
    }

    @Test func runFlushesPeriodicallyAndOnCancellation() async throws {
        try await Self.withDirectory { directory in
            let sink = MemorySink()
            let writer = try makeWriter(directory, sink, maxBatch: 100, interval: .milliseconds(20))
            let runner = Task { await writer.run() }
            await writer.append(Self.events(0..<3))
            var waited = 0
            while await sink.delivered.count < 3, waited < 250 {
                try await Task.sleep(for: .milliseconds(20))
                waited += 1
            }
            #expect(await sink.delivered.count == 3)

            await sink.setFailing(true)
            await writer.append(Self.events(3..<5))
            runner.cancel()
            await runner.value
            // The final flush ran: the sink refused, so the records are on disk, not lost.
            #expect(await writer.bufferedCount == 0)
            #expect(await writer.spooledCount == 2)
        }
    }

    @Test func concurrentAppendsAreDeliveredOnceWithPerProducerOrder() async throws {
        try await Self.withDirectory { directory in
            let sink = MemorySink()
            let writer = try makeWriter(directory, sink, maxBatch: 7)
            await withTaskGroup(of: Void.self) { group in
                for producer in 0..<4 {
                    group.addTask {
                        for index in 0..<50 {
                            if index == 20 && producer == 0 { await sink.setFailing(true) }
                            if index == 35 && producer == 0 { await sink.setFailing(false) }
                            await writer.append([Event(id: producer * 1000 + index, text: "p\(producer)", value: 0)])
                        }
                    }
                }
            }
            await sink.setFailing(false)
            await writer.flush()
            let delivered = await sink.delivered
            #expect(delivered.count == 200)
            #expect(Set(delivered.map(\.id)).count == 200)
            for producer in 0..<4 {
                let ids = delivered.filter { $0.id / 1000 == producer }.map(\.id)
                #expect(ids == ids.sorted())
            }
            #expect(await writer.spooledCount == 0)
        }
    }
}
