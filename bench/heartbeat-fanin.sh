#!/usr/bin/env bash
# Usage: bench/heartbeat-fanin.sh [--nodes "1000 10000"] [--seconds 20] [--unary-seconds 5]
#
# Heartbeat fan-in of the cluster backbone, measured on this machine in one run:
#   1. builds release binaries (coordinator, bench driver);
#   2. starts a private PostgreSQL (fsync off, as in the reference numbers) and a coordinator;
#   3. for each N: registers N simulated agents (many per process, spread over a few channels) that
#      heartbeat at 1 Hz with one health sample each, and reports sustained heartbeats/s against the
#      offered rate, p50/p99 latency, the coordinator's CPU (% of one core) and node_health rows/s
#      written to Postgres;
#   4. unary round trips/s (1 KB, sequential) of the RPC layer's client and of Python grpcio
#      against the same Swift echo server, and their ratio.
# The driver shares the machine with the coordinator and Postgres: on a 2-core machine the figures
# at 10,000 nodes are bounded by that, which the ratio column makes visible.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../cluster/lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../cluster/lib/common.sh"

node_counts="1000 10000"
seconds=20
unary_seconds=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) node_counts=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --unary-seconds) unary_seconds=$2; shift 2 ;;
    -h|--help) print_usage "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

root=$(nebula_root)
cd "$root"
need_packages
info "building release binaries"
swift build -c release --product nebula-coordinator >/dev/null
swift build -c release --product nebula-bench >/dev/null
bin=$(swift build -c release --show-bin-path)

work=$(mktemp -d /tmp/nebula-bench.XXXXXX)
chmod 755 "$work"  # the postgres user must reach the database folder inside
pg_dir="$work/pg"
coord_pid="" echo_pid=""
cleanup() {
  if [[ -n "$coord_pid" ]]; then kill "$coord_pid" 2>/dev/null || true; fi
  if [[ -n "$echo_pid" ]]; then kill "$echo_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  pg_stop "$pg_dir" immediate >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

pg_port=$(free_port)
db_url=$(pg_start "$pg_dir" "$pg_port" off)
random_token > "$work/join"
random_token > "$work/admin"
grpc_port=$(free_port)
"$bin/nebula-coordinator" serve --listen "127.0.0.1:$grpc_port" --database-url "$db_url" --data-dir "$work/coord" \
  --join-token-file "$work/join" --admin-token-file "$work/admin" --log-level warning \
  > "$work/coordinator.log" 2>&1 &
coord_pid=$!
wait_for 30 "the coordinator to listen on $grpc_port" port_open "$grpc_port"

printf '\n== Heartbeat fan-in (1 Hz per node, %ss measured) ==\n' "$seconds"
printf '%-8s %12s %14s %8s %9s %9s %10s %13s %8s\n' NODES OFFERED/s HEARTBEATS/s RATIO P50_ms P99_ms COORD_CPU% PG_ROWS/s ERRORS
for n in $node_counts; do
  line=$("$bin/nebula-bench" fan-in --coordinator "127.0.0.1:$grpc_port" --token-file "$work/join" --nodes "$n" \
    --seconds "$seconds" --coordinator-pid "$coord_pid" --database-url "$db_url")
  python3 - "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print("%-8d %12.0f %14.0f %8.3f %9.2f %9.2f %10.0f %13.0f %8d" % (
    r["nodes"], r["offered_per_s"], r["heartbeats_per_s"], r["heartbeats_per_s"] / r["offered_per_s"],
    r["p50_ms"], r["p99_ms"], r.get("coordinator_cpu_percent", 0), r.get("postgres_rows_per_s", 0), r["errors"]))
PY
done

printf '\n== Unary round trips (1 KB, sequential, same Swift echo server) ==\n'
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$root/bench/lib.sh"
venv="$root/bench/.venv"
bench_venv "$venv" grpc grpcio
"$bin/nebula-bench" echo-server --listen 127.0.0.1:0 > "$work/echo.out" 2>"$work/echo.log" &
echo_pid=$!
wait_for 15 "the echo server" grep -q listening "$work/echo.out"
echo_port=$(awk '/listening/ {print $2}' "$work/echo.out")
swift_line=$("$bin/nebula-bench" unary --target "127.0.0.1:$echo_port" --seconds "$unary_seconds")
py_line=$("$venv/bin/python" "$root/bench/grpc_unary.py" --target "127.0.0.1:$echo_port" --seconds "$unary_seconds")
python3 - "$swift_line" "$py_line" <<'PY'
import json, sys
s, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("%-28s %12s %8s" % ("CLIENT", "CALLS/s", "RATIO"))
print("%-28s %12.0f %8.2f" % ("Nebula RPC (Swift, C core)", s["calls_per_s"], s["calls_per_s"] / p["calls_per_s"]))
print("%-28s %12.0f %8.2f" % ("Python grpcio " + p["grpcio"], p["calls_per_s"], 1.0))
PY
