#!/usr/bin/env bash
# Usage: bench/mlp-throughput.sh [--epochs 3] [--threads "1 2"] [--rounds 1] [--rows 1000000]
#                                [--scratch-path .build]
#
# MLP training throughput of the engine next to PyTorch, on this machine, in one run:
#   MLP 64→256→256→10 (ReLU), Adam 1e-3, batch 256, cross-entropy, on the 1,000,000 synthetic rows
#   of the project baselines (baselines/synth.py, seed 0; held-out 100,000 rows, seed 1).
#   1. creates bench/.venv-torch (pip: torch==2.15.0 numpy) unless it exists;
#   2. writes the synthetic rows once with that function (bench/.cache/mlp-synth, raw float32/int64),
#      so both sides train on identical data;
#   3. builds nebula-bench-mlp (release) and runs it: shuffle per epoch + gather into a batch buffer;
#   4. runs baselines/torch_mlp.py --skip-digits (randperm + index_select) with the same settings;
#   5. prints per thread count: samples/s (median of epochs, then median over rounds) of both, the
#      ratio, and held-out accuracy.
# --rounds R alternates Nebula and PyTorch R times (the machine is shared: look at the loadavg column).
# The baselines folder is $NEBULA_BASELINES_DIR, else ../shared/baselines beside the repository.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

epochs=3
threads="1 2"
rounds=1
rows=1000000
scratch=.build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --epochs) epochs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_argument "$1" ;;
  esac
done

cd "$root"
bench_baselines mlp-throughput torch_mlp.py synth.py

venv=bench/.venv-torch  # several GB
if ! bench_venv "$venv" "torch, numpy" torch==2.15.0 numpy; then
  info "PyPI install failed; trying the CPU wheel index"
  "$venv/bin/pip" install -q torch==2.15.0 numpy --index-url https://download.pytorch.org/whl/cpu
fi
py="$venv/bin/python"

data=bench/.cache/mlp-synth
if [[ "$(cat "$data/STAMP" 2>/dev/null)" != "rows=$rows" ]]; then
  info "writing $rows synthetic rows to $data"
  "$py" bench/mlp_synth_data.py "$baselines" "$data" --rows "$rows"
fi

out=$(mktemp -d /tmp/nebula-mlp-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
info "building nebula-bench-mlp (release, scratch path $scratch)"
if ! swift build -c release --scratch-path "$scratch" --product nebula-bench-mlp >"$out/build.log" 2>&1; then
  cat "$out/build.log" >&2
  echo "mlp-throughput: build failed" >&2
  exit 1
fi
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
# shellcheck disable=SC2086  # thread list is word-split on purpose
for ((r = 1; r <= rounds; r++)); do
  info "round $r/$rounds: Nebula (threads $threads, $epochs epochs; load $(cut -d' ' -f1 /proc/loadavg))"
  "$bin/nebula-bench-mlp" --data "$data" --threads $threads --epochs "$epochs" --rows "$rows" | tee -a "$out/nebula.jsonl" >&2
  info "round $r/$rounds: PyTorch (threads $threads, $epochs epochs; load $(cut -d' ' -f1 /proc/loadavg))"
  "$py" "$baselines/torch_mlp.py" --threads $threads --epochs "$epochs" --rows "$rows" --skip-digits |
    tee -a "$out/torch.jsonl" >&2
done

"$py" - "$out/nebula.jsonl" "$out/torch.jsonl" <<'PY'
import json, statistics, sys
def summaries(path):
    by = {}
    for line in open(path):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if o.get("kind") == "synth_summary":
            by.setdefault(o["threads"], []).append(o)
    return by
neb, tor = summaries(sys.argv[1]), summaries(sys.argv[2])
print()
print("| threads | Nebula samples/s | PyTorch samples/s | ratio | Nebula held-out acc | PyTorch held-out acc | loadavg (N/P) |")
print("|---|---|---|---|---|---|---|")
for t in sorted(set(neb) | set(tor)):
    n = statistics.median(s["median_samples_per_s"] for s in neb.get(t, [])) if t in neb else float("nan")
    p = statistics.median(s["median_samples_per_s"] for s in tor.get(t, [])) if t in tor else float("nan")
    na = neb[t][-1]["heldout_acc"] if t in neb else float("nan")
    pa = tor[t][-1]["heldout_acc"] if t in tor else float("nan")
    load = "/".join("%.1f" % max(s["loadavg_1m"] for s in d.get(t, [{"loadavg_1m": float("nan")}])) for d in (neb, tor))
    print(f"| {t} | {n:,.0f} | {p:,.0f} | **{n / p:.2f}×** | {na:.4f} | {pa:.4f} | {load} |")
PY
