#!/usr/bin/env bash
# Usage: cluster/examples/add-remote-nodes.sh --coordinator HOST:PORT [options] HOSTFILE
#        cluster/examples/add-remote-nodes.sh --stop [options] HOSTFILE
#
# Starts a Nebula node agent (`nebula-node join`) on every machine listed in HOSTFILE, over ssh, in
# the background (nohup), the way cluster/up starts the local ones. Run it on the machine where
# `cluster/up` runs the coordinator. Running it again starts only the agents that are not running.
# HOSTFILE format: see cluster/examples/hostfile.example (HOST [k=v labels] [name=N] [user=U]).
#
# Prerequisites on each remote machine:
#   - ssh access without a password prompt (ssh keys / agent) from this machine
#   - Debian 12 (or close) with the runtime libraries: run cluster/bootstrap there, or
#       apt-get install libgrpc29 libprotobuf-c1 libopenmpi3 openmpi-bin libopenblas0-pthread libpq5 libcurl4
#   - the nebula-node binary: either already installed (default /usr/local/bin/nebula-node, see
#     --binary) or copied by this script with --copy-binary .build/release/nebula-node. A binary
#     built with `swift build -c release --static-swift-stdlib` needs no Swift on the remote;
#     otherwise the Swift runtime libraries must be installed there too.
#   - network: the remote must reach the coordinator's gRPC port (HOST:PORT given here must be an
#     address of this machine that the remotes can reach, not 127.0.0.1)
# The join token is copied to each host (REMOTE_DIR/join.token, mode 600) through ssh's stdin.
#
# Options:
#   --coordinator HOST:PORT  the coordinator as the remote hosts reach it (required to start)
#   --token-file F           the join token (default: .nebula/secrets/join.token of this checkout)
#   --binary PATH            nebula-node on the remote hosts (default: /usr/local/bin/nebula-node)
#   --copy-binary F          copy local binary F to REMOTE_DIR/bin/nebula-node first and use that
#   --remote-dir DIR         remote folder for token, data, log and pid; relative paths are under the
#                            remote user's home (default: .nebula-node)
#   --tls-ca F               copy this CA certificate and pass --tls-ca to the agents
#   --ssh-option OPT         extra ssh option, repeatable (e.g. --ssh-option -p2222)
#   --stop                   stop the agents instead (SIGTERM = clean leave, SIGKILL after 10 s)
#   --dry-run                print what would run on each host, do nothing
#   -h, --help               this text
# Logs stay on each host: REMOTE_DIR/node.log (ssh HOST tail -f .nebula-node/node.log).
set -euo pipefail

prog=add-remote-nodes.sh
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
info() { printf '%s: %s\n' "$prog" "$*" >&2; }
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
coordinator="" token_file="$root/.nebula/secrets/join.token" binary=/usr/local/bin/nebula-node
copy_binary="" remote_dir=.nebula-node tls_ca="" stop=0 dry_run=0 hostfile="" ssh_opts=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --coordinator) coordinator=${2:?--coordinator needs HOST:PORT}; shift 2 ;;
    --token-file) token_file=${2:?--token-file needs a file}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --copy-binary) copy_binary=${2:?--copy-binary needs a file}; shift 2 ;;
    --remote-dir) remote_dir=${2:?--remote-dir needs a folder}; shift 2 ;;
    --tls-ca) tls_ca=${2:?--tls-ca needs a file}; shift 2 ;;
    --ssh-option) ssh_opts+=("${2:?--ssh-option needs an option}"); shift 2 ;;
    --stop) stop=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -*) die "unknown option: $1 (see --help)" ;;
    *) [[ -z "$hostfile" ]] || die "only one HOSTFILE, got '$hostfile' and '$1'"; hostfile=$1; shift ;;
  esac
done

[[ -n "$hostfile" ]] || die "missing HOSTFILE (see --help)"
[[ -r "$hostfile" ]] || die "cannot read $hostfile"
if ((!stop)); then
  [[ -n "$coordinator" ]] || die "--coordinator HOST:PORT is required (an address the remote hosts can reach)"
  [[ "$coordinator" == *:* ]] || die "--coordinator must be HOST:PORT, not '$coordinator'"
  case "${coordinator%:*}" in
    127.*|localhost|::1|"[::1]") die "--coordinator $coordinator is this machine's loopback: give an address the remote hosts can reach" ;;
  esac
  [[ -s "$token_file" ]] || die "join token $token_file not found (run cluster/up first, or pass --token-file)"
  [[ -z "$copy_binary" || -x "$copy_binary" ]] || die "--copy-binary: $copy_binary is not an executable file"
  [[ -z "$tls_ca" || -r "$tls_ca" ]] || die "--tls-ca: cannot read $tls_ca"
fi
[[ "$remote_dir" != *"'"* ]] || die "--remote-dir must not contain quotes"

# The script that runs on each host (bash -s): arguments are passed positionally, the token and CA
# come inside the script text on ssh's stdin, so they never show up in a process list.
# shellcheck disable=SC2016  # expanded on the remote host
remote_start='
set -euo pipefail
dir=$1 bin=$2 name=$3 coordinator=$4 labels=$5 copy=$6 have_ca=$7
mkdir -p "$dir/data" "$dir/bin"; chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
if [[ "$copy" == 1 ]]; then bin="$dir/bin/nebula-node"; fi
command -v "$bin" >/dev/null 2>&1 || { echo "nebula-node not found at $bin on $(hostname)" >&2; exit 3; }
umask 077
printf "%s\n" "$TOKEN" > "$dir/join.token"
args=(join --coordinator "$coordinator" --token-file "$dir/join.token" --name "$name" --data-dir "$dir/data")
if [[ -n "$labels" ]]; then args+=(--labels "$labels"); fi
if [[ "$have_ca" == 1 ]]; then printf "%s\n" "$CA" > "$dir/ca.crt"; args+=(--tls-ca "$dir/ca.crt"); fi
if [[ -s "$dir/node.pid" ]] && kill -0 "$(cat "$dir/node.pid")" 2>/dev/null \
   && grep -q nebula-node "/proc/$(cat "$dir/node.pid")/cmdline" 2>/dev/null; then
  echo "already running (pid $(cat "$dir/node.pid"))"; exit 0
fi
printf "\n=== %s: %s %s\n" "$(date "+%F %T")" "$bin" "${args[*]}" >> "$dir/node.log"
nohup setsid "$bin" "${args[@]}" >> "$dir/node.log" 2>&1 < /dev/null &
echo $! > "$dir/node.pid"
sleep 2
if ! kill -0 "$(cat "$dir/node.pid")" 2>/dev/null; then
  echo "nebula-node exited at once; last lines of $dir/node.log:" >&2; tail -n 15 "$dir/node.log" >&2; exit 4
fi
echo "started (pid $(cat "$dir/node.pid")), log $dir/node.log"
'

# shellcheck disable=SC2016  # expanded on the remote host
remote_stop='
set -euo pipefail
dir=$1
pidf="$dir/node.pid"
if ! [[ -s "$pidf" ]] || ! kill -0 "$(cat "$pidf")" 2>/dev/null; then echo "not running"; rm -f "$pidf"; exit 0; fi
pid=$(cat "$pidf"); kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || { rm -f "$pidf"; echo "stopped"; exit 0; }; sleep 0.2; done
kill -KILL "$pid" 2>/dev/null || true; rm -f "$pidf"; echo "killed (did not stop within 10 s)"
'

token=""
[[ $stop -eq 1 ]] || token=$(tr -d '[:space:]' < "$token_file")
ca=""
[[ -z "$tls_ca" ]] || ca=$(cat "$tls_ca")

failed=() count=0
while IFS= read -r line || [[ -n "$line" ]]; do
  line=${line%%#*}
  read -r -a fields <<< "$line"
  [[ ${#fields[@]} -gt 0 ]] || continue
  host=${fields[0]} name=${fields[0]} user="" labels=()
  for kv in "${fields[@]:1}"; do
    [[ "$kv" == *=* ]] || die "$hostfile: '$kv' (host $host) is not KEY=VALUE"
    case "$kv" in
      name=*) name=${kv#name=} ;;
      user=*) user=${kv#user=} ;;
      *) labels+=("$kv") ;;
    esac
  done
  dest=$host
  [[ -z "$user" ]] || dest="$user@$host"
  label_arg=$(IFS=,; printf '%s' "${labels[*]+"${labels[*]}"}")
  count=$((count + 1))

  if ((stop)); then
    cmd=(ssh "${ssh_opts[@]+"${ssh_opts[@]}"}" -o BatchMode=yes "$dest" "bash -s -- $(printf '%q' "$remote_dir")")
    if ((dry_run)); then echo "[$name] ${cmd[*]}  (stop)"; continue; fi
    info "[$name] stopping on $dest"
    if ! "${cmd[@]}" <<< "$remote_stop"; then failed+=("$name"); fi
    continue
  fi

  copy=0
  if [[ -n "$copy_binary" ]]; then
    copy=1
    scp_cmd=(scp "${ssh_opts[@]+"${ssh_opts[@]}"}" -o BatchMode=yes -q "$copy_binary" "$dest:$remote_dir/bin/nebula-node.new")
    prep_cmd=(ssh "${ssh_opts[@]+"${ssh_opts[@]}"}" -o BatchMode=yes "$dest" "mkdir -p '$remote_dir/bin'")
    move_cmd=(ssh "${ssh_opts[@]+"${ssh_opts[@]}"}" -o BatchMode=yes "$dest"
              "chmod 755 '$remote_dir/bin/nebula-node.new' && mv -f '$remote_dir/bin/nebula-node.new' '$remote_dir/bin/nebula-node'")
  fi
  have_ca=0
  [[ -z "$ca" ]] || have_ca=1
  args=("$remote_dir" "$binary" "$name" "$coordinator" "$label_arg" "$copy" "$have_ca")
  remote_cmd="bash -s --"
  for a in "${args[@]}"; do remote_cmd+=" $(printf '%q' "$a")"; done
  cmd=(ssh "${ssh_opts[@]+"${ssh_opts[@]}"}" -o BatchMode=yes "$dest" "$remote_cmd")
  script="TOKEN=$(printf '%q' "$token")
CA=$(printf '%q' "$ca")
$remote_start"

  if ((dry_run)); then
    if ((copy)); then echo "[$name] ${prep_cmd[*]}; ${scp_cmd[*]}; ${move_cmd[*]}"; fi
    echo "[$name] ${cmd[*]}   (name=$name labels=${label_arg:-none})"
    continue
  fi
  info "[$name] starting on $dest${label_arg:+ (labels $label_arg)}"
  if ((copy)); then
    if ! { "${prep_cmd[@]}" && "${scp_cmd[@]}" && "${move_cmd[@]}"; } < /dev/null; then
      info "[$name] copying $copy_binary failed"; failed+=("$name"); continue
    fi
  fi
  if ! "${cmd[@]}" <<< "$script" | sed "s/^/[$name] /"; then failed+=("$name"); fi
done < "$hostfile"

((count > 0)) || die "$hostfile lists no hosts"
if ((${#failed[@]} > 0)); then
  die "failed on: ${failed[*]}"
fi
if ((!stop && !dry_run)); then
  info "done: $count host(s); check with: .build/release/nebula nodes"
fi
