// nebula-bench-allreduce: the Swift half of bench/allreduce.sh; run it under mpirun.
//
//   nebula-bench-allreduce allreduce [--sizes 4096,65536,...] [--reps 7]
//                                    [--impl fusion|fusion-whole|fusion-hop|fusion-fp16|raw|copies]
//                                    [--segment-bytes 1048576]
//     Gradient averaging through the data-parallel layer (FusionBuffer → MPIAllreduceBackend), on the
//     bytes of each size split like an MLP's parameters (4 weight/bias pairs), every rank weighting by a
//     sample count of 256. Per size: `iterations(bytes)` averaging calls per repetition, a barrier before
//     each repetition; reported: the median and the best repetition (each the slowest rank's). Implementations:
//       fusion        the training loop on the MPI thread, buckets reduced in --segment-bytes segments
//                     (default: the layer's default, 1 MiB);
//       fusion-whole  the same, each bucket in one allreduce (segmentBytes: nil);
//       fusion-hop    the default layer driven from another thread: every allreduce hops to the MPI thread;
//       fusion-fp16   fusion with the Float16 wire format (half the bytes, a user-defined MPI sum, and a
//                     separate Float32 allreduce of the sample count per call);
//       raw           no data-parallel layer: in-place MPICommunicator.allreduce on one aligned buffer
//                     (the Swift wrapper's own cost next to the C loop);
//       copies        the layer against a backend that claims 2 ranks and communicates nothing: what the
//                     copies in and out cost (run it as one process);
//       copies-fp16   the same with the Float16 wire format (the conversions' cost).
//   nebula-bench-allreduce mlp [--rows 262144] [--epochs 2] [--batch 256] [--overlap on|off] [--wire float32|float16]
//                              [--bucket-cap-bytes 26214400]
//     Data-parallel MLP 64→256→256→10 (ReLU), Adam 1e-3, `--batch` rows per rank, cross-entropy, on
//     synthetic rows every rank generates identically (a teacher network like baselines/synth.py).
//     Reports total samples/s over all ranks per epoch (rank 0, epochs between barriers). --overlap
//     (default on) overlaps backward with the bucket allreduces; --wire picks the gradient wire format;
//     --bucket-cap-bytes the fusion bucket cap (the MLP's 0.34 MB of gradients are one bucket at the
//     default 25 MiB, so nothing can overlap unless the cap is smaller).
//
// One JSON object per line (rank 0 only). algbw = bytes / time, busbw = algbw · 2(n − 1)/n (nccl-tests).
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NebulaEngine
import NebulaMPI

func fail(_ message: String) -> Never {
    let line = "nebula-bench-allreduce: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

/// Iterations per repetition: about 256 MiB of gradients per repetition, 10 to 5000 calls.
/// bench/allreduce.sh's C reference uses the same formula.
func iterations(_ bytes: Int) -> Int { min(5000, max(10, (256 << 20) / bytes)) }

func emit(_ fields: [(String, String)]) {
    print("{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
    fflush(nil)
}

func quoted(_ s: String) -> String { "\"\(s)\"" }

func median(_ v: [Double]) -> Double {
    let s = v.sorted()
    return s.isEmpty ? 0 : (s[(s.count - 1) / 2] + s[s.count / 2]) / 2
}

struct Options {
    var mode = ""
    var sizes = [4096, 65536, 1 << 20, 16 << 20, 64 << 20]
    var reps = 7
    var impl = "fusion"
    var segmentBytes = defaultFusionSegmentBytes
    var rows = 262_144
    var epochs = 2
    var batch = 256
    var overlap = true
    var bucketCapBytes = defaultBucketCapBytes
    var wire = FusionBuffer.WireFormat.float32
}

func parse(_ args: [String]) -> Options {
    var o = Options()
    guard let mode = args.first, ["allreduce", "mlp"].contains(mode) else {
        fail("usage: nebula-bench-allreduce allreduce|mlp [options] (see the comment at the top of main.swift)")
    }
    o.mode = mode
    var i = 1
    func value() -> String {
        i += 1
        guard i < args.count else { fail("\(args[i - 1]) needs a value") }
        return args[i]
    }
    func positive(_ s: String) -> Int {
        guard let v = Int(s), v > 0 else { fail("expected a positive integer, got \(s)") }
        return v
    }
    while i < args.count {
        switch args[i] {
        case "--sizes": o.sizes = value().split(separator: ",").map { positive(String($0)) }
        case "--reps": o.reps = positive(value())
        case "--impl":
            o.impl = value()
            guard ["fusion", "fusion-whole", "fusion-hop", "fusion-fp16", "raw", "copies", "copies-fp16"].contains(o.impl) else {
                fail("unknown --impl \(o.impl)")
            }
        case "--segment-bytes": o.segmentBytes = positive(value())
        case "--rows": o.rows = positive(value())
        case "--epochs": o.epochs = positive(value())
        case "--batch": o.batch = positive(value())
        case "--bucket-cap-bytes": o.bucketCapBytes = positive(value())
        case "--overlap":
            let v = value()
            guard v == "on" || v == "off" else { fail("--overlap takes on or off, got \(v)") }
            o.overlap = v == "on"
        case "--wire":
            let v = value()
            guard let w = FusionBuffer.WireFormat(rawValue: v) else { fail("--wire takes float32 or float16, got \(v)") }
            o.wire = w
        default: fail("unknown argument \(args[i])")
        }
        i += 1
    }
    return o
}

/// Parameters holding `bytes` of Float32 gradients, shaped like 4 dense layers (weight, bias).
func gradientParameters(bytes: Int, rank: Int) -> [Parameter] {
    let elements = bytes / MemoryLayout<Float>.size
    let bias = max(1, min(64, elements / 16))
    var sizes: [Int] = []
    for layer in 0..<4 {
        let weight = layer < 3 ? elements / 4 - bias : elements - sizes.reduce(0, +) - bias
        sizes += [weight, bias]
    }
    var rng = SeededGenerator(seed: UInt64(rank))
    return sizes.enumerated().map { i, n in
        let p = Parameter("p\(i)", Tensor(zeros: [n]))
        p.grad = Tensor(shape: [n], storage: (0..<n).map { _ in rng.uniform(1) })
        return p
    }
}

func benchAllreduce(_ o: Options, _ mpi: MPIRuntime) throws {
    let backend = MPIAllreduceBackend(mpi)
    let segment: Int? = o.impl == "fusion-whole" ? nil : o.segmentBytes
    for bytes in o.sizes {
        let params = gradientParameters(bytes: bytes, rank: mpi.rank)
        let fusion = FusionBuffer(for: params, segmentBytes: segment, wire: o.impl.hasSuffix("fp16") ? .float16 : .float32)
        let iters = iterations(bytes)
        let body = { (comm: MPICommunicator?) throws -> [Double] in
            var times: [Double] = []
            for _ in 0..<3 { try fusion.averageGradients(params, samples: 256, backend: backend) }  // warm-up
            for _ in 0..<o.reps {
                try mpi.barrier()
                let start = comm?.wallTime() ?? now()
                for _ in 0..<iters { try fusion.averageGradients(params, samples: 256, backend: backend) }
                times.append(((comm?.wallTime() ?? now()) - start) / Double(iters))
            }
            return times
        }
        // Note [Training on the MPI thread]: fusion and fusion-whole run the loop there; fusion-hop does not.
        let times: [Double]
        switch o.impl {
        case "fusion-hop": times = try body(nil)
        case "raw": times = try rawAllreduce(bytes: bytes, iterations: iters, reps: o.reps, mpi)
        case "copies", "copies-fp16": times = try copiesOnly(fusion, params, iterations: iters, reps: o.reps)
        default: times = try mpi.withCommunicator { comm in try body(comm) }
        }
        // The slowest rank's time is the collective's time.
        var t = [median(times), times.min() ?? 0]
        try t.withUnsafeMutableBufferPointer { try mpi.allreduce($0, op: .max) }
        let algbw = Double(bytes) / t[0]
        let n = Double(mpi.size)
        if mpi.rank == 0 {
            emit([("kind", quoted("allreduce")), ("impl", quoted(o.impl)), ("ranks", "\(mpi.size)"), ("bytes", "\(bytes)"),
                  ("iterations", "\(iters)"), ("reps", "\(o.reps)"), ("seconds", "\(t[0])"), ("best_seconds", "\(t[1])"),
                  ("algbw_GBps", "\(algbw / 1e9)"), ("busbw_GBps", "\(algbw * 2 * (n - 1) / n / 1e9)"),
                  ("buckets", "\(fusion.buckets.count)")])
        }
    }
}

/// The wrapper alone: in-place allreduces of one aligned buffer on the MPI thread, no copies, no weights
/// (what the C reference does, through MPICommunicator).
func rawAllreduce(bytes: Int, iterations: Int, reps: Int, _ mpi: MPIRuntime) throws -> [Double] {
    let count = bytes / MemoryLayout<Float>.size
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
    defer { raw.deallocate() }
    let buffer = UnsafeMutableBufferPointer(start: raw.bindMemory(to: Float.self, capacity: count), count: count)
    for i in 0..<count { buffer[i] = Float((mpi.rank + i) % 7) / 7 }
    return try mpi.withCommunicator { comm throws(MPIError) -> [Double] in
        for _ in 0..<3 { try comm.allreduce(buffer, op: .sum) }
        var times: [Double] = []
        for _ in 0..<reps {
            try comm.barrier()
            let start = comm.wallTime()
            for _ in 0..<iterations { try comm.allreduce(buffer, op: .sum) }
            times.append((comm.wallTime() - start) / Double(iterations))
        }
        return times
    }
}

/// A backend that claims two ranks and does nothing: the layer's own cost (copies, weights, calls).
struct NoCommunication: AllreduceBackend {
    var rank: Int { 0 }
    var size: Int { 2 }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {}
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {}
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float16>) {}
}

/// The layer without communication.
func copiesOnly(_ fusion: FusionBuffer, _ params: [Parameter], iterations: Int, reps: Int) throws -> [Double] {
    var times: [Double] = []
    for _ in 0..<reps {
        let start = now()
        for _ in 0..<iterations { try fusion.averageGradients(params, samples: 1, backend: NoCommunication()) }
        times.append((now() - start) / Double(iterations))
    }
    return times
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Rows like baselines/synth.py's: X ~ N(0, 1), labels argmax(tanh(X·W1)·W2 + 0.25·ε) with a fixed teacher.
func synthetic(rows: Int) -> (Tensor, [Int]) {
    var teacher = SeededGenerator(seed: 1234)
    let w1 = Tensor(shape: [64, 32], storage: (0..<64 * 32).map { _ in teacher.nextNormal() / 8 })
    let w2 = Tensor(shape: [32, 10], storage: (0..<320).map { _ in teacher.nextNormal() })
    var rng = SeededGenerator(seed: 0)
    let x = Tensor(shape: [rows, 64], storage: (0..<rows * 64).map { _ in rng.nextNormal() })
    var h = x.matmul(w1)
    h.storage = h.storage.map { tanhf($0) }
    var logits = h.matmul(w2)
    logits.storage = logits.storage.map { $0 + 0.25 * rng.nextNormal() }
    return (x, logits.argmaxRows())
}

func benchMLP(_ o: Options, _ mpi: MPIRuntime) throws {
    BLAS.threads = 1
    let (x, y) = synthetic(rows: o.rows)
    let rates: [Double] = try mpi.withCommunicator { comm in
        let model = MLP(inputs: 64, hidden: [256, 256], outputs: 10, activation: .relu, seed: 0).build()
        let trainer = try DataParallelTrainer(model: model, loss: CrossEntropyLoss(),
                                              optimizer: Adam(model.parameters, learningRate: 1e-3),
                                              backend: MPIAllreduceBackend(mpi),
                                              options: TrainingOptions(epochs: 1, batchSize: o.batch, seed: 0),
                                              bucketCapBytes: o.bucketCapBytes, wire: o.wire, overlap: o.overlap)
        var rates: [Double] = []
        for _ in 0..<o.epochs {
            try comm.barrier()
            let start = comm.wallTime()
            let r = try trainer.trainEpoch(x, y)
            try comm.barrier()
            let seconds = comm.wallTime() - start
            rates.append(Double(r.samples) / seconds)
            if comm.rank == 0 {
                emit([("kind", quoted("dp_epoch")), ("world_size", "\(comm.size)"), ("epoch", "\(r.epoch)"),
                      ("rows_all_ranks", "\(r.samples)"), ("seconds", "\(seconds)"),
                      ("total_samples_per_s", "\((Double(r.samples) / seconds).rounded())"), ("train_loss", "\(r.loss)")])
            }
        }
        return rates
    }
    if mpi.rank == 0 {
        emit([("kind", quoted("dp_summary")), ("world_size", "\(mpi.size)"), ("batch_per_rank", "\(o.batch)"),
              ("overlap", o.overlap ? "true" : "false"), ("wire", quoted(o.wire.rawValue)),
              ("bucket_cap_bytes", "\(o.bucketCapBytes)"),
              ("epochs", "\(o.epochs)"), ("median_total_samples_per_s", "\(median(rates).rounded())")])
    }
}

let options = parse(Array(CommandLine.arguments.dropFirst()))
let mpi: MPIRuntime
do {
    mpi = try MPIRuntime(logger: Logger(label: "nebula.bench.allreduce"))
} catch {
    fail("\(error)")
}
do {
    switch options.mode {
    case "allreduce": try benchAllreduce(options, mpi)
    default: try benchMLP(options, mpi)
    }
    try mpi.close()
} catch {
    fail("\(error)")
}
