/// Full method paths of the wire contract (`/<package>.<Service>/<Method>`).
public enum NodeServicePath {
    public static let register = "/nebula.v1.NodeService/Register"
    public static let heartbeat = "/nebula.v1.NodeService/Heartbeat"
    public static let assignments = "/nebula.v1.NodeService/Assignments"
    public static let shipLogs = "/nebula.v1.NodeService/ShipLogs"
    public static let leave = "/nebula.v1.NodeService/Leave"
    public static let reportAttemptExit = "/nebula.v1.NodeService/ReportAttemptExit"
}

public enum AdminServicePath {
    public static let listNodes = "/nebula.v1.AdminService/ListNodes"
    public static let getNode = "/nebula.v1.AdminService/GetNode"
    public static let drainNode = "/nebula.v1.AdminService/DrainNode"
    public static let resumeNode = "/nebula.v1.AdminService/ResumeNode"
    public static let clusterHealth = "/nebula.v1.AdminService/ClusterHealth"
    public static let tailLogs = "/nebula.v1.AdminService/TailLogs"

    public static let all = [listNodes, getNode, drainNode, resumeNode, clusterHealth, tailLogs]
}

public enum DatasetServicePath {
    public static let upload = "/nebula.v1.DatasetService/Upload"
    public static let importDataset = "/nebula.v1.DatasetService/ImportDataset"
    public static let watchDataset = "/nebula.v1.DatasetService/WatchDataset"
    public static let listDatasets = "/nebula.v1.DatasetService/ListDatasets"
    public static let getDataset = "/nebula.v1.DatasetService/GetDataset"
    public static let deleteDataset = "/nebula.v1.DatasetService/DeleteDataset"

    public static let all = [upload, importDataset, watchDataset, listDatasets, getDataset, deleteDataset]
}

public enum ShardServicePath {
    public static let getShardManifest = "/nebula.v1.ShardService/GetShardManifest"
    public static let fetchShard = "/nebula.v1.ShardService/FetchShard"

    public static let all = [getShardManifest, fetchShard]
}

public enum JobServicePath {
    public static let submitJob = "/nebula.v1.JobService/SubmitJob"
    public static let listJobs = "/nebula.v1.JobService/ListJobs"
    public static let getJob = "/nebula.v1.JobService/GetJob"
    public static let cancelJob = "/nebula.v1.JobService/CancelJob"
    public static let tailJobLogs = "/nebula.v1.JobService/TailJobLogs"
    public static let downloadArtifact = "/nebula.v1.JobService/DownloadArtifact"
}

public enum WorkerServicePath {
    public static let joinJob = "/nebula.v1.WorkerService/JoinJob"
    public static let reportProgress = "/nebula.v1.WorkerService/ReportProgress"
    public static let uploadCheckpoint = "/nebula.v1.WorkerService/UploadCheckpoint"
    public static let fetchCheckpoint = "/nebula.v1.WorkerService/FetchCheckpoint"
    public static let finishJob = "/nebula.v1.WorkerService/FinishJob"
}
