#!/usr/bin/env bash
# Usage: bench/builder.sh [--budget 60] [--datasets "iris wine ..."] [--cluster] [--scratch-path .build-release]
#
# The ML builder next to scikit-learn doing the same work, on the real datasets of Tests/Data, in the
# same run on this machine:
#   1. makes bench/.venv-sklearn (pip: numpy, scipy, scikit-learn, pandas — the baselines' versions);
#   2. builds nebula-bench-builder (release): a whole builder run in one process (ingest, task, split,
#      preprocessing, every candidate, ensemble, permutation importance), printing its leaderboard and
#      writing the validation row numbers;
#   3. runs bench/builder_baseline.py: the same candidate families in scikit-learn (logistic/linear,
#      MLP 128-64 with early stopping, HistGradientBoosting; TF-IDF + linear models for text), trained on
#      the same training rows and scored on the same validation rows;
#   4. prints per dataset: the best model and score of each, the score difference, the seconds of
#      the whole run and of the candidates' fits, and the ratio scikit-learn / Nebula (above 1: Nebula
#      took less time).
#   --cluster: also runs `nebula build` against the running cluster (cluster/up; .nebula/cluster.env)
#      for each dataset, so its candidates run as cluster jobs, and prints that run's wall time next
#      to the in-process one (what dispatching candidates as jobs costs).
# Nebula stops each candidate early within --budget seconds (split equally); scikit-learn has no budget.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

budget=60
datasets="iris wine penguins seattle diabetes digits rotten"
cluster=0
scratch=.build-release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --budget) budget=$2; shift 2 ;;
    --datasets) datasets=$2; shift 2 ;;
    --cluster) cluster=1; shift ;;
    --scratch-path) scratch=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_argument "$1" ;;
  esac
done

cd "$root"

venv=bench/.venv-sklearn
bench_venv "$venv" "sklearn, pandas" numpy==2.4.6 scipy==1.17.1 scikit-learn==1.9.1 pandas==3.1.1

info "building nebula-bench-builder (release, scratch path $scratch)"
swift build -c release --scratch-path "$scratch" --product nebula-bench-builder >/dev/null
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)"

if ((cluster)); then
  [[ -f .nebula/cluster.env ]] || { echo "builder: --cluster needs a running cluster (cluster/up)" >&2; exit 1; }
  swift build -c release --scratch-path "$scratch" --product nebula >/dev/null
fi

work=$(mktemp -d /tmp/nebula-bench-builder.XXXXXX)
trap 'rm -rf "$work"' EXIT

# name -> file, target, task, text column, columns the reference drops (Nebula leaves identifier-like ones out itself)
spec() {
  case "$1" in
    iris) echo "sklearn_iris.csv target multiclass - -" ;;
    wine) echo "sklearn_wine.csv target multiclass - -" ;;
    penguins) echo "penguins.csv species multiclass - -" ;;
    seattle) echo "vega_seattle_weather.csv weather multiclass - -" ;;
    diabetes) echo "sklearn_diabetes.csv target regression - -" ;;
    digits) echo "sklearn_digits_8x8.csv label multiclass - -" ;;
    rotten) echo "rotten_tomatoes.csv label binary text movie_name" ;;
    *) echo "builder: unknown dataset '$1' (iris wine penguins seattle diabetes digits rotten)" >&2; exit 1 ;;
  esac
}

printf '\n%-9s %-30s %-30s %8s %9s %9s %7s %9s %9s %7s' dataset "Nebula best" "scikit-learn best" "Δscore" \
  "run s N" "run s SK" "ratio" "fit s N" "fit s SK" "ratio"
((cluster)) && printf ' %10s %8s' "jobs run s" "jobs/in"
printf '\n'
for name in $datasets; do
  read -r file target task text drop <<<"$(spec "$name")"
  csv=Tests/Data/$file
  info "$name: Nebula in-process"
  nebula_line=$("$bin/nebula-bench-builder" --csv "$csv" --target "$target" --scratch "$work" --budget "$budget" \
    --rows-out "$work/$name.rows")
  info "$name: scikit-learn"
  args=(--csv "$csv" --target "$target" --val-rows "$work/$name.rows" --task "$task")
  [[ $text == - ]] || args+=(--text "$text")
  [[ $drop == - ]] || args+=(--drop "$drop")
  sk_line=$("$venv/bin/python" bench/builder_baseline.py "${args[@]}")
  jobs_s=""
  if ((cluster)); then
    info "$name: nebula build on the cluster (candidates as jobs)"
    id=$("$bin/nebula" dataset upload "$csv" --name "bench-$name")
    t0=$(date +%s.%N)
    "$bin/nebula" build --dataset "$id" --target "$target" --time-budget "${budget}s" --json >"$work/$name.cluster.json"
    t1=$(date +%s.%N)
    jobs_s=$(python3 -c "print(round($t1 - $t0, 2))")
  fi
  python3 - "$name" "$nebula_line" "$sk_line" "$jobs_s" <<'EOF'
import json, sys
name, n, s, jobs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
lower = n["metric"] == "rmse"
delta = (s["score"] - n["score"]) if lower else (n["score"] - s["score"])
row = "%-9s %-30s %-30s %+8.3f %9.2f %9.2f %7.2f %9.2f %9.2f %7.2f" % (
    name, "%s %.3f" % (n["best"], n["score"]), "%s %.3f" % (s["best"], s["score"]), delta,
    n["run_s"], s["run_s"], s["run_s"] / max(n["run_s"], 1e-9), n["fit_s"], s["fit_s"], s["fit_s"] / max(n["fit_s"], 1e-9))
if jobs:
    row += " %10.2f %8.2f" % (float(jobs), float(jobs) / max(n["run_s"], 1e-9))
print(row)
EOF
done
printf '\nΔscore > 0: Nebula better (accuracy higher, RMSE lower). ratio > 1: Nebula took less time.\n'
