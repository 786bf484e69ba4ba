#!/usr/bin/env bash
# The whole test suite: set up if needed, then pytest.  Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/runs/bootstrap.sh"
cd "$ROOT"
# bytecode of ocnet and the tests is kept: the suite starts a few hundred processes
unset PYTHONDONTWRITEBYTECODE
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec .venv/bin/python -m pytest -q --durations=15 "$@"
