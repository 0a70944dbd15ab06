#!/usr/bin/env bash
# Usage: bench/http-api.sh [--duration 15] [--connections 64] [--threads 2] [--rounds 2]
#                          [--workers 2] [--db-connections 8] [--scratch-path .build-release]
#
# Requests/s and p99 latency of Nebula's REST API next to the seed's stack (FastAPI on uvicorn) doing
# the same work, measured with wrk in the same run, on this machine:
#   1. installs wrk (apt) if missing and makes bench/.venv-api (pip: fastapi, uvicorn, asyncpg, pyjwt);
#   2. builds nebula-coordinator (release) and starts a private PostgreSQL (cluster/lib/pgctl);
#   3. starts the coordinator (REST API on a free port, rate limits off, the default per-request log)
#      and bench/api_baseline.py under uvicorn (--workers N, its access log on), both on the same
#      database with the same JWT key;
#   4. registers a user, uploads a small dataset through the API, and takes the user's access token;
#   5. per round and per route (GET /healthz; GET /api/datasets with the bearer token: JWT check +
#      two PostgreSQL queries), runs `wrk -t T -c C -d D --latency` against each server in turn
#      (a 3 s warm-up first), and prints requests/s, p50 and p99 and the ratio Nebula / FastAPI.
# wrk runs on the same 2-core machine as the servers, so absolute numbers are low for both; the
# ratio is what this measures. Both servers get the same number of PostgreSQL connections in all.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

duration=15
connections=64
threads=2
rounds=2
workers=2
dbconns=8
scratch=.build-release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --db-connections) dbconns=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    -h|--help) bench_help ;;
    *) bench_bad_argument "$1" ;;
  esac
done

cd "$root"

if ! command -v wrk >/dev/null; then
  info "installing wrk (apt)"
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get install -y wrk >/dev/null 2>&1 || { "${sudo_cmd[@]}" apt-get update >/dev/null && "${sudo_cmd[@]}" apt-get install -y wrk >/dev/null; }
fi
venv=bench/.venv-api
bench_venv "$venv" "fastapi, uvicorn, asyncpg, jwt" fastapi==0.165.0 uvicorn==0.55.0 asyncpg==0.32.0 pyjwt==2.15.1

info "building nebula-coordinator (release, scratch path $scratch)"
swift build -c release --scratch-path "$scratch" --product nebula-coordinator >/dev/null
bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/nebula-coordinator"

work=$(mktemp -d /tmp/nebula-bench-api.XXXXXX)
[[ $(id -u) -ne 0 ]] || chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cluster/lib/pgctl stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pgport=$(free_port)
db=$(cluster/lib/pgctl start "$work/pg" "$pgport" --fsync off)
secret=$(head -c 48 /dev/urandom | base64 | tr -d '/+=' | head -c 48)
printf '%s' "$secret" > "$work/jwt.key"
head -c 24 /dev/urandom | base64 > "$work/join.token"
head -c 24 /dev/urandom | base64 > "$work/admin.token"
nport=$(free_port); fport=$(free_port)

info "starting the coordinator (REST API on $nport) and uvicorn ($workers workers on $fport)"
NEBULA_ADMIN_EMAIL=admin@example.org NEBULA_ADMIN_PASSWORD=bench-admin-password \
  "$bin" serve --listen "127.0.0.1:$(free_port)" --http-listen "127.0.0.1:$nport" --database-url "$db" \
  --data-dir "$work/data" --join-token-file "$work/join.token" --admin-token-file "$work/admin.token" \
  --jwt-secret-file "$work/jwt.key" --access-token-ttl 2h --http-db-connections "$dbconns" \
  --rate-limit read=off --rate-limit auth=off --rate-limit upload=off > "$work/coordinator.log" 2>&1 &
pids+=($!)
NEBULA_BENCH_DATABASE_URL="$db" NEBULA_BENCH_JWT_SECRET="$secret" NEBULA_BENCH_DB_CONNECTIONS=$(( (dbconns + workers - 1) / workers )) \
  "$venv/bin/uvicorn" api_baseline:app --app-dir bench --host 127.0.0.1 --port "$fport" --workers "$workers" \
  > "$work/uvicorn.log" 2>&1 &
pids+=($!)
for i in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$nport/healthz" >/dev/null && curl -sf "http://127.0.0.1:$fport/healthz" >/dev/null && break
  sleep 0.5
  [[ $i -lt 120 ]] || { tail -20 "$work/coordinator.log" "$work/uvicorn.log" >&2; echo "http-api: servers did not start" >&2; exit 1; }
done

token=$(curl -sf -X POST "http://127.0.0.1:$nport/api/auth/register" -H 'content-type: application/json' \
  -d '{"email":"bench@example.org","password":"bench-password-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sf -X POST "http://127.0.0.1:$nport/api/datasets" -H "authorization: Bearer $token" \
  -F "file=@Tests/Data/sklearn_iris.csv" -F name=iris >/dev/null
for i in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$nport/api/datasets" -H "authorization: Bearer $token" | grep -q '"state":"ready"' && break
  sleep 0.5
done
# Both answer the same page (one dataset of this user).
n_total=$(curl -sf "http://127.0.0.1:$nport/api/datasets" -H "authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
f_total=$(curl -sf "http://127.0.0.1:$fport/api/datasets" -H "authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
[[ "$n_total" == 1 && "$f_total" == 1 ]] || { echo "http-api: the servers disagree on the page (nebula $n_total, fastapi $f_total)" >&2; exit 1; }

# run_wrk PORT PATH AUTH: prints "requests_per_second p50_ms p99_ms non2xx"
run_wrk() {
  local port=$1 path=$2 auth=$3 out
  local hdr=(); [[ -z "$auth" ]] || hdr=(-H "Authorization: Bearer $auth")
  wrk -t"$threads" -c"$connections" -d3s "${hdr[@]+"${hdr[@]}"}" "http://127.0.0.1:$port$path" >/dev/null 2>&1
  out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "${hdr[@]+"${hdr[@]}"}" "http://127.0.0.1:$port$path" 2>&1)
  python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, u = float(m.group(1)), m.group(2)
    return n / 1000 if u == "us" else n * 1000 if u == "s" else n
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"\n\s+50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"\n\s+99%\s+(\S+)", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {bad.group(1) if bad else 0}")
PY
}

printf '\n%-22s %-8s %10s %9s %9s %7s\n' "route" "server" "req/s" "p50 ms" "p99 ms" "non-2xx"
declare -A best
for round in $(seq 1 "$rounds"); do
  for route in healthz datasets; do
    path=/healthz; auth=""
    [[ $route == datasets ]] && { path=/api/datasets; auth=$token; }
    for server in nebula fastapi; do
      port=$nport; [[ $server == fastapi ]] && port=$fport
      read -r rps p50 p99 bad < <(run_wrk "$port" "$path" "$auth")
      printf '%-22s %-8s %10s %9s %9s %7s\n' "GET $path (r$round)" "$server" "$rps" "$p50" "$p99" "$bad"
      key="$route.$server"
      if [[ -z "${best[$key]:-}" || $rps -gt ${best[$key]%% *} ]]; then best[$key]="$rps $p99"; fi
    done
  done
done
printf '\nbest of %s rounds (wrk -t%s -c%s -d%ss; uvicorn --workers %s; %s PostgreSQL connections each; %s cores):\n' \
  "$rounds" "$threads" "$connections" "$duration" "$workers" "$dbconns" "$(nproc)"
for route in healthz datasets; do
  read -r nr np <<<"${best[$route.nebula]}"
  read -r fr fp <<<"${best[$route.fastapi]}"
  python3 -c "import sys; nr,np,fr,fp=map(float,sys.argv[2:]); print(f'  {sys.argv[1]:<10} Nebula {nr:8.0f} req/s p99 {np:7.2f} ms | FastAPI {fr:8.0f} req/s p99 {fp:7.2f} ms | throughput x{nr/fr:.2f}, p99 x{np/fp:.2f}')" \
    "$route" "$nr" "$np" "$fr" "$fp"
done
