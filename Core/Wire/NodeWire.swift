import CProtobufC
import NebulaModel
import NebulaProtoC
import NebulaRPC

// Wire mapping of the shared node types (common.proto). `init(c:)` reads an unpacked C message,
// `c(in:)` builds one in an arena.

extension NodeState {
    var wire: Nebula__V1__NodeState {
        switch self {
        case .up: return NEBULA__V1__NODE_STATE__NODE_STATE_UP
        case .suspect: return NEBULA__V1__NODE_STATE__NODE_STATE_SUSPECT
        case .down: return NEBULA__V1__NODE_STATE__NODE_STATE_DOWN
        case .left: return NEBULA__V1__NODE_STATE__NODE_STATE_LEFT
        }
    }

    /// Throws on UNSPECIFIED or unknown values.
    init(wire: Nebula__V1__NodeState, _ message: String, _ field: String) throws {
        switch wire {
        case NEBULA__V1__NODE_STATE__NODE_STATE_UP: self = .up
        case NEBULA__V1__NODE_STATE__NODE_STATE_SUSPECT: self = .suspect
        case NEBULA__V1__NODE_STATE__NODE_STATE_DOWN: self = .down
        case NEBULA__V1__NODE_STATE__NODE_STATE_LEFT: self = .left
        default: throw WireError.badEnum(message: message, field: field, value: wire.rawValue)
        }
    }

    /// nil for UNSPECIFIED (an optional state, e.g. the first event's `from`).
    static func optional(wire: Nebula__V1__NodeState, _ message: String, _ field: String) throws -> NodeState? {
        wire == NEBULA__V1__NODE_STATE__NODE_STATE_UNSPECIFIED ? nil : try NodeState(wire: wire, message, field)
    }
}

extension LogLevel {
    var wire: Nebula__V1__LogLevel {
        switch self {
        case .trace: return NEBULA__V1__LOG_LEVEL__LOG_LEVEL_TRACE
        case .debug: return NEBULA__V1__LOG_LEVEL__LOG_LEVEL_DEBUG
        case .info: return NEBULA__V1__LOG_LEVEL__LOG_LEVEL_INFO
        case .notice: return NEBULA__V1__LOG_LEVEL__LOG_LEVEL_NOTICE
        case .warning: return NEBULA__V1__LOG_LEVEL__LOG_LEVEL_WARNING
        case .error: return NEBULA__V1__LOG_LEVEL__LOG_LEVEL_ERROR
        case .critical: return NEBULA__V1__LOG_LEVEL__LOG_LEVEL_CRITICAL
        }
    }

    static func optional(wire: Nebula__V1__LogLevel, _ message: String, _ field: String) throws -> LogLevel? {
        switch wire {
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_UNSPECIFIED: return nil
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_TRACE: return .trace
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_DEBUG: return .debug
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_INFO: return .info
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_NOTICE: return .notice
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_WARNING: return .warning
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_ERROR: return .error
        case NEBULA__V1__LOG_LEVEL__LOG_LEVEL_CRITICAL: return .critical
        default: throw WireError.badEnum(message: message, field: field, value: wire.rawValue)
        }
    }

    init(wire: Nebula__V1__LogLevel, _ message: String, _ field: String) throws {
        guard let level = try LogLevel.optional(wire: wire, message, field) else {
            throw WireError.badEnum(message: message, field: field, value: 0)
        }
        self = level
    }
}

extension GpuInfo {
    init(c: Nebula__V1__GpuInfo) {
        self.init(index: Int(c.index), name: str(c.name), uuid: str(c.uuid), memoryTotalBytes: c.memory_total_bytes)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__GpuInfo> {
        let m = arena.message(nebula__v1__gpu_info__init)
        m.pointee.index = UInt32(clamping: index)
        m.pointee.name = arena.string(name)
        m.pointee.uuid = arena.string(uuid)
        m.pointee.memory_total_bytes = memoryTotalBytes
        return m
    }
}

extension NodeResources {
    init(c: Nebula__V1__NodeResources) throws {
        var labels: [String: String] = [:]
        for entry in list(c.n_labels, c.labels, { $0 }) { labels[str(entry.key)] = str(entry.value) }
        self.init(hostname: str(c.hostname), cpuCores: Int(c.cpu_cores), memoryTotalBytes: c.memory_total_bytes,
                  diskTotalBytes: c.disk_total_bytes, gpus: list(c.n_gpus, c.gpus, GpuInfo.init(c:)),
                  os: str(c.os), labels: labels)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__NodeResources> {
        let m = arena.message(nebula__v1__node_resources__init)
        m.pointee.hostname = arena.string(hostname)
        m.pointee.cpu_cores = UInt32(clamping: cpuCores)
        m.pointee.memory_total_bytes = memoryTotalBytes
        m.pointee.disk_total_bytes = diskTotalBytes
        let gpuPointers = gpus.map { $0.c(in: arena) }
        m.pointee.n_gpus = gpuPointers.count
        m.pointee.gpus = arena.pointers(gpuPointers)
        m.pointee.os = arena.string(os)
        let entries = labels.sorted(by: { $0.key < $1.key }).map { key, value in
            let e: UnsafeMutablePointer<Nebula__V1__NodeResources__LabelsEntry> =
                arena.message(nebula__v1__node_resources__labels_entry__init)
            e.pointee.key = arena.string(key)
            e.pointee.value = arena.string(value)
            return e
        }
        m.pointee.n_labels = entries.count
        m.pointee.labels = arena.pointers(entries)
        return m
    }
}

extension GpuSample {
    init(c: Nebula__V1__GpuSample) {
        self.init(index: Int(c.index), utilizationPercent: c.utilization_percent,
                  memoryUsedBytes: c.memory_used_bytes, memoryTotalBytes: c.memory_total_bytes)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__GpuSample> {
        let m = arena.message(nebula__v1__gpu_sample__init)
        m.pointee.index = UInt32(clamping: index)
        m.pointee.utilization_percent = utilizationPercent
        m.pointee.memory_used_bytes = memoryUsedBytes
        m.pointee.memory_total_bytes = memoryTotalBytes
        return m
    }
}

extension HealthSample {
    init(c: Nebula__V1__HealthSample) throws {
        guard c.time_unix_ms > 0 else { throw WireError.missingField(message: "HealthSample", field: "time_unix_ms") }
        self.init(timeUnixMs: c.time_unix_ms, cpuPercent: c.cpu_percent, load1: c.load1, load5: c.load5,
                  load15: c.load15, memoryUsedBytes: c.memory_used_bytes, memoryTotalBytes: c.memory_total_bytes,
                  diskFreeBytes: c.disk_free_bytes, netRxBytesPerSec: c.net_rx_bytes_per_sec,
                  netTxBytesPerSec: c.net_tx_bytes_per_sec, gpus: list(c.n_gpus, c.gpus, GpuSample.init(c:)),
                  seq: c.seq)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__HealthSample> {
        let m = arena.message(nebula__v1__health_sample__init)
        m.pointee.time_unix_ms = timeUnixMs
        m.pointee.cpu_percent = cpuPercent
        m.pointee.load1 = load1
        m.pointee.load5 = load5
        m.pointee.load15 = load15
        m.pointee.memory_used_bytes = memoryUsedBytes
        m.pointee.memory_total_bytes = memoryTotalBytes
        m.pointee.disk_free_bytes = diskFreeBytes
        m.pointee.net_rx_bytes_per_sec = netRxBytesPerSec
        m.pointee.net_tx_bytes_per_sec = netTxBytesPerSec
        let g = gpus.map { $0.c(in: arena) }
        m.pointee.n_gpus = g.count
        m.pointee.gpus = arena.pointers(g)
        m.pointee.seq = seq
        return m
    }
}

extension LogRecord: RPCMessage {
    init(c: Nebula__V1__LogRecord) throws {
        var metadata: [String: String] = [:]
        for e in list(c.n_metadata, c.metadata, { $0 }) { metadata[str(e.key)] = str(e.value) }
        self.init(timeUnixMs: c.time_unix_ms, level: try LogLevel(wire: c.level, "LogRecord", "level"),
                  nodeId: str(c.node_id), source: str(c.source), message: str(c.message), metadata: metadata,
                  seq: c.seq)
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__LogRecord> {
        let m = arena.message(nebula__v1__log_record__init)
        m.pointee.time_unix_ms = timeUnixMs
        m.pointee.level = level.wire
        m.pointee.node_id = arena.string(nodeId)
        m.pointee.source = arena.string(source)
        m.pointee.message = arena.string(message)
        let entries = metadata.sorted(by: { $0.key < $1.key }).map { key, value in
            let e: UnsafeMutablePointer<Nebula__V1__LogRecord__MetadataEntry> =
                arena.message(nebula__v1__log_record__metadata_entry__init)
            e.pointee.key = arena.string(key)
            e.pointee.value = arena.string(value)
            return e
        }
        m.pointee.n_metadata = entries.count
        m.pointee.metadata = arena.pointers(entries)
        m.pointee.seq = seq
        return m
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "LogRecord", unpack: nebula__v1__log_record__unpack,
                          free: nebula__v1__log_record__free_unpacked) { try LogRecord(c: $0) }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return pack(c(in: arena), size: nebula__v1__log_record__get_packed_size, pack: nebula__v1__log_record__pack)
    }
}
