import Foundation
import Logging
import NebulaModel
import NebulaRPC
import NebulaStore
import NebulaWire
import Testing

/// Real processes: the coordinator, node agents and the CLI, against a real PostgreSQL.
@Suite("Cluster backbone (real processes)", .serialized, .enabled(if: IntegrationEnvironment.enabled))
struct ClusterTests {
    @Test func twoAgentsRegisterReportHealthAndLeave() async throws {
        let db = try await TestDatabase.create()
        let cluster = try TestCluster(databaseURL: db.url)
        defer { Task { await cluster.shutdown(); await db.drop() } }
        try cluster.startCoordinator()
        try cluster.startAgent("alpha")
        try cluster.startAgent("beta")
        try await cluster.waitForState("alpha", "up")
        try await cluster.waitForState("beta", "up")

        let nodes = try cluster.nodes()
        #expect(nodes.count == 2)
        #expect(nodes["alpha"]?["responding"] as? Bool == true)
        #expect((nodes["alpha"]?["labels"] as? [String: String])?["suite"] == "integration")
        #expect((nodes["alpha"]?["cpus"] as? Int ?? 0) >= 1)

        // Health samples reach Postgres in batches.
        let pg = db.client()
        try await eventually("health rows for both nodes", context: { cluster.logs() }) {
            let rows = try await pg.query("SELECT node_id, count(*) AS n FROM node_health GROUP BY node_id ORDER BY node_id")
            return try rows.count == 2 && rows.allSatisfy { try $0.int("n") >= 2 }
        }
        // The agents' own logs are shipped and listed.
        try await eventually("alpha's shipped logs") {
            let r = try cluster.cli(["logs", "--node", "alpha", "--json"])
            return r.status == 0 && r.stdout.contains("registered with the coordinator")
        }

        // Drain and resume, seen by the CLI and told to the agent.
        let drained = try cluster.cli(["node", "drain", "alpha", "--reason", "disk swap", "--json"])
        #expect(drained.status == 0, "\(drained.stderr)")
        #expect(drained.stdout.contains("\"drained\" : true"))
        #expect(try cluster.nodes()["alpha"]?["reason"] as? String == "disk swap")
        let table = try cluster.cli(["nodes"])
        #expect(table.stdout.contains("drain"))
        try await eventually("the agent heard the drain") { cluster.agents["alpha"]!.log.contains("node drained") }
        let resumed = try cluster.cli(["node", "resume", "alpha"])
        #expect(resumed.status == 0)
        #expect(try cluster.nodes()["alpha"]?["drained"] as? Bool == false)

        let health = try cluster.cli(["health", "--json"])
        let h = try #require(try JSONSerialization.jsonObject(with: Data(health.stdout.utf8)) as? [String: Any])
        #expect(h["nodes_up"] as? Int == 2)
        #expect(h["database_ok"] as? Bool == true)

        // SIGTERM: the agent says goodbye and becomes LEFT, not DOWN.
        await cluster.agents["beta"]!.stop()
        try await cluster.waitForState("beta", "left")
        #expect(try cluster.nodes()["beta"]?["reason"] as? String == "agent stopped (SIGTERM)")

        // Events are written in batches: wait for the LEFT one to land, then read the history.
        try await eventually("beta's history ends with the LEFT event") {
            let show = try cluster.cli(["node", "show", "beta", "--json"])
            let detail = try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [String: Any]
            let events = detail?["events"] as? [[String: Any]] ?? []
            return events.first?["to"] as? String == "left" && events.contains { $0["kind"] as? String == "register" }
        }
        #expect(try cluster.cli(["node", "show", "nope"]).status == 2)
        await pg.close()
    }

    @Test func killedAgentTurnsDownWithAnEvent() async throws {
        let db = try await TestDatabase.create()
        let cluster = try TestCluster(databaseURL: db.url)
        defer { Task { await cluster.shutdown(); await db.drop() } }
        try cluster.startCoordinator()
        try cluster.startAgent("steady")
        let victim = try cluster.startAgent("victim")
        try await cluster.waitForState("steady", "up")
        try await cluster.waitForState("victim", "up")

        victim.killHard()  // kill -9: no goodbye
        try await cluster.waitForState("victim", "down")
        try await cluster.waitForState("steady", "up")
        let listing = try cluster.cli(["nodes"])
        #expect(listing.stdout.contains("down*"))

        let pg = db.client()
        try await eventually("a DOWN event for the victim in Postgres") {
            let rows = try await pg.query(
                "SELECT from_state, reason FROM node_events WHERE node_id = $1 AND to_state = 'down'", ["victim"])
            return try rows.count == 1 && rows[0].string("reason").hasPrefix("no heartbeat for")
        }
        let suspect = try await pg.query(
            "SELECT count(*) AS n FROM node_events WHERE node_id = 'victim' AND to_state = 'suspect'")
        #expect(try suspect[0].int("n") == 1)
        await pg.close()
    }

    @Test func coordinatorRestartLosesNothing() async throws {
        let db = try await TestDatabase.create()
        let cluster = try TestCluster(databaseURL: db.url)
        defer { Task { await cluster.shutdown(); await db.drop() } }
        try cluster.startCoordinator()
        try cluster.startAgent("one")
        try cluster.startAgent("two")
        try await cluster.waitForState("one", "up")
        try await cluster.waitForState("two", "up")
        _ = try cluster.cli(["node", "drain", "two", "--reason", "keep me drained"])
        try await Task.sleep(for: .seconds(2))  // let the batches land

        await cluster.coordinator!.stop()
        let pg = db.client()
        func counts() async throws -> [Int] {
            try await ["nodes", "node_events", "logs", "node_health"].asyncMap { table in
                try await pg.query("SELECT count(*) AS n FROM \(table)")[0].int("n")
            }
        }
        let before = try await counts()
        #expect(before[0] == 2)

        try cluster.startCoordinator()
        try await cluster.waitForState("one", "up")
        try await cluster.waitForState("two", "up")
        let nodes = try cluster.nodes()
        #expect(nodes["two"]?["drained"] as? Bool == true)
        #expect(nodes["two"]?["reason"] as? String == "keep me drained")
        try await eventually("events and logs after the restart") {
            let after = try await counts()
            return after[0] == 2 && zip(before, after).allSatisfy { $0 <= $1 } && after[1] > before[1]
        }
        try await eventually("a second registration event for node one") {
            let reregistered = try await pg.query(
                "SELECT count(*) AS n FROM node_events WHERE kind = 'register' AND node_id = 'one'")
            return try reregistered[0].int("n") == 2
        }
        await pg.close()
    }

    @Test func tlsClusterWorksAndRefusesPlaintext() async throws {
        let db = try await TestDatabase.create()
        let cluster = try TestCluster(databaseURL: db.url)
        defer { Task { await cluster.shutdown(); await db.drop() } }
        try cluster.enableTLS()
        try cluster.startCoordinator()
        try cluster.startAgent("secure")
        try await cluster.waitForState("secure", "up")
        #expect(cluster.coordinator!.log.contains("rpc.tls=true"))
        // The same CLI without the CA cannot talk to it.
        let plain = try cluster.cli(["nodes"], plainText: true)
        #expect(plain.status == 1)
        #expect(plain.stderr.contains("cannot reach the coordinator"))
        // The coordinator's own records are stored and listed like the nodes'.
        try await eventually("the coordinator's own log records") {
            let r = try cluster.cli(["logs", "--json", "--limit", "200"])
            return r.stdout.contains("\"node_id\":\"\"") && r.stdout.contains("node registered")
        }
    }

    @Test func wrongTokensAreRefused() async throws {
        let db = try await TestDatabase.create()
        let cluster = try TestCluster(databaseURL: db.url)
        defer { Task { await cluster.shutdown(); await db.drop() } }
        try cluster.startCoordinator()
        try cluster.startAgent("good")
        try await cluster.waitForState("good", "up")

        let intruder = try cluster.startAgent("intruder", token: "not-the-token")
        try await eventually("the intruder is told it was refused") {
            intruder.log.contains("refused the registration") && intruder.log.contains("UNAUTHENTICATED")
        }
        #expect(try cluster.nodes()["intruder"] == nil)

        let cli = try cluster.cli(["nodes"], adminToken: "wrong-admin-token")
        #expect(cli.status == 1)
        #expect(cli.stderr.contains("refused the admin token"))

        // The join token does not open the admin service; no token opens nothing.
        let asNode = try RPCChannel(configuration: .init(target: cluster.target, metadata: .bearer(cluster.joinToken)))
        await #expect(throws: RPCStatus.self) {
            _ = try await asNode.unary(AdminServicePath.listNodes, Empty(), as: NodeList.self, timeout: .seconds(10))
        }
        asNode.close()
        let anonymous = try RPCChannel(configuration: .init(target: cluster.target))
        do {
            _ = try await anonymous.unary(NodeServicePath.heartbeat, HeartbeatRequest(nodeId: "good", session: 1, samples: []),
                                          as: HeartbeatResponse.self, timeout: .seconds(10))
            Issue.record("expected UNAUTHENTICATED")
        } catch let status as RPCStatus {
            #expect(status.code == .unauthenticated)
        }
        anonymous.close()
    }

    @Test func garbageBytesAnswerInvalidArgumentAndTheCoordinatorKeepsServing() async throws {
        let db = try await TestDatabase.create()
        let cluster = try TestCluster(databaseURL: db.url)
        defer { Task { await cluster.shutdown(); await db.drop() } }
        try cluster.startCoordinator()
        try cluster.startAgent("solid")
        try await cluster.waitForState("solid", "up")

        let channel = try RPCChannel(configuration: .init(target: cluster.target, metadata: .bearer(cluster.joinToken)))
        defer { channel.close() }
        let garbage: [[UInt8]] = [[0xde, 0xad, 0xbe, 0xef], [0x0a, 0x7f, 0x01], Array(repeating: 0xff, count: 4096), []]
        for path in [NodeServicePath.register, NodeServicePath.heartbeat, NodeServicePath.leave] {
            for bytes in garbage {
                do {
                    _ = try await channel.unary(path, request: bytes, timeout: .seconds(10))
                    Issue.record("\(path) accepted \(bytes.prefix(4))")
                } catch let status as RPCStatus {
                    #expect(status.code == .invalidArgument, "\(path): \(status)")
                }
            }
        }
        // A bad node id is refused with a message that says how to fix it.
        let resources = NodeResources(hostname: "h", cpuCores: 1, memoryTotalBytes: 1, diskTotalBytes: 1)
        do {
            _ = try await channel.unary(NodeServicePath.register,
                                        RegisterRequest(nodeId: "bad id; DROP TABLE nodes", agentVersion: "x",
                                                        resources: resources, address: "", startedUnixMs: 0),
                                        as: RegisterResponse.self, timeout: .seconds(10))
            Issue.record("expected INVALID_ARGUMENT")
        } catch let status as RPCStatus {
            #expect(status.code == .invalidArgument)
            #expect(status.message.contains("--name"))
        }
        do {
            _ = try await channel.unary("/nebula.v1.NodeService/NoSuchMethod", request: [], timeout: .seconds(10))
            Issue.record("expected UNIMPLEMENTED")
        } catch let status as RPCStatus {
            #expect(status.code == .unimplemented)
        }
        #expect(cluster.coordinator!.isRunning)
        #expect(try cluster.state(of: "solid") == "up")
        #expect(try cluster.nodes().count == 1)
    }

    @Test func healthSamplesTakenWhilePostgresIsDownArriveAfterItReturns() async throws {
        // A private PostgreSQL just for this test, so taking it away does not disturb the others.
        let pgDir = FileManager.default.temporaryDirectory.appendingPathComponent("nebula-it-pg-\(UUID().uuidString.prefix(8))")
        let pgPort = try freePort()
        let url = try runScript("cluster/lib/pgctl", ["start", pgDir.path, "\(pgPort)", "--fsync", "off"])
        defer {
            _ = try? runScript("cluster/lib/pgctl", ["stop", pgDir.path, "--immediate"])
            try? FileManager.default.removeItem(at: pgDir)
        }
        let cluster = try TestCluster(databaseURL: url)
        defer { Task { await cluster.shutdown() } }
        try cluster.startCoordinator()
        try cluster.startAgent("patient")
        try await cluster.waitForState("patient", "up")

        try runScript("cluster/lib/pgctl", ["stop", pgDir.path])
        let outageStart = Int64(Date().timeIntervalSince1970 * 1000)
        try await eventually("the coordinator reports the database down and spools", context: { cluster.logs() }) {
            let r = try cluster.cli(["health", "--json"])
            guard let h = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else { return false }
            return h["database_ok"] as? Bool == false && (h["spooled_records"] as? Int ?? 0) >= 4
        }
        // Keep the database away for a few more heartbeats; the cluster keeps working without it.
        try await Task.sleep(for: .seconds(2))
        #expect(try cluster.state(of: "patient") == "up")
        let outageEnd = Int64(Date().timeIntervalSince1970 * 1000)
        try runScript("cluster/lib/pgctl", ["start", pgDir.path, "\(pgPort)", "--fsync", "off"])

        let pg = PostgresClient(url: url, logger: Logger(label: "test.db"))
        try await eventually("samples from the outage in Postgres", context: { cluster.logs() }) {
            let rows = try await pg.query("""
                SELECT count(*) AS n FROM node_health
                WHERE node_id = 'patient' AND time >= to_timestamp($1 / 1000.0) AND time <= to_timestamp($2 / 1000.0)
                """, [.int(outageStart), .int(outageEnd)])
            return try rows[0].int("n") >= 3
        }
        try await eventually("the spool drains") {
            let r = try cluster.cli(["health", "--json"])
            let h = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
            return h?["database_ok"] as? Bool == true && h?["spooled_records"] as? Int == 0
        }
        // No sample was lost or doubled: the sequence numbers of this agent are contiguous.
        let seqs = try await pg.query("SELECT seq FROM node_health WHERE node_id = 'patient' ORDER BY seq")
        let values = try seqs.map { try $0.int64("seq") }
        #expect(values == Array(values.first!...values.last!))
        await pg.close()
    }
}

extension Array {
    func asyncMap<T>(_ f: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await f(e)) }
        return out
    }
}
