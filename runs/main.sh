#!/usr/bin/env bash
# The main job: set up if needed, then train Peaks on 2 MPI ranks into runs/out/peaks.
# Extra arguments are passed to ocnet (PETSc options), e.g. -tao_monitor.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/runs/bootstrap.sh"
cd "$ROOT"
MPI=(mpiexec -q -n 2)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
exec "${MPI[@]}" --oversubscribe .venv/bin/ocnet -options_file runs/peaks.opts -run_dir runs/out/peaks "$@"
