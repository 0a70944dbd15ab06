// swift-tools-version: 6.0
// Nebula: a distributed training cluster and data-science platform.
// Layering (one way): C system module -> Swift wrapper in Core -> services (Coordinator/, Node/) -> executables.
import PackageDescription

let package = Package(
    name: "Nebula",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "nebula-coordinator", targets: ["nebula-coordinator"]),
        .executable(name: "nebula-node", targets: ["nebula-node"]),
        .executable(name: "nebula", targets: ["nebula"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // MARK: C system modules (flags only) and shims (what Swift cannot import)
        .systemLibrary(name: "CGRPC", path: "Core/CGRPC"),
        .target(name: "CGRPCShims", dependencies: ["CGRPC"], path: "Core/CGRPCShims"),
        .systemLibrary(name: "CProtobufC", path: "Core/CProtobufC", pkgConfig: "libprotobuf-c",
                       providers: [.apt(["libprotobuf-c-dev"])]),
        .systemLibrary(name: "CPostgres", path: "Core/CPostgres", pkgConfig: "libpq",
                       providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CMPI", path: "Core/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPIShims", dependencies: ["CMPI"], path: "Core/CMPIShims"),
        .systemLibrary(name: "COpenBLAS", path: "Core/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CCurl", path: "Core/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .target(name: "CCurlShims", dependencies: ["CCurl"], path: "Core/CCurlShims"),
        .systemLibrary(name: "CZlib", path: "Core/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        // MARK: Wire contract: generated protobuf-c code (Proto/generate.sh)
        .target(name: "NebulaProtoC", dependencies: ["CProtobufC"], path: "Proto/NebulaProtoC"),

        // MARK: Core Swift wrappers
        .target(name: "NebulaCommon", dependencies: [.product(name: "Logging", package: "swift-log")],
                path: "Core/Common"),
        .target(name: "NebulaRPC", dependencies: ["CGRPC", "CGRPCShims", "NebulaCommon"], path: "Core/RPC"),
        .target(name: "NebulaStore", dependencies: ["CPostgres", "NebulaCommon", .product(name: "Logging", package: "swift-log")], path: "Core/Store"),
        .target(name: "NebulaModel", dependencies: [], path: "Core/Model"),
        .target(name: "NebulaWire", dependencies: ["NebulaProtoC", "CProtobufC", "NebulaModel", "NebulaRPC"],
                path: "Core/Wire"),
        .target(name: "NebulaEngine", dependencies: ["COpenBLAS", "NebulaCommon"], path: "Core/Engine",
                linkerSettings: [.linkedLibrary("m")]),
        .target(name: "NebulaDataset", dependencies: ["NebulaCommon", "NebulaEngine"], path: "Core/Dataset"),
        .target(name: "NebulaTraining", dependencies: ["NebulaEngine", "NebulaCommon"], path: "Core/Training"),
        .target(name: "NebulaSystem",
                dependencies: ["CGRPC", "CProtobufC", "CMPI", "CMPIShims", "COpenBLAS", "CPostgres", "CCurl", "CCurlShims"],
                path: "Core/System"),
        .target(name: "NebulaHTTP",
                dependencies: ["CCurl", "CCurlShims", "NebulaCommon", .product(name: "Logging", package: "swift-log")],
                path: "Core/HTTP"),
        .target(name: "NebulaArchive",
                dependencies: ["NebulaCommon", "CZlib"],
                path: "Core/Archive"),

        // MARK: Coordinator, CLI
        .target(name: "NebulaCoordinator",
                dependencies: ["NebulaCommon", "NebulaRPC", "NebulaStore", "NebulaModel", "NebulaWire",
                               "NebulaDataset", "NebulaArchive", "NebulaHTTP",
                               .product(name: "Logging", package: "swift-log")],
                path: "Coordinator/CoordinatorKit"),
        .executableTarget(name: "nebula-coordinator",
                          dependencies: ["NebulaCoordinator", "NebulaSystem",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Coordinator/nebula-coordinator"),
        .target(name: "NebulaCLI",
                dependencies: ["NebulaCommon", "NebulaRPC", "NebulaModel", "NebulaWire", "NebulaTraining",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                path: "Coordinator/CLIKit"),
        .executableTarget(name: "nebula", dependencies: ["NebulaCLI"], path: "Coordinator/nebula"),

        // MARK: Node agent
        .target(name: "NebulaNode",
                dependencies: ["NebulaCommon", "NebulaRPC", "NebulaModel", "NebulaWire",
                               .product(name: "Logging", package: "swift-log")],
                path: "Node/NodeKit"),
        .executableTarget(name: "nebula-node",
                          dependencies: ["NebulaNode", "NebulaSystem",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Node/nebula-node"),

        // MARK: Benchmarks (bench/heartbeat-fanin.sh drives them)
        .executableTarget(name: "nebula-bench",
                          dependencies: ["NebulaCommon", "NebulaRPC", "NebulaStore", "NebulaModel", "NebulaWire",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log")],
                          path: "bench/Sources/nebula-bench"),
        .executableTarget(name: "nebula-bench-csv", dependencies: ["NebulaDataset"], path: "bench/Sources/nebula-bench-csv"),
        .executableTarget(name: "nebula-bench-mlp", dependencies: ["NebulaEngine"], path: "bench/Sources/nebula-bench-mlp"),

        // MARK: Tests
        .testTarget(name: "CoreTests",
                    dependencies: ["NebulaRPC", "NebulaStore", "NebulaWire", "NebulaModel", "NebulaProtoC",
                                   "NebulaCommon", "NebulaSystem"],
                    path: "Tests/CoreTests"),
        .testTarget(name: "CoordinatorTests",
                    dependencies: ["NebulaCoordinator", "NebulaCLI", "NebulaModel", "NebulaStore", "NebulaRPC",
                                   "NebulaWire", "NebulaCommon"],
                    path: "Tests/CoordinatorTests"),
        .testTarget(name: "EngineTests", dependencies: ["NebulaEngine", "NebulaCommon"], path: "Tests/EngineTests"),
        .testTarget(name: "DatasetTests", dependencies: ["NebulaDataset", "NebulaCommon"], path: "Tests/DatasetTests"),
        .testTarget(name: "TrainingTests", dependencies: ["NebulaTraining", "NebulaEngine"], path: "Tests/TrainingTests"),
        .testTarget(name: "NodeTests",
                    dependencies: ["NebulaNode", "NebulaModel", .product(name: "Logging", package: "swift-log")],
                    path: "Tests/NodeTests"),
        .testTarget(name: "IntegrationTests",
                    dependencies: ["NebulaRPC", "NebulaWire", "NebulaModel", "NebulaStore", "NebulaCommon", "NebulaNode",
                                   "NebulaDataset", .product(name: "Logging", package: "swift-log")],
                    path: "Tests/IntegrationTests"),
        .testTarget(name: "HTTPArchiveTests", dependencies: ["NebulaHTTP", "NebulaArchive", "NebulaCommon"],
                    path: "Tests/HTTPArchiveTests"),
        // Pass at any world size: plain `swift test` (singleton, size 1) and Tests/MPITests/run-mpi.sh (mpirun -np 2).
        .testTarget(name: "MPITests",
                    dependencies: ["NebulaMPI", "NebulaEngine", "NebulaCommon", .product(name: "Logging", package: "swift-log")],
                    path: "Tests/MPITests"),
    ]
)
