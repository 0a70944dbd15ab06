/// Full method paths of the wire contract (`/<package>.<Service>/<Method>`).
public enum NodeServicePath {
    public static let register = "/nebula.v1.NodeService/Register"
    public static let heartbeat = "/nebula.v1.NodeService/Heartbeat"
    public static let assignments = "/nebula.v1.NodeService/Assignments"
    public static let shipLogs = "/nebula.v1.NodeService/ShipLogs"
    public static let leave = "/nebula.v1.NodeService/Leave"
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
