# shellcheck shell=bash
# Shared by the bench/*.sh scripts (sourced, not run). Expects `root` (the repository) to be set.

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
