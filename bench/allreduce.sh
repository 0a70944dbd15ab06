#!/usr/bin/env bash
# Usage: bench/allreduce.sh [--np 2] [--rounds 3] [--reps 7] [--sizes 4096,65536,1048576,16777216,67108864]
#                           [--scratch-path .build] [--skip-mlp] [--mlp-rows 262144] [--mlp-epochs 2]
#
# Allreduce bandwidth of the data-parallel layer next to plain C MPI_Allreduce, in one run:
#   1. compiles a C reference with mpicc: an in-place MPI_Allreduce (Float32, SUM) loop on one 64-byte
#      aligned buffer per size, with the same iteration counts, repetitions and barriers as the Swift side;
#   2. builds nebula-bench-allreduce (release) and runs it under mpirun for each implementation:
#      fusion (FusionBuffer on the MPI thread, 1 MiB segments), fusion-whole (one allreduce per bucket),
#      fusion-hop (the layer driven from another thread: one hop to the MPI thread per allreduce),
#      fusion-fp16 (the Float16 wire format: half the bytes, a user-defined MPI sum), and
#      raw (MPICommunicator.allreduce on one buffer: the Swift wrapper alone, no copies, no weights), and
#      copies (1 process, the layer against a backend that communicates nothing: the cost of copying in
#      and out, printed in µs next to C's time per allreduce), and copies-fp16 (the same with the Float16
#      wire: the conversions' cost);
#   3. per round and size, short runs alternate C and the Swift implementations; per size and
#      implementation the best repetition over all rounds (the least disturbed by other load on a shared
#      machine; the median repetitions are printed too), then algbw = bytes / time,
#      busbw = algbw·2(n−1)/n (nccl-tests), and the ratio time(C) / time(Swift) (≥ 1: the layer is at
#      least as fast as the plain loop);
#   4. unless --skip-mlp: data-parallel MLP 64→256→256→10, Adam, batch 256 per rank, on 1 and on --np
#      ranks (on --np: backward overlapped with the allreduces, not overlapped, and overlapped with the
#      Float16 wire), and the scaling efficiency E(n) = X(n) / (n·X(1)) from total samples/s. The PyTorch DDP
#      reference (baselines/ddp_mlp.py) runs only when bench/.venv-torch has torch (bench/mlp-throughput.sh
#      creates it); otherwise its numbers from the project baselines are quoted, not measured.
# Gradients are what the layer averages, so the Swift side also copies them in (scaled by the rank's
# sample count) and out (scaled by 1/Σ counts); the C loop does no copies and no weighting.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

np=2
rounds=3
reps=7
sizes=4096,65536,1048576,16777216,67108864
scratch=.build
mlp=1
mlp_rows=262144
mlp_epochs=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --np) np=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    --skip-mlp) mlp=0; shift ;;
    --mlp-rows) mlp_rows=$2; shift 2 ;;
    --mlp-epochs) mlp_epochs=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_argument "$1" ;;
  esac
done

cd "$root"

out=$(mktemp -d /tmp/nebula-allreduce-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT

cat >"$out/allreduce_ref.c" <<'C'
/* Plain MPI_Allreduce loop: the reference for bench/allreduce.sh (same protocol as nebula-bench-allreduce). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int iterations(long bytes) { long n = (256L << 20) / bytes; return n < 10 ? 10 : (n > 5000 ? 5000 : (int)n); }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int reps = atoi(argv[1]);
  for (char *tok = strtok(argv[2], ","); tok; tok = strtok(NULL, ",")) {
    long bytes = atol(tok), count = bytes / 4;
    float *buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
    for (long i = 0; i < count; i++) buf[i] = (float)((rank + i) % 7) / 7.0f;
    int iters = iterations(bytes);
    double times[256];
    for (int w = 0; w < 3; w++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int r = 0; r < reps && r < 256; r++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t = MPI_Wtime();
      for (int i = 0; i < iters; i++) MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      times[r] = (MPI_Wtime() - t) / iters;
    }
    qsort(times, reps, sizeof(double), cmp);
    double mine[2] = {(times[(reps - 1) / 2] + times[reps / 2]) / 2, times[0]}, slowest[2];
    MPI_Allreduce(mine, slowest, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    double algbw = bytes / slowest[0];
    if (rank == 0)
      printf("{\"kind\": \"allreduce\", \"impl\": \"c\", \"ranks\": %d, \"bytes\": %ld, \"iterations\": %d, \"reps\": %d, "
             "\"seconds\": %.9g, \"best_seconds\": %.9g, \"algbw_GBps\": %.6g, \"busbw_GBps\": %.6g}\n",
             size, bytes, iters, reps, slowest[0], slowest[1], algbw / 1e9, algbw * 2 * (size - 1) / size / 1e9);
    fflush(stdout);
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
C
info "compiling the C reference with mpicc"
mpicc -O2 -o "$out/allreduce_ref" "$out/allreduce_ref.c"

info "building nebula-bench-allreduce (release, scratch path $scratch)"
if ! swift build -c release --scratch-path "$scratch" --product nebula-bench-allreduce >"$out/build.log" 2>&1; then
  cat "$out/build.log" >&2
  echo "allreduce: build failed" >&2
  exit 1
fi
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)/nebula-bench-allreduce

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# A rank that hangs blocks the others forever: the watchdog is outside MPI.
run_mpi() { local n=$1; shift; timeout --kill-after=10 900 mpirun -np "$n" --oversubscribe --mca btl self,vader "$@"; }

# Sizes in the outer loop and short runs alternating C and Swift: a burst of load from elsewhere then hits
# both sides of a comparison alike.
for ((r = 1; r <= rounds; r++)); do
  for size in ${sizes//,/ }; do
    info "round $r/$rounds, $size bytes: C, raw, fusion, fusion-whole, fusion-hop, fusion-fp16 (np $np; load $(cut -d' ' -f1 /proc/loadavg))"
    run_mpi "$np" "$out/allreduce_ref" "$reps" "$size" >>"$out/allreduce.jsonl"
    for impl in raw fusion fusion-whole fusion-hop fusion-fp16; do
      run_mpi "$np" "$bin" allreduce --impl "$impl" --reps "$reps" --sizes "$size" >>"$out/allreduce.jsonl"
    done
    run_mpi 1 "$bin" allreduce --impl copies --reps "$reps" --sizes "$size" >>"$out/allreduce.jsonl"
    run_mpi 1 "$bin" allreduce --impl copies-fp16 --reps "$reps" --sizes "$size" >>"$out/allreduce.jsonl"
  done
done

if [[ $mlp == 1 ]]; then
  info "data-parallel MLP on 1 rank: $mlp_rows rows, $mlp_epochs epochs (load $(cut -d' ' -f1 /proc/loadavg))"
  run_mpi 1 "$bin" mlp --rows "$mlp_rows" --epochs "$mlp_epochs" | tee -a "$out/mlp.jsonl" >&2
  for config in "on float32" "off float32" "on float16"; do
    read -r overlap wire <<<"$config"
    info "data-parallel MLP on $np ranks, overlap $overlap, wire $wire: $mlp_rows rows, $mlp_epochs epochs (load $(cut -d' ' -f1 /proc/loadavg))"
    run_mpi "$np" "$bin" mlp --rows "$mlp_rows" --epochs "$mlp_epochs" --overlap "$overlap" --wire "$wire" \
      | tee -a "$out/mlp.jsonl" >&2
  done
  torchrun=bench/.venv-torch/bin/torchrun
  bench_baselines allreduce ddp_mlp.py synth.py
  if [[ -x $torchrun ]] && bench/.venv-torch/bin/python -c "import torch, numpy" 2>/dev/null; then
    for n in 1 "$np"; do
      info "PyTorch DDP (gloo) on $n rank(s): $mlp_rows rows, $mlp_epochs epochs"
      "$torchrun" --standalone --nnodes=1 --nproc_per_node="$n" "$baselines/ddp_mlp.py" --epochs "$mlp_epochs" \
        --rows "$mlp_rows" 2>/dev/null | tee -a "$out/ddp.jsonl" >&2
    done
  else
    info "no torch in bench/.venv-torch (bench/mlp-throughput.sh creates it): PyTorch DDP not measured"
  fi
fi

python3 - "$out" "$np" <<'PY'
import json, os, statistics, sys
out, np_ = sys.argv[1], int(sys.argv[2])
def lines(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows
by, best = {}, {}
for o in lines("allreduce.jsonl"):
    if o.get("kind") == "allreduce":
        by.setdefault((o["impl"], o["bytes"]), []).append(o["seconds"])
        best.setdefault((o["impl"], o["bytes"]), []).append(o["best_seconds"])
sizes = sorted({b for (_, b) in by})
impls = ["c", "raw", "fusion", "fusion-whole", "fusion-hop", "fusion-fp16", "copies", "copies-fp16"]
def human(b):
    return f"{b >> 20} MB" if b >= 1 << 20 else f"{b >> 10} KB"
print()
print(f"Allreduce, {np_} ranks, Float32 SUM. algbw / busbw in GB/s from the best repetition over all rounds;")
print("ratio = time(C) / time(Nebula), from the best repetitions (median repetitions in brackets).")
print("| size | C algbw | C busbw | fusion algbw | fusion busbw | **fusion ratio** | raw ratio | fusion-whole ratio | fusion-hop ratio | fusion-fp16 ratio | C µs | layer-only µs | layer-only fp16 µs |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for b in sizes:
    t = {i: min(best[(i, b)]) for i in impls if (i, b) in best}
    m = {i: statistics.median(by[(i, b)]) for i in impls if (i, b) in by}
    def bw(i):
        if i not in t: return float("nan"), float("nan")
        a = b / t[i] / 1e9
        return a, a * 2 * (np_ - 1) / np_
    def ratio(i, d):
        return d["c"] / d[i] if "c" in d and i in d else float("nan")
    def both(i):
        return f"{ratio(i, t):.2f} ({ratio(i, m):.2f})"
    ca, cb = bw("c"); fa, fb = bw("fusion")
    print(f"| {human(b)} | {ca:.2f} | {cb:.2f} | {fa:.2f} | {fb:.2f} | **{both('fusion')}** | {both('raw')} | "
          f"{both('fusion-whole')} | {both('fusion-hop')} | {both('fusion-fp16')} | {t.get('c', float('nan')) * 1e6:.1f} | "
          f"{t.get('copies', float('nan')) * 1e6:.1f} | {t.get('copies-fp16', float('nan')) * 1e6:.1f} |")
summaries = [o for o in lines("mlp.jsonl") if o.get("kind") == "dp_summary"]
if summaries:
    print()
    print("Data-parallel MLP 64→256→256→10, Adam, batch 256 per rank (total samples/s, median over epochs)")
    x1 = next((o["median_total_samples_per_s"] for o in summaries if o["world_size"] == 1), None)
    ddp = {o["world_size"]: o["median_total_samples_per_s"] for o in lines("ddp.jsonl") if o.get("kind") == "ddp_summary"}
    print("| | 1 rank | %d ranks | E(%d) |" % (np_, np_))
    print("|---|---|---|---|")
    for o in summaries:
        if o["world_size"] != np_ or not x1:
            continue
        xn = o["median_total_samples_per_s"]
        label = "overlap %s, %s wire" % ("on" if o.get("overlap", True) else "off", o.get("wire", "float32"))
        print(f"| Nebula (MPI), {label} | {x1:,.0f} | {xn:,.0f} | **{xn / (np_ * x1):.2f}** |")
    if 1 in ddp and np_ in ddp:
        print(f"| PyTorch DDP (gloo), measured now | {ddp[1]:,.0f} | {ddp[np_]:,.0f} | {ddp[np_] / (np_ * ddp[1]):.2f} |")
    else:
        print("| PyTorch DDP (gloo), project baselines (not measured now; no torch here) | 71–75k | 57–62k | 0.40–0.42 |")
PY
