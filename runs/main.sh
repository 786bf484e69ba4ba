#!/usr/bin/env bash
# The main job: set up if needed, then train Peaks on 2 MPI ranks into runs/out/peaks.
# Extra arguments are passed to ocnet (PETSc options), e.g. -tao_monitor.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/runs/bootstrap.sh"
cd "$ROOT"
MPI=(mpiexec)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
"${MPI[@]}" -q -n 1 true >/dev/null 2>&1 && MPI+=(-q)   # quiet where this Open MPI supports it
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "${MPI[@]}" --oversubscribe -n 2 .venv/bin/ocnet -options_file runs/peaks.opts -run_dir runs/out/peaks -run_dir_overwrite "$@"
