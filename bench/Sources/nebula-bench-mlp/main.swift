// nebula-bench-mlp: the Swift half of bench/mlp-throughput.sh.
//
// Trains MLP 64→256→256→10 (ReLU), Adam 1e-3, batch 256, cross-entropy with the engine's Trainer on
// the synthetic rows that bench/mlp_synth_data.py wrote (baselines/synth.py: 1,000,000 training rows,
// seed 0; 100,000 held-out rows, seed 1): per epoch a seeded shuffle and a gather of each batch into
// a preallocated buffer (what randperm + index_select do in the PyTorch reference). For each
// --threads value: a fresh model, samples/s per epoch, their median, held-out accuracy. One JSON
// object per line, the same kinds and keys as baselines/torch_mlp.py.
//
// Usage: nebula-bench-mlp --data DIR [--threads 1 2] [--epochs 3] [--rows N]
#if canImport(Glibc)
import Glibc
#endif
import NebulaEngine

struct Options {
    var data = ""
    var threads = [1, 2]
    var epochs = 3
    var rows: Int?
}

func fail(_ message: String) -> Never {
    let line = "nebula-bench-mlp: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

func parse(_ args: [String]) -> Options {
    var o = Options()
    var i = 0
    func value() -> String {
        i += 1
        guard i < args.count else { fail("\(args[i - 1]) needs a value") }
        return args[i]
    }
    while i < args.count {
        switch args[i] {
        case "--data": o.data = value()
        case "--epochs":
            guard let e = Int(value()), e > 0 else { fail("--epochs needs a positive integer") }
            o.epochs = e
        case "--rows":
            guard let r = Int(value()), r > 0 else { fail("--rows needs a positive integer") }
            o.rows = r
        case "--threads":
            o.threads = []
            while i + 1 < args.count, let t = Int(args[i + 1]) {
                o.threads.append(t)
                i += 1
            }
            if o.threads.isEmpty { fail("--threads needs at least one integer") }
        case "-h", "--help":
            print("usage: nebula-bench-mlp --data DIR [--threads 1 2] [--epochs 3] [--rows N]")
            exit(0)
        default: fail("unknown argument \(args[i])")
        }
        i += 1
    }
    if o.data.isEmpty { fail("--data DIR is required (bench/mlp_synth_data.py writes it)") }
    return o
}

/// Reads a whole raw little-endian file of `T` (Float32 or Int64 here) into an array.
func readRaw<T>(_ path: String, as: T.Type) -> [T] {
    guard let f = fopen(path, "rb") else { fail("cannot open \(path)") }
    defer { fclose(f) }
    fseek(f, 0, SEEK_END)
    let bytes = ftell(f)
    fseek(f, 0, SEEK_SET)
    let count = bytes / MemoryLayout<T>.stride
    return [T](unsafeUninitializedCapacity: count) { buf, initialized in
        let got = fread(buf.baseAddress!, MemoryLayout<T>.stride, count, f)
        guard got == count else { fail("short read of \(path): \(got) of \(count)") }
        initialized = count
    }
}

func emit(_ fields: [(String, String)]) {
    var load = [Double](repeating: 0, count: 1)
    _ = getloadavg(&load, 1)
    let all = fields + [("loadavg_1m", String(format2(load[0])))]
    print("{" + all.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
    fflush(nil)
}

func format2(_ x: Double) -> String { String(Double((x * 100).rounded()) / 100) }
func quoted(_ s: String) -> String { "\"\(s)\"" }

let options = parse(Array(CommandLine.arguments.dropFirst()))
let dir = options.data
var xs = readRaw("\(dir)/train_x.f32", as: Float.self)
var ys = readRaw("\(dir)/train_y.i64", as: Int.self)
let xt = readRaw("\(dir)/test_x.f32", as: Float.self)
let yt = readRaw("\(dir)/test_y.i64", as: Int.self)
guard xs.count == ys.count * 64, xt.count == yt.count * 64 else { fail("data files in \(dir) do not agree (64 features per row)") }
if let rows = options.rows, rows < ys.count {
    xs.removeLast(xs.count - rows * 64)
    ys.removeLast(ys.count - rows)
}
let n = ys.count
let x = Tensor(shape: [n, 64], storage: xs)
let xTest = Tensor(shape: [yt.count, 64], storage: xt)
xs = []
emit([("kind", quoted("env")), ("engine", quoted("NebulaEngine")), ("blas", quoted("OpenBLAS")), ("rows", "\(n)"),
      ("heldout_rows", "\(yt.count)")])

for threads in options.threads {
    BLAS.threads = threads
    let model = MLP(inputs: 64, hidden: [256, 256], outputs: 10, activation: .relu, seed: 0).build()
    let trainer = Trainer(model: model, loss: CrossEntropyLoss(), optimizer: Adam(model.parameters, learningRate: 1e-3),
                          options: TrainingOptions(epochs: options.epochs, batchSize: 256, seed: 0))
    var rates: [Double] = []
    trainer.fit(x, ys) { r in
        rates.append(r.samplesPerSecond)
        emit([("kind", quoted("synth_epoch")), ("threads", "\(threads)"), ("batching", quoted("shuffle+gather")),
              ("epoch", "\(r.epoch)"), ("rows", "\(r.samples)"), ("seconds", String(r.seconds)),
              ("samples_per_s", String(r.samplesPerSecond.rounded())), ("train_loss", String(r.loss))])
    }
    let predicted = trainer.predictClasses(xTest, batchSize: 4096)
    let accuracy = Double(zip(predicted, yt).filter { $0 == $1 }.count) / Double(max(1, yt.count))
    let sorted = rates.sorted()
    let median = sorted.isEmpty ? 0 : (sorted[(sorted.count - 1) / 2] + sorted[sorted.count / 2]) / 2
    emit([("kind", quoted("synth_summary")), ("threads", "\(threads)"), ("batching", quoted("shuffle+gather")),
          ("epochs", "\(options.epochs)"), ("median_samples_per_s", String(median.rounded())),
          ("max_samples_per_s", String((sorted.last ?? 0).rounded())), ("heldout_acc", String(accuracy))])
}
