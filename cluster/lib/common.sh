# shellcheck shell=bash
# Shared helpers for the scripts in cluster/ and .ci/. Source it, don't run it:
#   source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib/common.sh"
#
# Conventions: messages go to stderr (so `url=$(pg_start ...)` captures only the result),
# every function returns non-zero on failure and `die` exits the calling script.
#
# Environment knobs understood here:
#   NEBULA_PG_BINDIR   PostgreSQL server binaries (default /usr/lib/postgresql/15/bin, else the newest
#                      /usr/lib/postgresql/*/bin)
#   NEBULA_VERBOSE=1   echo the commands run by the helpers

if [[ -n "${_NEBULA_COMMON_SH:-}" ]]; then return 0; fi
_NEBULA_COMMON_SH=1
# command substitutions ($(pg_start ...)) stop at the first failure too
shopt -s inherit_errexit

NEBULA_SCRIPT_NAME=${NEBULA_SCRIPT_NAME:-$(basename "$0")}

# The packages the build, the tests and a running cluster need (Debian 12 names).
NEBULA_APT_PACKAGES=(
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
  libopenmpi-dev openmpi-bin libopenblas-dev
  libpq-dev postgresql libcurl4-openssl-dev zlib1g-dev
  pkg-config openssl python3
)

# ---------------------------------------------------------------------------------------------
# messages

info() { printf '%s: %s\n' "$NEBULA_SCRIPT_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$NEBULA_SCRIPT_NAME" "$*" >&2; }
die()  { printf '%s: error: %s\n' "$NEBULA_SCRIPT_NAME" "$*" >&2; exit 1; }
debug() { if [[ "${NEBULA_VERBOSE:-0}" == 1 ]]; then printf '%s: + %s\n' "$NEBULA_SCRIPT_NAME" "$*" >&2; fi; }

# Prints the leading comment block of a script (lines after the shebang that start with '#'),
# without the '# ' prefix: every script keeps its --help text there.
print_usage() {
  local file=${1:-$0}
  awk 'NR == 1 && /^#!/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$file"
}

# ---------------------------------------------------------------------------------------------
# locations

# The repository root: the folder above cluster/, checked by the presence of Package.swift.
nebula_root() {
  local here root
  here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
  root=$(cd "$here/../.." && pwd)
  [[ -f "$root/Package.swift" ]] || die "cannot find the repository root (no Package.swift in $root)"
  printf '%s\n' "$root"
}

NEBULA_ROOT=$(nebula_root)
# shellcheck disable=SC2034  # used by the scripts that source this file
NEBULA_CLUSTER_DIR="$NEBULA_ROOT/cluster"

# ---------------------------------------------------------------------------------------------
# privileges

is_root() { [[ $EUID -eq 0 ]]; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    debug "sudo $*"
    sudo "$@"
  else
    die "need root for: $*  (run as root, or install sudo)"
  fi
}

# ---------------------------------------------------------------------------------------------
# packages

# True when a Debian package is installed.
pkg_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# shellcheck disable=SC2120  # the arguments are optional
# need_packages [PKG...]: installs with apt-get whichever of the packages (default: the
# NEBULA_APT_PACKAGES list) is not installed yet; runs `apt-get update` at most once per process.
need_packages() {
  local pkgs=("$@") missing=() p
  if [[ ${#pkgs[@]} -eq 0 ]]; then pkgs=("${NEBULA_APT_PACKAGES[@]}"); fi
  command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: these scripts expect Debian 12 (or a derivative). Install by hand: ${pkgs[*]}"
  for p in "${pkgs[@]}"; do pkg_installed "$p" || missing+=("$p"); done
  if [[ ${#missing[@]} -eq 0 ]]; then
    debug "all packages present: ${pkgs[*]}"
    return 0
  fi
  info "installing missing packages: ${missing[*]}"
  if [[ -z "${_NEBULA_APT_UPDATED:-}" ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 \
      || die "apt-get update failed"
    _NEBULA_APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 \
    || die "apt-get install failed for: ${missing[*]}"
  for p in "${missing[@]}"; do pkg_installed "$p" || die "package $p is still not installed"; done
  info "installed: ${missing[*]}"
}

# ---------------------------------------------------------------------------------------------
# files, tokens, ports, waiting

# write_secret FILE CONTENT: writes CONTENT (plus a newline) to FILE with mode 600, atomically.
write_secret() {
  local file=$1 content=$2 tmp
  mkdir -p "$(dirname "$file")"
  tmp=$(umask 077 && mktemp "$file.XXXXXX")
  printf '%s\n' "$content" > "$tmp"
  chmod 600 "$tmp"
  mv -f "$tmp" "$file"
}

# random_token: 48 hex characters from openssl.
random_token() {
  command -v openssl >/dev/null 2>&1 || die "openssl not found (apt-get install openssl)"
  openssl rand -hex 24
}

# ensure_token FILE: creates FILE (mode 600) with a new random token unless it already holds one.
# Prints nothing; the token is read with read_token.
ensure_token() {
  local file=$1
  if [[ -s "$file" ]]; then
    chmod 600 "$file"
    return 0
  fi
  write_secret "$file" "$(random_token)"
  info "generated $(basename "$file" .token) token in ${file#"$NEBULA_ROOT"/}"
}

read_token() { tr -d '[:space:]' < "$1"; }

# port_open PORT [HOST]: true when something accepts TCP connections on HOST:PORT (default 127.0.0.1).
port_open() {
  local port=$1 host=${2:-127.0.0.1}
  (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# port_free PORT: true when PORT can be bound on all interfaces (nothing listens on it). Binds with
# SO_REUSEADDR like servers do, so connections in TIME_WAIT don't count.
port_free() {
  python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("0.0.0.0", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

# free_port: prints a TCP port that is free right now (chosen by the kernel).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' \
    || die "cannot find a free port (python3 missing?)"
}

# wait_for SECONDS MESSAGE CMD [ARG...]: runs CMD every 0.2 s until it succeeds; after SECONDS
# prints "timed out after SECONDS s: MESSAGE" and returns 1.
wait_for() {
  local timeout=$1 message=$2; shift 2
  local deadline=$((SECONDS + timeout))
  while true; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ((SECONDS >= deadline)); then
      printf '%s: error: timed out after %s s: %s\n' "$NEBULA_SCRIPT_NAME" "$timeout" "$message" >&2
      return 1
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------------
# background processes with pid files

# pid_alive PIDFILE [PATTERN]: true when PIDFILE names a live process (whose command line contains
# PATTERN, when given: guards against a recycled pid).
pid_alive() {
  local pidfile=$1 pattern=${2:-} pid
  [[ -s "$pidfile" ]] || return 1
  pid=$(tr -dc '0-9' < "$pidfile")
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || [[ -d "/proc/$pid" ]] || return 1
  # a zombie (exited, not yet reaped by its parent) counts as gone
  if is_zombie "$pid"; then return 1; fi
  if [[ -n "$pattern" && -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
  fi
  return 0
}

pid_of() { tr -dc '0-9' < "$1"; }

# close_extra_fds: closes every file descriptor above 2 of the current (sub)shell. Call it in a
# subshell right before starting a daemon: a descriptor inherited from whoever ran this script
# would otherwise stay open for the daemon's lifetime. (Foundation's Process, for one, watches a
# socket it hands to the child and reports the child finished only once every holder has closed
# it: a caller that runs `cluster/lib/pgctl start` would wait forever.)
close_extra_fds() {
  local fd n
  for fd in /proc/"$BASHPID"/fd/*; do
    n=${fd##*/}
    if [[ "$n" =~ ^[0-9]+$ ]] && ((n > 2)); then eval "exec $n>&-" 2>/dev/null || true; fi
  done
}

# start_bg PIDFILE LOGFILE CMD [ARG...]: starts CMD detached (nohup, own session, stdin from
# /dev/null, output appended to LOGFILE) and writes its pid to PIDFILE.
start_bg() {
  local pidfile=$1 logfile=$2; shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  printf '\n=== %s: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >> "$logfile"
  debug "$* >> $logfile"
  # setsid keeps a Ctrl-C in this terminal from reaching the service; in a non-interactive shell
  # the background child is no process-group leader, so setsid execs in place and $! is its pid.
  (close_extra_fds; exec nohup setsid "$@" >> "$logfile" 2>&1 < /dev/null) &
  printf '%s\n' "$!" > "$pidfile"
}

# stop_pids TIMEOUT PATTERN NAME:PIDFILE...: sends SIGTERM to every live process (whose command
# line contains PATTERN), waits up to TIMEOUT seconds for all of them, then SIGKILLs the rest.
# Removes the pid files.
stop_pids() {
  local timeout=$1 pattern=$2; shift 2
  local entry name pidfile pid pending=() still deadline
  for entry in "$@"; do
    name=${entry%%:*} pidfile=${entry#*:}
    if pid_alive "$pidfile" "$pattern"; then
      pid=$(pid_of "$pidfile")
      info "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pending+=("$entry")
    else
      if [[ -e "$pidfile" ]]; then debug "$name is not running (stale $pidfile)"; fi
      rm -f "$pidfile"
    fi
  done
  deadline=$((SECONDS + timeout))
  while [[ ${#pending[@]} -gt 0 ]]; do
    still=()
    for entry in "${pending[@]}"; do
      pidfile=${entry#*:}
      if pid_alive "$pidfile" "$pattern"; then still+=("$entry"); else rm -f "$pidfile"; fi
    done
    pending=("${still[@]+"${still[@]}"}")
    if [[ ${#pending[@]} -eq 0 ]]; then break; fi
    if ((SECONDS >= deadline)); then
      for entry in "${pending[@]}"; do
        name=${entry%%:*} pidfile=${entry#*:}
        pid=$(pid_of "$pidfile")
        warn "$name (pid $pid) did not stop within ${timeout} s: sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$pidfile"
      done
      break
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------------------------
# private PostgreSQL cluster
#
# Layout of DIR: data/ (the cluster), server.log, nebula-pg.env (PORT and FSYNC used last, so a
# restart without arguments comes back the same), and the unix socket .s.PGSQL.PORT.
# As root every server command runs as the `postgres` user (initdb refuses root); as a normal
# user they run as that user. The superuser is always `postgres`, trust auth, 127.0.0.1 only.

# pg_bindir: prints the folder with initdb/pg_ctl/psql.
pg_bindir() {
  local d best=
  if [[ -n "${NEBULA_PG_BINDIR:-}" ]]; then
    [[ -x "$NEBULA_PG_BINDIR/pg_ctl" ]] || die "NEBULA_PG_BINDIR=$NEBULA_PG_BINDIR has no pg_ctl"
    printf '%s\n' "$NEBULA_PG_BINDIR"; return 0
  fi
  if [[ -x /usr/lib/postgresql/15/bin/pg_ctl ]]; then
    printf '%s\n' /usr/lib/postgresql/15/bin; return 0
  fi
  for d in /usr/lib/postgresql/*/bin; do
    if [[ -x "$d/pg_ctl" ]]; then best=$(printf '%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n 1); fi
  done
  [[ -n "$best" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql, or set NEBULA_PG_BINDIR)"
  printf '%s\n' "$best"
}

pg_url() { printf 'postgresql://postgres@127.0.0.1:%s/nebula\n' "$1"; }

# The user that owns (or will own) the cluster in DIR.
_pg_owner() {
  local dir=$1
  if [[ -d "$dir/data" ]]; then stat -c %U "$dir/data"
  elif is_root; then echo postgres
  else id -un
  fi
}

# _pg_as DIR CMD...: runs CMD as the owner of the cluster in DIR.
_pg_as() {
  local dir=$1 owner; shift
  owner=$(_pg_owner "$dir")
  if [[ "$owner" == "$(id -un)" ]]; then
    debug "$*"; "$@"
  elif is_root; then
    # from / : the other user may not be allowed into the current folder (paths here are absolute)
    debug "runuser -u $owner -- $*"; (cd / && runuser -u "$owner" -- "$@")
  elif command -v sudo >/dev/null 2>&1; then
    debug "sudo -u $owner $*"; (cd / && sudo -u "$owner" -- "$@")
  else
    die "$dir/data belongs to $owner: run this as root (or install sudo)"
  fi
}

# pg_dir_usable_by_postgres DIR: as root, true when the postgres user can reach DIR (every parent
# folder searchable). Always true for a normal user.
pg_dir_usable_by_postgres() {
  is_root || return 0
  local dir probe
  dir=$(realpath -m "$1")
  probe=$dir
  while [[ ! -e "$probe" ]]; do probe=$(dirname "$probe"); done
  [[ -d "$probe" ]] || return 1
  if [[ "$probe" != "$dir" ]]; then
    runuser -u postgres -- test -x "$probe" 2>/dev/null
  else
    runuser -u postgres -- test -x "$(dirname "$dir")" 2>/dev/null
  fi
}

# _pg_prepare DIR: makes DIR (and gives it to postgres when root).
_pg_prepare() {
  local dir=$1
  mkdir -p "$dir"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "user postgres does not exist (apt-get install postgresql)"
    pg_dir_usable_by_postgres "$dir" \
      || die "the postgres user cannot reach $dir (a parent folder is not searchable, e.g. /root is mode 700): choose a folder elsewhere"
    if [[ ! -d "$dir/data" ]]; then
      chown postgres:postgres "$dir"
    elif [[ "$(stat -c %U "$dir/data")" == root ]]; then
      warn "$dir/data belongs to root: giving it to postgres"
      chown -R postgres:postgres "$dir"
    fi
    chmod 700 "$dir"
  fi
}

# _pg_meta_get DIR KEY: a value saved by pg_start in DIR/nebula-pg.env (empty if none).
_pg_meta_get() {
  local file="$1/nebula-pg.env"
  [[ -r "$file" ]] || return 0
  sed -n "s/^$2=//p" "$file" | tail -n 1
}

# is_zombie PID: true when PID has exited but was not reaped (a parent, or an init that does not
# reap orphans, keeps it): kill -0 still succeeds on it.
is_zombie() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ "${st:0:1}" == Z ]]
}

# _pg_clear_zombie_lock DIR: a postmaster killed outright can stay a zombie (where init does not
# reap orphans); its postmaster.pid and socket lock file then look live to pg_ctl and to the next
# postmaster. Remove those lock files.
_pg_clear_zombie_lock() {
  local dir=$1 lock pid
  for lock in "$dir/data/postmaster.pid" "$dir"/.s.PGSQL.*.lock; do
    [[ -r "$lock" ]] || continue
    pid=$(head -n 1 "$lock" | tr -dc '0-9')
    if [[ -n "$pid" ]] && is_zombie "$pid"; then
      warn "PostgreSQL in $dir was killed (pid $pid is gone): removing its stale $(basename "$lock")"
      _pg_as "$dir" rm -f "$lock"
    fi
  done
}

# pg_running DIR: true when the cluster in DIR is running.
pg_running() {
  local dir bin
  dir=$(realpath -m "$1")
  [[ -f "$dir/data/PG_VERSION" ]] || return 1
  _pg_clear_zombie_lock "$dir"
  bin=$(pg_bindir)
  _pg_as "$dir" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

# pg_port DIR: the port the running cluster in DIR listens on (from postmaster.pid; empty if none).
pg_port() {
  local dir
  dir=$(realpath -m "$1")
  if [[ -r "$dir/data/postmaster.pid" ]]; then sed -n 4p "$dir/data/postmaster.pid"; fi
}

# pg_start DIR [PORT] [FSYNC]: starts (creating it if needed) a private cluster in DIR listening on
# 127.0.0.1:PORT; FSYNC is on (default, safe) or off (tests only: fsync, synchronous_commit and
# full_page_writes off). PORT and FSYNC default to the values of the previous start, then 55432/on.
# Waits until it accepts connections, creates database `nebula` if missing, prints its URL.
# Already running: prints the URL of the running cluster (and warns when the port differs).
pg_start() {
  local dir port fsync bin sock opts=()
  [[ $# -ge 1 ]] || die "usage: pg_start DIR [PORT] [on|off]"
  dir=$(realpath -m "$1")
  port=${2:-$(_pg_meta_get "$dir" PORT)}; port=${port:-55432}
  fsync=${3:-$(_pg_meta_get "$dir" FSYNC)}; fsync=${fsync:-on}
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "bad port: $port"; fi
  [[ "$fsync" == on || "$fsync" == off ]] || die "fsync must be on or off, not $fsync"
  [[ "$dir" != *"'"* && "$dir" != *'"'* && "$dir" != *' '* ]] || die "the PostgreSQL folder must not contain quotes or spaces: $dir"
  bin=$(pg_bindir)
  _pg_prepare "$dir"

  if pg_running "$dir"; then
    local actual
    actual=$(pg_port "$dir")
    if [[ -n "$actual" && "$actual" != "$port" ]]; then
      warn "PostgreSQL in $dir is already running on port $actual (not $port): using it"
      port=$actual
    else
      info "PostgreSQL in $dir is already running on port $port"
    fi
  else
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      info "creating a PostgreSQL cluster in $dir/data"
      local initargs=(-U postgres -A trust -E UTF8 --locale=C.UTF-8)
      [[ "$fsync" == off ]] && initargs+=(--no-sync)
      # initdb into a scratch folder and rename: an interrupted initdb leaves nothing half-made.
      _pg_as "$dir" rm -rf "$dir/data.init"
      _pg_as "$dir" "$bin/initdb" -D "$dir/data.init" "${initargs[@]}" > "$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed (log above, also in $dir/initdb.log)"; }
      _pg_as "$dir" rm -rf "$dir/data"
      _pg_as "$dir" mv "$dir/data.init" "$dir/data"
    fi
    if ! port_free "$port" || port_open "$port"; then
      die "port $port is already in use by another program: pick another port (NEBULA_PG_PORT) or stop it"
    fi
    # unix sockets have a 107-byte path limit: put the socket in DIR when it fits, else TCP only
    sock="$dir/.s.PGSQL.$port"
    if ((${#sock} > 100)); then
      warn "$dir is too long for a unix socket path: TCP only"
      opts+=(-k "''")
    else
      opts+=(-k "'$dir'")
    fi
    opts+=(-p "$port" -c listen_addresses=127.0.0.1)
    [[ "$fsync" == off ]] && opts+=(-c fsync=off -c synchronous_commit=off -c full_page_writes=off)
    info "starting PostgreSQL ($(basename "$(dirname "$bin")")) in $dir on 127.0.0.1:$port (fsync=$fsync)"
    # the server must not keep any descriptor of our caller open (see close_extra_fds)
    if ! (close_extra_fds; _pg_as "$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "${opts[*]}" start) >/dev/null < /dev/null; then
      tail -n 20 "$dir/server.log" >&2 2>/dev/null || true
      die "PostgreSQL did not start (see $dir/server.log)"
    fi
  fi
  _pg_as "$dir" sh -c "umask 077; printf 'PORT=%s\nFSYNC=%s\n' '$port' '$fsync' > '$dir/nebula-pg.env'"

  wait_for 30 "PostgreSQL on 127.0.0.1:$port does not accept connections (see $dir/server.log)" \
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres || return 1
  if [[ "$("$bin/psql" -X -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
          "SELECT 1 FROM pg_database WHERE datname = 'nebula'")" != 1 ]]; then
    "$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'CREATE DATABASE nebula' >/dev/null \
      || die "cannot create database nebula on port $port"
    info "created database nebula"
  fi
  pg_url "$port"
}

# pg_stop DIR [MODE]: stops the cluster in DIR (MODE: fast (default), smart or immediate);
# does nothing when it is not running.
pg_stop() {
  local dir mode=${2:-fast} bin
  [[ $# -ge 1 ]] || die "usage: pg_stop DIR [fast|smart|immediate]"
  dir=$(realpath -m "$1")
  if ! pg_running "$dir"; then
    debug "PostgreSQL in $dir is not running"
    return 0
  fi
  bin=$(pg_bindir)
  info "stopping PostgreSQL in $dir ($mode)"
  if ! _pg_as "$dir" "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t 30 stop >/dev/null; then
    warn "PostgreSQL did not stop ($mode): stopping it immediately"
    _pg_as "$dir" "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null \
      || die "cannot stop PostgreSQL in $dir"
  fi
}
