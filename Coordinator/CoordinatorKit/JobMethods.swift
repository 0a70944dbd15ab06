import Foundation
import NebulaModel
import NebulaRPC
import NebulaWire

/// JobService: submit, list, show, cancel, logs and downloads (admin CLI).
enum JobServiceMethods {
    static func make(_ jobs: JobManager, store: CoordinatorStore) -> [RPCMethod] {
        [
            .unary(JobServicePath.submitJob) { (spec: JobSpec, _) -> JobInfo in try await jobs.submit(spec) },
            .unary(JobServicePath.listJobs) { (request: JobListRequest, _) -> JobList in try await jobs.list(request) },
            .unary(JobServicePath.getJob) { (request: JobRequest, _) -> JobDetail in try await jobs.detail(request.jobId) },
            .unary(JobServicePath.cancelJob) { (request: CancelJobRequest, _) -> JobInfo in
                try await jobs.cancel(request.jobId, reason: request.reason)
            },
            .serverStreaming(JobServicePath.tailJobLogs) {
                (request: TailJobLogsRequest, _, writer: RPCStreamWriter<LogRecord>) in
                _ = try await jobs.state(of: request.jobId)  // not found → NOT_FOUND
                let limit = request.limit > 0 ? min(request.limit, 10_000) : 200
                var seen = Set<String>()
                var last: Int64 = 0
                repeat {
                    let records = try await store.jobLogs(jobId: request.jobId, after: last, limit: limit)
                    for (_, r) in records where seen.insert("\(r.nodeId)#\(r.seq)#\(r.timeUnixMs)").inserted {
                        try await writer.write(r)
                    }
                    last = records.last.map { max(last, $0.id) } ?? last
                    if !request.follow { return }
                    let state = try await jobs.state(of: request.jobId)
                    if ["completed", "failed", "cancelled"].contains(state) && records.isEmpty { return }
                    try await Task.sleep(for: .milliseconds(500))
                } while !Task.isCancelled
            },
            .serverStreaming(JobServicePath.downloadArtifact) {
                (request: DownloadArtifactRequest, _, writer: RPCStreamWriter<ArtifactChunk>) in
                let (path, record) = try await jobs.checkpointFile(request.jobId, request.checkpointId)
                try await streamFile(path, name: "\(request.jobId)-\(record.final ? "model" : record.id).ckpt",
                                     sha256: record.sha256, to: writer)
            },
        ]
    }
}

/// WorkerService: what the ranks of a job call.
enum WorkerServiceMethods {
    static func make(_ jobs: JobManager) -> [RPCMethod] {
        [
            .unary(WorkerServicePath.joinJob) { (request: JoinJobRequest, _) -> JobPlan in try await jobs.join(request) },
            .unary(WorkerServicePath.reportProgress) { (report: ProgressReport, _) -> ProgressAck in
                await jobs.progress(report)
            },
            .clientStreaming(WorkerServicePath.uploadCheckpoint) { (chunks: RPCStreamReader<CheckpointChunk>, _) -> CheckpointInfo in
                try await jobs.storeCheckpoint(chunks)
            },
            .serverStreaming(WorkerServicePath.fetchCheckpoint) {
                (request: FetchCheckpointRequest, _, writer: RPCStreamWriter<ArtifactChunk>) in
                let (path, record) = try await jobs.checkpointFile(request.jobId, request.checkpointId)
                try await streamFile(path, name: record.id + ".ckpt", sha256: record.sha256, from: request.offset, to: writer)
            },
            .unary(WorkerServicePath.finishJob) { (request: FinishJobRequest, _) -> Empty in
                try await jobs.finish(request)
                return Empty()
            },
        ]
    }
}

/// Streams a file in 1 MiB chunks (name and checksum on the first).
func streamFile(_ path: String, name: String, sha256: String, from start: UInt64 = 0,
                to writer: RPCStreamWriter<ArtifactChunk>) async throws {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw RPCStatus(.notFound, "\(name) is missing on the coordinator")
    }
    defer { try? handle.close() }
    let total = try handle.seekToEnd()
    guard start <= total else { throw RPCStatus(.outOfRange, "offset \(start) is past the end (\(total) bytes)") }
    try handle.seek(toOffset: start)
    var offset = start
    var first = true
    repeat {
        let data = try handle.read(upToCount: 1 << 20) ?? Data()
        try await writer.write(ArtifactChunk(offset: offset, data: [UInt8](data), totalBytes: total,
                                             fileName: first ? name : "", sha256: first ? sha256 : ""))
        first = false
        offset += UInt64(data.count)
        if data.isEmpty { break }
    } while offset < total
}
