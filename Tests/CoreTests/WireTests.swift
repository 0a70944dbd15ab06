import NebulaModel
import NebulaRPC
import NebulaWire
import Testing

@Suite("Wire mapping round trips")
struct WireTests {
    static let gpu = GpuInfo(index: 1, name: "NVIDIA A100-SXM4-40GB", uuid: "GPU-1234", memoryTotalBytes: 40 << 30)
    static let resources = NodeResources(hostname: "gpu-01", cpuCores: 64, memoryTotalBytes: 512 << 30,
                                         diskTotalBytes: 4 << 40, gpus: [gpu, GpuInfo(index: 0, name: "x", uuid: "y", memoryTotalBytes: 1)],
                                         os: "Debian GNU/Linux 12", labels: ["rack": "b7", "zone": "ü-1"])
    static let sample = HealthSample(timeUnixMs: 1_795_000_000_123, cpuPercent: 37.5, load1: 1.25, load5: 0.5,
                                     load15: 0.125, memoryUsedBytes: 1 << 33, memoryTotalBytes: 1 << 35,
                                     diskFreeBytes: 1 << 38, netRxBytesPerSec: 1234.5, netTxBytesPerSec: 99,
                                     gpus: [GpuSample(index: 0, utilizationPercent: 99, memoryUsedBytes: 7, memoryTotalBytes: 8)],
                                     seq: UInt64.max - 1)
    static let info = NodeInfo(nodeId: "gpu-01", address: "10.1.2.3", state: .suspect, drained: true,
                               reason: "disk swap", resources: resources, lastSeenUnixMs: 5, registeredUnixMs: 4,
                               latest: sample, agentVersion: "0.1.0", session: 77)

    func roundTrip<M: RPCMessage & Equatable>(_ m: M) throws {
        #expect(try M(serializedBytes: m.serializedBytes()) == m)
    }

    @Test func nodeServiceMessages() throws {
        try roundTrip(RegisterRequest(nodeId: "gpu-01", agentVersion: "0.1.0", resources: Self.resources,
                                      address: "10.1.2.3", startedUnixMs: -5))
        try roundTrip(RegisterResponse(nodeId: "gpu-01", session: 9, heartbeatIntervalMs: 1000, drained: true,
                                       drainReason: "maintenance"))
        try roundTrip(HeartbeatRequest(nodeId: "n", session: 1, samples: [Self.sample, Self.sample]))
        try roundTrip(HeartbeatRequest(nodeId: "n", session: 1, samples: []))
        try roundTrip(HeartbeatResponse(reregister: false, state: .up, drained: true))
        try roundTrip(HeartbeatResponse(reregister: true, state: nil, drained: false))
        try roundTrip(NodeSessionRef(nodeId: "n", session: 3))
        try roundTrip(NodeCommand(id: 1, issuedUnixMs: 2, kind: .drain(reason: "swap disk")))
        try roundTrip(NodeCommand(id: 1, issuedUnixMs: 2, kind: .resume))
        let record = LogRecord(timeUnixMs: 1, level: .critical, nodeId: "n", source: "nebula.node",
                               message: "multi\nline ✓", metadata: ["a": "1", "b": ""], seq: 12)
        try roundTrip(record)
        try roundTrip(LogBatch(nodeId: "n", session: 2, records: [record, record]))
        try roundTrip(ShipLogsResponse(accepted: 12))
        try roundTrip(LeaveRequest(nodeId: "n", session: 2, reason: "SIGTERM"))
        try roundTrip(Empty())
    }

    @Test func adminServiceMessages() throws {
        try roundTrip(Self.info)
        var noSample = Self.info
        noSample.latest = nil
        noSample.state = .left
        try roundTrip(noSample)
        try roundTrip(NodeList(nodes: [Self.info, noSample]))
        try roundTrip(NodeList(nodes: []))
        try roundTrip(GetNodeRequest(nodeId: "n", eventsLimit: 5, samplesLimit: 0))
        try roundTrip(NodeDetail(node: Self.info,
                                 events: [NodeEvent(timeUnixMs: 1, nodeId: "gpu-01", from: nil, to: .up, reason: "registered", kind: .register),
                                          NodeEvent(timeUnixMs: 2, nodeId: "gpu-01", from: .up, to: .down, reason: "silent", kind: .state)],
                                 recent: [Self.sample]))
        try roundTrip(DrainRequest(nodeId: "n", reason: "r"))
        try roundTrip(ResumeRequest(nodeId: "n"))
        var h = ClusterHealth()
        h.nodesTotal = 3
        h.nodesUp = 2
        h.memoryUsedBytes = 1 << 40
        h.cpuPercentAvg = 12.5
        h.databaseOK = true
        h.coordinatorVersion = "0.1.0"
        try roundTrip(h)
        try roundTrip(TailLogsRequest(nodeId: "", limit: 10, follow: true, minLevel: .warning))
        try roundTrip(TailLogsRequest())
    }

    @Test func missingRequiredFieldsThrow() {
        // Empty bytes are a valid protobuf encoding of an all-default message.
        #expect(throws: WireError.missingField(message: "RegisterRequest", field: "node_id")) {
            _ = try RegisterRequest(serializedBytes: [])
        }
        #expect(throws: WireError.missingField(message: "NodeInfo", field: "node_id")) {
            _ = try NodeInfo(serializedBytes: [])
        }
        #expect(throws: WireError.missingField(message: "DrainNodeRequest", field: "reason")) {
            _ = try DrainRequest(serializedBytes: DrainRequest(nodeId: "n", reason: "").serializedBytes())
        }
        // A heartbeat answer that is not a re-registration must carry a state.
        #expect(throws: WireError.badEnum(message: "HeartbeatResponse", field: "state", value: 0)) {
            _ = try HeartbeatResponse(serializedBytes: [])
        }
        // A command without a kind.
        #expect(throws: WireError.self) { _ = try NodeCommand(serializedBytes: [0x08, 0x01]) }
    }

    @Test func unknownEnumValuesThrow() throws {
        // NodeInfo with node_id "n", resources {} and state = 99 (field 3, varint).
        let bytes: [UInt8] = [0x0a, 0x01, 0x6e, 0x18, 99, 0x32, 0x00]
        #expect(throws: WireError.badEnum(message: "NodeInfo", field: "state", value: 99)) {
            _ = try NodeInfo(serializedBytes: bytes)
        }
    }

    @Test(arguments: [[UInt8]([0xff]), [0x0a, 0x05, 0x41], [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], [0x1a, 0x03, 0x00]])
    func malformedBytesThrow(bytes: [UInt8]) {
        #expect(throws: WireError.self) { _ = try RegisterRequest(serializedBytes: bytes) }
        #expect(throws: WireError.self) { _ = try HeartbeatRequest(serializedBytes: bytes) }
    }

    @Test func unknownFieldsAreIgnored() throws {
        // A newer sender adds field 15 (varint) to LeaveRequest: older receivers still decode it.
        let bytes = LeaveRequest(nodeId: "n", session: 4, reason: "x").serializedBytes() + [0x78, 0x01]
        #expect(try LeaveRequest(serializedBytes: bytes) == LeaveRequest(nodeId: "n", session: 4, reason: "x"))
    }
}
