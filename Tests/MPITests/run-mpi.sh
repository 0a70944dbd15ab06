#!/usr/bin/env bash
# Usage: Tests/MPITests/run-mpi.sh [--np 2] [--scratch-path .build] [--no-build] [--timeout 600] [-- TEST-ARGS...]
#
# Runs the MPI test suites (target MPITests) under `mpirun -np N`: every rank runs the same swift-testing
# binary with the same filter, the collective tests meet in the same order (they sit in one serialized
# suite; Tests/MPITests/TestWorld.swift), and each rank checks its own results. mpirun exits non-zero
# when any rank fails. The same tests also pass in a plain `swift test` (a singleton world of size 1).
#
#   1. builds the tests (`swift build --build-tests`) unless --no-build;
#   2. runs <bin>/NebulaPackageTests.xctest --testing-library swift-testing --filter MPITests [TEST-ARGS]
#      under mpirun (allowed as root, oversubscribed, shared-memory transport, output tagged by rank);
#   3. kills the job after --timeout seconds: a rank stuck in a collective blocks the others forever
#      (MPI has no timeout), so the watchdog is outside MPI.
set -euo pipefail

np=2
scratch=.build
build=1
limit=600
while [[ $# -gt 0 ]]; do
  case "$1" in
    --np) np=$2; shift 2 ;;
    --scratch-path) scratch=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --timeout) limit=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-mpi: unknown argument: $1 (see --help)" >&2; exit 1 ;;
  esac
done

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
cd "$root"
if [[ $build == 1 ]]; then
  swift build --build-tests --scratch-path "$scratch"
fi
bundle="$(swift build --scratch-path "$scratch" --show-bin-path)/NebulaPackageTests.xctest"
[[ -x "$bundle" ]] || { echo "run-mpi: no test binary at $bundle (build with --build-tests)" >&2; exit 1; }

# Root is allowed (CI containers); one BLAS thread per rank (mpirun pins each rank to a core).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
echo "run-mpi: mpirun -np $np $bundle --testing-library swift-testing --filter MPITests $*" >&2
timeout --kill-after=10 "$limit" \
  mpirun -np "$np" --oversubscribe --mca btl self,vader --tag-output \
  "$bundle" --testing-library swift-testing --filter MPITests "$@"
