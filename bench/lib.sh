# shellcheck shell=bash
# Shared by the bench/*.sh scripts, sourced right after `set -euo pipefail`: sets `root` (the
# repository) and `bench_name` (the script's name without .sh) and gives `info MESSAGE`, `bench_help`
# (prints the script's header comment) and `bench_bad_argument ARG`.

bench_script=$(readlink -f "${BASH_SOURCE[1]}")
bench_name=$(basename "$bench_script" .sh)
root=$(cd "$(dirname "$bench_script")/.." && pwd)

info() { printf '%s: %s\n' "$bench_name" "$*" >&2; }

bench_help() {
  sed -n '2,/^set -euo/p' "$bench_script" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 0
}

bench_bad_argument() {
  echo "$bench_name: unknown argument: $1 (see --help)" >&2
  exit 1
}

# bench_baselines NAME FILE...: sets `baselines` to $NEBULA_BASELINES_DIR, else ../shared/baselines
# beside the repository, and stops with a message naming the missing reference script.
bench_baselines() {
  local name=$1 f
  shift
  baselines=${NEBULA_BASELINES_DIR:-$root/../shared/baselines}
  for f in "$@"; do
    [[ -f "$baselines/$f" ]] || { echo "$name: no $f in $baselines (set NEBULA_BASELINES_DIR)" >&2; exit 1; }
  done
}

# bench_venv DIR IMPORTS PIP_ARGS...: a Python environment in DIR whose python can `import IMPORTS`;
# created (pip from PyPI with PIP_ARGS) only when it cannot. Returns pip's status.
bench_venv() {
  local dir=$1 imports=$2
  shift 2
  if [[ -x "$dir/bin/python" ]] && "$dir/bin/python" -c "import $imports" 2>/dev/null; then return 0; fi
  printf 'bench: creating %s (pip install %s)\n' "$dir" "$*" >&2
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q "$@"
}
