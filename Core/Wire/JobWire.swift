import CProtobufC
import NebulaModel
import NebulaProtoC
import NebulaRPC

// Messages of JobService and WorkerService (job.proto).

/// One-message conformance: unpack with `convert`, pack what `build` fills in.
private func packed<C>(_ arena: Arena, _ initialise: (UnsafeMutablePointer<C>?) -> Void,
                       size: (UnsafePointer<C>?) -> Int, pack packFn: (UnsafePointer<C>?, UnsafeMutablePointer<UInt8>?) -> Int,
                       _ build: (UnsafeMutablePointer<C>) -> Void) -> [UInt8] {
    let m = arena.message(initialise)
    build(m)
    return pack(m, size: size, pack: packFn)
}

extension JobSpec: RPCMessage {
    init(c: Nebula__V1__JobSpec) throws {
        var labels: [String: String] = [:]
        for entry in list(c.n_labels, c.labels, { $0 }) { labels[str(entry.key)] = str(entry.value) }
        guard c.min_nodes >= 1 else { throw WireError.missingField(message: "JobSpec", field: "min_nodes") }
        self.init(name: str(c.name), datasetId: try required(str(c.dataset_id), "JobSpec", "dataset_id"),
                  target: try required(str(c.target), "JobSpec", "target"), model: try required(str(c.model), "JobSpec", "model"),
                  minNodes: Int(c.min_nodes), maxNodes: Int(c.max_nodes), gpusPerNode: Int(c.gpus_per_node), labels: labels,
                  priority: Int(c.priority), epochs: Int(c.epochs), batchSize: Int(c.batch_size), learningRate: c.learning_rate,
                  seed: c.seed, maxRestarts: Int(c.max_restarts), checkpointEvery: Int(c.checkpoint_every),
                  holdoutFraction: c.holdout_fraction, task: str(c.task), bucketCapMB: Int(c.bucket_cap_mb),
                  fp16Allreduce: c.fp16_allreduce != 0, user: str(c.user), stallTimeoutSeconds: Int(c.stall_timeout_seconds),
                  gpuBatchSize: Int(c.gpu_batch_size), noOverlap: c.no_overlap != 0, builder: str(c.builder))
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__JobSpec> {
        let m = arena.message(nebula__v1__job_spec__init)
        m.pointee.name = arena.string(name)
        m.pointee.dataset_id = arena.string(datasetId)
        m.pointee.target = arena.string(target)
        m.pointee.model = arena.string(model)
        m.pointee.min_nodes = UInt32(clamping: minNodes)
        m.pointee.max_nodes = UInt32(clamping: maxNodes)
        m.pointee.gpus_per_node = UInt32(clamping: gpusPerNode)
        let entries = labels.sorted(by: { $0.key < $1.key }).map { key, value in
            let e: UnsafeMutablePointer<Nebula__V1__JobSpec__LabelsEntry> = arena.message(nebula__v1__job_spec__labels_entry__init)
            e.pointee.key = arena.string(key)
            e.pointee.value = arena.string(value)
            return e
        }
        m.pointee.n_labels = entries.count
        m.pointee.labels = arena.pointers(entries)
        m.pointee.priority = Int32(clamping: priority)
        m.pointee.epochs = UInt32(clamping: epochs)
        m.pointee.batch_size = UInt32(clamping: batchSize)
        m.pointee.learning_rate = learningRate
        m.pointee.seed = seed
        m.pointee.max_restarts = UInt32(clamping: maxRestarts)
        m.pointee.checkpoint_every = UInt32(clamping: checkpointEvery)
        m.pointee.holdout_fraction = holdoutFraction
        m.pointee.task = arena.string(task)
        m.pointee.bucket_cap_mb = UInt32(clamping: bucketCapMB)
        m.pointee.fp16_allreduce = fp16Allreduce ? 1 : 0
        m.pointee.user = arena.string(user)
        m.pointee.stall_timeout_seconds = UInt32(clamping: stallTimeoutSeconds)
        m.pointee.gpu_batch_size = UInt32(clamping: gpuBatchSize)
        m.pointee.no_overlap = noOverlap ? 1 : 0
        m.pointee.builder = arena.string(builder)
        return m
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "JobSpec", unpack: nebula__v1__job_spec__unpack,
                          free: nebula__v1__job_spec__free_unpacked) { try JobSpec(c: $0) }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return pack(c(in: arena), size: nebula__v1__job_spec__get_packed_size, pack: nebula__v1__job_spec__pack)
    }
}

extension JobInfo: RPCMessage {
    init(c: Nebula__V1__JobInfo) throws {
        guard let spec = c.spec else { throw WireError.missingField(message: "JobInfo", field: "spec") }
        self.init(jobId: try required(str(c.job_id), "JobInfo", "job_id"), name: str(c.name),
                  state: try required(str(c.state), "JobInfo", "state"), reason: str(c.reason), spec: try JobSpec(c: spec.pointee),
                  attempt: Int(c.attempt), restarts: Int(c.restarts), nodes: (0..<c.n_nodes).map { str(c.nodes[$0]) },
                  submittedUnixMs: c.submitted_unix_ms, startedUnixMs: c.started_unix_ms, finishedUnixMs: c.finished_unix_ms,
                  samplesPerSecond: c.samples_per_second, step: c.step, loss: c.loss, task: str(c.task))
    }

    func c(in arena: Arena) -> UnsafeMutablePointer<Nebula__V1__JobInfo> {
        let m = arena.message(nebula__v1__job_info__init)
        m.pointee.job_id = arena.string(jobId)
        m.pointee.name = arena.string(name)
        m.pointee.state = arena.string(state)
        m.pointee.reason = arena.string(reason)
        m.pointee.spec = spec.c(in: arena)
        m.pointee.attempt = UInt32(clamping: attempt)
        m.pointee.restarts = UInt32(clamping: restarts)
        m.pointee.n_nodes = nodes.count
        m.pointee.nodes = arena.strings(nodes)
        m.pointee.submitted_unix_ms = submittedUnixMs
        m.pointee.started_unix_ms = startedUnixMs
        m.pointee.finished_unix_ms = finishedUnixMs
        m.pointee.samples_per_second = samplesPerSecond
        m.pointee.step = step
        m.pointee.loss = loss
        m.pointee.task = arena.string(task)
        return m
    }

    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "JobInfo", unpack: nebula__v1__job_info__unpack,
                          free: nebula__v1__job_info__free_unpacked) { try JobInfo(c: $0) }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return pack(c(in: arena), size: nebula__v1__job_info__get_packed_size, pack: nebula__v1__job_info__pack)
    }
}

extension JobList: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ListJobsResponse", unpack: nebula__v1__list_jobs_response__unpack,
                          free: nebula__v1__list_jobs_response__free_unpacked) { c in
            JobList(jobs: try list(c.n_jobs, c.jobs, JobInfo.init(c:)))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__list_jobs_response__init, size: nebula__v1__list_jobs_response__get_packed_size,
                      pack: nebula__v1__list_jobs_response__pack) { m in
            let j = jobs.map { $0.c(in: arena) }
            m.pointee.n_jobs = j.count
            m.pointee.jobs = arena.pointers(j)
        }
    }
}

extension JobListRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ListJobsRequest", unpack: nebula__v1__list_jobs_request__unpack,
                          free: nebula__v1__list_jobs_request__free_unpacked) { c in
            JobListRequest(limit: Int(c.limit), all: c.all != 0)
        }
    }

    public func serializedBytes() -> [UInt8] {
        packed(Arena(), nebula__v1__list_jobs_request__init, size: nebula__v1__list_jobs_request__get_packed_size,
               pack: nebula__v1__list_jobs_request__pack) { m in
            m.pointee.limit = UInt32(clamping: limit)
            m.pointee.all = all ? 1 : 0
        }
    }
}

extension JobDetail: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "JobDetail", unpack: nebula__v1__job_detail__unpack,
                          free: nebula__v1__job_detail__free_unpacked) { c in
            guard let info = c.info else { throw WireError.missingField(message: "JobDetail", field: "info") }
            return JobDetail(info: try JobInfo(c: info.pointee), eventsJSON: str(c.events_json), ranksJSON: str(c.ranks_json),
                             checkpointsJSON: str(c.checkpoints_json), metricsJSON: str(c.metrics_json),
                             progressJSON: str(c.progress_json))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__job_detail__init, size: nebula__v1__job_detail__get_packed_size,
                      pack: nebula__v1__job_detail__pack) { m in
            m.pointee.info = info.c(in: arena)
            m.pointee.events_json = arena.string(eventsJSON)
            m.pointee.ranks_json = arena.string(ranksJSON)
            m.pointee.checkpoints_json = arena.string(checkpointsJSON)
            m.pointee.metrics_json = arena.string(metricsJSON)
            m.pointee.progress_json = arena.string(progressJSON)
        }
    }
}

extension JobRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "GetJobRequest", unpack: nebula__v1__get_job_request__unpack,
                          free: nebula__v1__get_job_request__free_unpacked) { c in
            JobRequest(jobId: try required(str(c.job_id), "GetJobRequest", "job_id"))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__get_job_request__init, size: nebula__v1__get_job_request__get_packed_size,
                      pack: nebula__v1__get_job_request__pack) { m in m.pointee.job_id = arena.string(jobId) }
    }
}

extension CancelJobRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "CancelJobRequest", unpack: nebula__v1__cancel_job_request__unpack,
                          free: nebula__v1__cancel_job_request__free_unpacked) { c in
            CancelJobRequest(jobId: try required(str(c.job_id), "CancelJobRequest", "job_id"), reason: str(c.reason))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__cancel_job_request__init, size: nebula__v1__cancel_job_request__get_packed_size,
                      pack: nebula__v1__cancel_job_request__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.reason = arena.string(reason)
        }
    }
}

extension TailJobLogsRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "TailJobLogsRequest", unpack: nebula__v1__tail_job_logs_request__unpack,
                          free: nebula__v1__tail_job_logs_request__free_unpacked) { c in
            TailJobLogsRequest(jobId: try required(str(c.job_id), "TailJobLogsRequest", "job_id"), limit: Int(c.limit),
                               follow: c.follow != 0)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__tail_job_logs_request__init, size: nebula__v1__tail_job_logs_request__get_packed_size,
                      pack: nebula__v1__tail_job_logs_request__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.limit = UInt32(clamping: limit)
            m.pointee.follow = follow ? 1 : 0
        }
    }
}

extension DownloadArtifactRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "DownloadArtifactRequest", unpack: nebula__v1__download_artifact_request__unpack,
                          free: nebula__v1__download_artifact_request__free_unpacked) { c in
            DownloadArtifactRequest(jobId: try required(str(c.job_id), "DownloadArtifactRequest", "job_id"),
                                    checkpointId: str(c.checkpoint_id))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__download_artifact_request__init,
                      size: nebula__v1__download_artifact_request__get_packed_size,
                      pack: nebula__v1__download_artifact_request__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.checkpoint_id = arena.string(checkpointId)
        }
    }
}

extension ArtifactChunk: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ArtifactChunk", unpack: nebula__v1__artifact_chunk__unpack,
                          free: nebula__v1__artifact_chunk__free_unpacked) { c in
            ArtifactChunk(offset: c.offset, data: NebulaWire.bytes(c.data), totalBytes: c.total_bytes, fileName: str(c.file_name),
                          sha256: str(c.sha256))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__artifact_chunk__init, size: nebula__v1__artifact_chunk__get_packed_size,
                      pack: nebula__v1__artifact_chunk__pack) { m in
            m.pointee.offset = offset
            m.pointee.data = arena.bytes(data)
            m.pointee.total_bytes = totalBytes
            m.pointee.file_name = arena.string(fileName)
            m.pointee.sha256 = arena.string(sha256)
        }
    }
}

extension JoinJobRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "JoinJobRequest", unpack: nebula__v1__join_job_request__unpack,
                          free: nebula__v1__join_job_request__free_unpacked) { c in
            guard c.world_size > 0 else { throw WireError.missingField(message: "JoinJobRequest", field: "world_size") }
            return JoinJobRequest(jobId: try required(str(c.job_id), "JoinJobRequest", "job_id"), attempt: Int(c.attempt),
                                  rank: Int(c.rank), worldSize: Int(c.world_size), nodeId: str(c.node_id), host: str(c.host),
                                  pid: Int(c.pid))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__join_job_request__init, size: nebula__v1__join_job_request__get_packed_size,
                      pack: nebula__v1__join_job_request__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.attempt = UInt32(clamping: attempt)
            m.pointee.rank = UInt32(clamping: rank)
            m.pointee.world_size = UInt32(clamping: worldSize)
            m.pointee.node_id = arena.string(nodeId)
            m.pointee.host = arena.string(host)
            m.pointee.pid = UInt32(clamping: pid)
        }
    }
}

extension JobPlan: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "JobPlan", unpack: nebula__v1__job_plan__unpack,
                          free: nebula__v1__job_plan__free_unpacked) { c in
            guard let spec = c.spec else { throw WireError.missingField(message: "JobPlan", field: "spec") }
            guard let shard = c.shard?.pointee else { throw WireError.missingField(message: "JobPlan", field: "shard") }
            return JobPlan(spec: try JobSpec(c: spec.pointee), attempt: Int(c.attempt),
                           task: try required(str(c.task), "JobPlan", "task"), classes: (0..<c.n_classes).map { str(c.classes[$0]) },
                           shard: ShardEntry(index: Int(shard.index), rows: shard.rows, bytes: shard.bytes,
                                             sha256: try required(str(shard.sha256), "ShardEntry", "sha256")),
                           shardCount: Int(c.shard_count), schemaJSON: str(c.schema_json),
                           resumeCheckpointId: str(c.resume_checkpoint_id), resumeBytes: c.resume_bytes,
                           resumeSHA256: str(c.resume_sha256),
                           rankBatchSizes: (0..<c.n_rank_batch_sizes).map { Int(c.rank_batch_sizes[$0]) })
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__job_plan__init, size: nebula__v1__job_plan__get_packed_size,
                      pack: nebula__v1__job_plan__pack) { m in
            m.pointee.spec = spec.c(in: arena)
            m.pointee.attempt = UInt32(clamping: attempt)
            m.pointee.task = arena.string(task)
            m.pointee.n_classes = classes.count
            m.pointee.classes = arena.strings(classes)
            let e = arena.message(nebula__v1__shard_entry__init)
            e.pointee.index = UInt32(clamping: shard.index)
            e.pointee.rows = shard.rows
            e.pointee.bytes = shard.bytes
            e.pointee.sha256 = arena.string(shard.sha256)
            m.pointee.shard = e
            m.pointee.shard_count = UInt32(clamping: shardCount)
            m.pointee.schema_json = arena.string(schemaJSON)
            m.pointee.resume_checkpoint_id = arena.string(resumeCheckpointId)
            m.pointee.resume_bytes = resumeBytes
            m.pointee.resume_sha256 = arena.string(resumeSHA256)
            m.pointee.n_rank_batch_sizes = rankBatchSizes.count
            m.pointee.rank_batch_sizes = arena.values(rankBatchSizes.map { UInt32(clamping: $0) })
        }
    }
}

extension ProgressReport: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ProgressReport", unpack: nebula__v1__progress_report__unpack,
                          free: nebula__v1__progress_report__free_unpacked) { c in
            ProgressReport(jobId: try required(str(c.job_id), "ProgressReport", "job_id"), attempt: Int(c.attempt),
                           rank: Int(c.rank), collectiveSeq: c.collective_seq,
                           steps: list(c.n_steps, c.steps) { s in
                               StepMetrics(step: s.step, epoch: Int(s.epoch), loss: s.loss, samplesPerSecond: s.samples_per_second,
                                           allreduceMs: s.allreduce_ms, samples: s.samples, timeUnixMs: s.time_unix_ms)
                           }, message: str(c.message))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__progress_report__init, size: nebula__v1__progress_report__get_packed_size,
                      pack: nebula__v1__progress_report__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.attempt = UInt32(clamping: attempt)
            m.pointee.rank = UInt32(clamping: rank)
            m.pointee.collective_seq = collectiveSeq
            let s = steps.map { step -> UnsafeMutablePointer<Nebula__V1__StepMetrics> in
                let p = arena.message(nebula__v1__step_metrics__init)
                p.pointee.step = step.step
                p.pointee.epoch = UInt32(clamping: step.epoch)
                p.pointee.loss = step.loss
                p.pointee.samples_per_second = step.samplesPerSecond
                p.pointee.allreduce_ms = step.allreduceMs
                p.pointee.samples = step.samples
                p.pointee.time_unix_ms = step.timeUnixMs
                return p
            }
            m.pointee.n_steps = s.count
            m.pointee.steps = arena.pointers(s)
            m.pointee.message = arena.string(message)
        }
    }
}

extension ProgressAck: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "ProgressAck", unpack: nebula__v1__progress_ack__unpack,
                          free: nebula__v1__progress_ack__free_unpacked) { c in
            ProgressAck(stop: c.stop != 0, reason: str(c.reason))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__progress_ack__init, size: nebula__v1__progress_ack__get_packed_size,
                      pack: nebula__v1__progress_ack__pack) { m in
            m.pointee.stop = stop ? 1 : 0
            m.pointee.reason = arena.string(reason)
        }
    }
}

extension CheckpointChunk: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "CheckpointChunk", unpack: nebula__v1__checkpoint_chunk__unpack,
                          free: nebula__v1__checkpoint_chunk__free_unpacked) { c in
            CheckpointChunk(jobId: str(c.job_id), attempt: Int(c.attempt), step: c.step, epoch: Int(c.epoch),
                            worldSize: Int(c.world_size), isFinal: c.final != 0, offset: c.offset, data: NebulaWire.bytes(c.data),
                            totalBytes: c.total_bytes, sha256: str(c.sha256))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__checkpoint_chunk__init, size: nebula__v1__checkpoint_chunk__get_packed_size,
                      pack: nebula__v1__checkpoint_chunk__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.attempt = UInt32(clamping: attempt)
            m.pointee.step = step
            m.pointee.epoch = UInt32(clamping: epoch)
            m.pointee.world_size = UInt32(clamping: worldSize)
            m.pointee.final = isFinal ? 1 : 0
            m.pointee.offset = offset
            m.pointee.data = arena.bytes(data)
            m.pointee.total_bytes = totalBytes
            m.pointee.sha256 = arena.string(sha256)
        }
    }
}

extension CheckpointInfo: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "CheckpointInfo", unpack: nebula__v1__checkpoint_info__unpack,
                          free: nebula__v1__checkpoint_info__free_unpacked) { c in
            CheckpointInfo(checkpointId: try required(str(c.checkpoint_id), "CheckpointInfo", "checkpoint_id"), bytes: c.bytes,
                           sha256: str(c.sha256))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__checkpoint_info__init, size: nebula__v1__checkpoint_info__get_packed_size,
                      pack: nebula__v1__checkpoint_info__pack) { m in
            m.pointee.checkpoint_id = arena.string(checkpointId)
            m.pointee.bytes = bytes
            m.pointee.sha256 = arena.string(sha256)
        }
    }
}

extension FetchCheckpointRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "FetchCheckpointRequest", unpack: nebula__v1__fetch_checkpoint_request__unpack,
                          free: nebula__v1__fetch_checkpoint_request__free_unpacked) { c in
            FetchCheckpointRequest(jobId: try required(str(c.job_id), "FetchCheckpointRequest", "job_id"),
                                   checkpointId: try required(str(c.checkpoint_id), "FetchCheckpointRequest", "checkpoint_id"),
                                   offset: c.offset)
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__fetch_checkpoint_request__init,
                      size: nebula__v1__fetch_checkpoint_request__get_packed_size,
                      pack: nebula__v1__fetch_checkpoint_request__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.checkpoint_id = arena.string(checkpointId)
            m.pointee.offset = offset
        }
    }
}

extension FinishJobRequest: RPCMessage {
    public init(serializedBytes bytes: [UInt8]) throws {
        self = try unpack(bytes, "FinishJobRequest", unpack: nebula__v1__finish_job_request__unpack,
                          free: nebula__v1__finish_job_request__free_unpacked) { c in
            FinishJobRequest(jobId: try required(str(c.job_id), "FinishJobRequest", "job_id"), attempt: Int(c.attempt),
                             metricsJSON: str(c.metrics_json), modelCheckpointId: str(c.model_checkpoint_id))
        }
    }

    public func serializedBytes() -> [UInt8] {
        let arena = Arena()
        return packed(arena, nebula__v1__finish_job_request__init, size: nebula__v1__finish_job_request__get_packed_size,
                      pack: nebula__v1__finish_job_request__pack) { m in
            m.pointee.job_id = arena.string(jobId)
            m.pointee.attempt = UInt32(clamping: attempt)
            m.pointee.metrics_json = arena.string(metricsJSON)
            m.pointee.model_checkpoint_id = arena.string(modelCheckpointId)
        }
    }
}
