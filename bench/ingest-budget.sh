#!/usr/bin/env bash
# Usage: bench/ingest-budget.sh [--gb 2] [--budget-mb 256] [--threads 2] [--scratch-path .build]
#
# Ingests a CSV larger than the memory it is allowed, and shows that it succeeds:
#   1. writes a CSV of about --gb GiB into bench/.cache/ (ints, floats, a 50-level category, dates,
#      short text; no Python packages needed) unless it is there;
#   2. builds nebula-bench-csv (release);
#   3. runs the ingest (parallel parse, columnar file, checksums, full profile) inside a memory
#      cgroup limited to --budget-mb (page cache counts against it too, as in a container), and
#      prints the file size, the budget, the cgroup's peak usage, OOM kills, the process's peak RSS,
#      MB/s, and the ratio file size / budget.
# Needs root and the cgroup v1 memory controller at /sys/fs/cgroup/memory; where it cannot make a
# cgroup it says so and runs without a hard limit, reporting the peak RSS only.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

gb=2
budget_mb=256
threads=2
scratch=.build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --gb) gb=$2; shift 2 ;;
    --budget-mb) budget_mb=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_argument "$1" ;;
  esac
done
cd "$root"

mkdir -p bench/.cache
data=bench/.cache/budget-${gb}g.csv
if [[ ! -f "$data.done" ]]; then
  info "writing about $gb GiB to $data"
  python3 - "$data" "$gb" <<'PY'
import sys
path, gb = sys.argv[1], float(sys.argv[2])
block = "".join(f"{i},{(i % 997) * 0.125},{i / 7:.6f},cat_{i % 50},2020-{1 + i % 12:02d}-{1 + i % 28:02d},note {i % 300}\n"
                for i in range(20000)).encode()
target = int(gb * (1 << 30))
with open(path, "wb") as f:
    f.write(b"id,a,b,category,day,note\n")
    written = 0
    while written < target:
        f.write(block)
        written += len(block)
PY
  touch "$data.done"
fi
size=$(stat -c %s "$data")

info "building nebula-bench-csv (release, scratch path $scratch)"
swift build -c release --scratch-path "$scratch" --product nebula-bench-csv >/dev/null
driver=$(swift build -c release --scratch-path "$scratch" --show-bin-path)/nebula-bench-csv
out=bench/.cache/budget.nbds
rm -f "$out"

cg=""
if [[ -w /sys/fs/cgroup/memory ]]; then
  cg=/sys/fs/cgroup/memory/nebula-budget-$$
  mkdir "$cg"
  trap 'rmdir "$cg" 2>/dev/null || true; rm -f "$out"' EXIT
  echo $((budget_mb << 20)) > "$cg/memory.limit_in_bytes"
  info "running under a hard ${budget_mb} MiB memory cgroup"
  result=$(sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$driver" --csv "$data" --out "$out" --threads "$threads") || {
    echo "ingest-budget: the ingest FAILED under the budget (oom_kill: $(grep oom_kill "$cg/memory.oom_control" | tail -1))" >&2
    exit 1
  }
  peak=$(cat "$cg/memory.max_usage_in_bytes")
  ooms=$(awk '$1 == "oom_kill" { print $2 }' "$cg/memory.oom_control")
else
  trap 'rm -f "$out"' EXIT
  info "no writable memory cgroup here (needs root and cgroup v1 memory): running without a hard limit"
  result=$("$driver" --csv "$data" --out "$out" --threads "$threads")
  peak=-1
  ooms=-
fi
python3 - "$result" "$size" "$budget_mb" "$peak" "$ooms" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); size = int(sys.argv[2]); budget = int(sys.argv[3]) << 20
peak, ooms = int(sys.argv[4]), sys.argv[5]
print(f"{'FILE_MB':>9} {'BUDGET_MB':>9} {'FILE/BUDGET':>11} {'CGROUP_PEAK_MB':>14} {'OOM_KILLS':>9} {'PEAK_RSS_MB':>11} {'ROWS':>10} {'MB/s':>7}")
print(f"{size / 1e6:9.0f} {budget >> 20:9d} {size / budget:11.1f} {peak / 1048576 if peak >= 0 else float('nan'):14.1f} "
      f"{ooms:>9} {r['peak_rss_mb']:11.1f} {r['rows']:10d} {r['total_mb_per_s']:7.1f}")
PY
