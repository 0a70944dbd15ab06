#!/usr/bin/env bash
# Usage: bench/csv-ingest.sh [--rounds 3] [--rows 12000000] [--threads 2]
#                            [--tools pandas,pyarrow,polars,duckdb] [--scratch-path .build]
#
# CSV ingest throughput of NebulaDataset next to the reference tools, on this machine, in one run:
#   1. creates bench/.venv-csv (pip: the versions of baselines/setup.sh for numpy, pandas, pyarrow,
#      duckdb, polars) unless it exists;
#   2. writes the 1 GB CSV once with baselines/gen_big_csv.py (seed 42) into bench/.cache/;
#   3. builds nebula-bench-csv (release) and, per round, runs
#        - Nebula: parallel parse + type inference + columnar file with SHA-256 checksums + full
#          profile (count, missing, distinct, mean, std, min, quartiles, max, top values,
#          histograms) of every column, --threads N;
#        - baselines/csv_bench.py --threads N --repeats 1 (each tool in a fresh process: read the CSV,
#          group-by mean over `category`, describe() of the 7 numeric columns);
#   4. prints per tool: total MB/s (median over rounds, and best), read-only MB/s for the references,
#      the ratio to the fastest total, and peak RSS (VmHWM / ru_maxrss of the tool's process).
# Rounds alternate the tools (the machine is shared: look at the loadavg column, and run when
# `uptime` is low). The page cache is warm for everyone (`cat` of the file first).
# The baselines folder is $NEBULA_BASELINES_DIR, else ../shared/baselines beside the repository.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

rounds=3
rows=12000000
threads=2
tools=pandas,pyarrow,polars,duckdb
scratch=.build
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tools) tools=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_argument "$1" ;;
  esac
done

cd "$root"
bench_baselines csv-ingest csv_bench.py gen_big_csv.py

venv=bench/.venv-csv
bench_venv "$venv" "pandas, pyarrow, polars, duckdb, numpy" \
  numpy==2.4.6 pandas==3.1.1 pyarrow==26.0.1 duckdb==2.0.1 polars==2.1.0
py="$venv/bin/python"

mkdir -p bench/.cache
data=bench/.cache/big-$rows.csv
if [[ "$(cat "$data.stamp" 2>/dev/null)" != "rows=$rows seed=42" ]]; then
  info "writing $rows rows to $data"
  "$py" "$baselines/gen_big_csv.py" --rows "$rows" --out "$data" >&2
  echo "rows=$rows seed=42" > "$data.stamp"
fi

info "building nebula-bench-csv (release, scratch path $scratch)"
swift build -c release --scratch-path "$scratch" --product nebula-bench-csv >/dev/null
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)

out=$(mktemp -d /tmp/nebula-csv-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
cat "$data" > /dev/null
for ((r = 1; r <= rounds; r++)); do
  info "round $r/$rounds: Nebula (threads $threads; load $(cut -d' ' -f1 /proc/loadavg))"
  "$bin/nebula-bench-csv" --csv "$data" --out "$out/big.nbds" --threads "$threads" | tee -a "$out/runs.jsonl" >&2
  rm -f "$out/big.nbds"
  info "round $r/$rounds: csv_bench.py --threads $threads --tools $tools (load $(cut -d' ' -f1 /proc/loadavg))"
  "$py" "$baselines/csv_bench.py" --file "$data" --threads "$threads" --repeats 1 --tools "$tools" --no-floor |
    tee -a "$out/runs.jsonl" >&2
done
info "floor: cat > /dev/null"
start=$(date +%s%N); cat "$data" > /dev/null; end=$(date +%s%N)
echo "{\"kind\": \"floor\", \"tool\": \"cat\", \"seconds\": $(( (end - start) / 1000 ))e-6}" >> "$out/runs.jsonl"

"$py" - "$out/runs.jsonl" "$data" <<'PY'
import json, os, statistics, sys
path, data = sys.argv[1], sys.argv[2]
mb = os.path.getsize(data) / 1e6
runs = {}
floor = None
for line in open(path):
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("kind") == "floor":
        floor = mb / o["seconds"]
    elif o.get("kind") == "csv" and "error" not in o:
        runs.setdefault(o["tool"], []).append(o)
rows = []
for tool, rs in runs.items():
    total = [r["total_mb_per_s"] for r in rs]
    read = [r.get("read_mb_per_s") or r["total_mb_per_s"] for r in rs]
    rows.append(dict(tool=tool, median=statistics.median(total), best=max(total), read=statistics.median(read),
                     rss=max(r.get("peak_rss_mb", 0) for r in rs), load=max(r.get("loadavg_1m", 0) for r in rs), n=len(rs)))
fastest = max(r["median"] for r in rows)
print()
print(f"file: {data} ({mb:,.0f} MB); cat floor {floor:,.0f} MB/s" if floor else f"file: {data}")
print("| tool | total MB/s (median) | best | read-only MB/s (median) | ratio to fastest | peak RSS MB | runs | max loadavg |")
print("|---|---|---|---|---|---|---|---|")
for r in sorted(rows, key=lambda r: -r["median"]):
    print(f"| {r['tool']} | {r['median']:,.0f} | {r['best']:,.0f} | {r['read']:,.0f} | {r['median'] / fastest:.2f} | {r['rss']:,.0f} | {r['n']} | {r['load']:.1f} |")
print()
print("Nebula's total is parse + types + columnar file (SHA-256 of every buffer) + full profile; the")
print("references' total is read + group-by + describe (their read-only column excludes the rest).")
PY
