import NebulaRPC
import Testing

@testable import NebulaCoordinator

@Suite("Token checks")
struct AuthTests {
    let join = "join-token-xyz"
    let admin = "admin-token-xyz"

    @Test func nodeCallsNeedTheJoinToken() {
        #expect(authorize(method: "/nebula.v1.NodeService/Register", metadata: .bearer(join), joinToken: join,
                          adminToken: admin) == nil)
        #expect(authorize(method: "/nebula.v1.NodeService/Register", metadata: .bearer(admin), joinToken: join,
                          adminToken: admin)?.code == .unauthenticated)
        #expect(authorize(method: "/nebula.v1.NodeService/Heartbeat", metadata: RPCMetadata(), joinToken: join,
                          adminToken: admin)?.message.contains("missing") == true)
    }

    @Test func adminCallsNeedTheAdminToken() {
        #expect(authorize(method: "/nebula.v1.AdminService/ListNodes", metadata: .bearer(admin), joinToken: join,
                          adminToken: admin) == nil)
        // A node's token must not grant admin rights.
        #expect(authorize(method: "/nebula.v1.AdminService/DrainNode", metadata: .bearer(join), joinToken: join,
                          adminToken: admin)?.code == .unauthenticated)
        #expect(authorize(method: "/nebula.v1.AdminService/ListNodes", metadata: RPCMetadata([("authorization", admin)]),
                          joinToken: join, adminToken: admin)?.code == .unauthenticated)
    }

    @Test func otherPathsFallThroughToUnimplemented() {
        #expect(authorize(method: "/other.Service/X", metadata: RPCMetadata(), joinToken: join, adminToken: admin) == nil)
    }

    @Test func constantTimeComparison() {
        #expect(constantTimeEqual("abc", "abc"))
        #expect(!constantTimeEqual("abc", "abd"))
        #expect(!constantTimeEqual("abc", "abcd"))
        #expect(!constantTimeEqual("", "a"))
    }

    @Test func configurationRefusesWeakOrSharedTokens() {
        var c = CoordinatorConfiguration(databaseURL: "postgresql://x", dataDirectory: "/tmp/x", joinToken: "short",
                                         adminToken: "admin-token-long")
        #expect(throws: (any Error).self) { try c.validate() }
        c.joinToken = "admin-token-long"
        #expect(throws: (any Error).self) { try c.validate() }
        c.joinToken = "join-token-long"
        #expect(throws: Never.self) { try c.validate() }
        c.databaseURL = ""
        #expect(throws: (any Error).self) { try c.validate() }
    }
}
