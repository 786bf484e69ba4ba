"""MGRIT against the layer-serial sweep: one level bitwise, several levels to 1e-10 (run under mpiexec)."""
import pytest

from tests.conftest import mpiexec_prefix

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "mgrit_check.py")


@pytest.mark.parametrize("nprocs", [1, 2, 3, 4])
@pytest.mark.parametrize("N,levels,cf", [(33, 1, 4), (37, 3, 3), (64, 4, 2), (50, 2, 4)])
def test_mgrit_matches_serial(nprocs, N, levels, cf):
    if nprocs > N:
        pytest.skip("more ranks than layers")
    cmd = mpiexec_prefix(nprocs) + [sys.executable, SCRIPT, str(N), str(levels), str(cf)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("variant", ["problem=heat", "cycle=F", "relax=F", "relax=FCFCF fine_relax=F", "cweight=1.3", "skip_down=1",
                                     "coarse=mean", "coarse=mean problem=heat"])
def test_mgrit_variants_match_serial(variant):
    cmd = mpiexec_prefix(3) + [sys.executable, SCRIPT, "45", "3", "3", *variant.split()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("ksp", ["richardson", "gmres"])
def test_adjoint_ksp_types(ksp):
    """The adjoint KSP (MGRIT-preconditioned) reaches the serial adjoint with either Krylov type."""
    cmd = mpiexec_prefix(3) + [sys.executable, SCRIPT, "64", "3", "4"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                                PETSC_OPTIONS=f"-adjoint_ksp_type {ksp}"))
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("variant", ["block=double", "problem=kerneltoy"])
@pytest.mark.parametrize("nprocs,N,levels,cf", [(2, 21, 1, 3), (1, 37, 3, 3), (3, 37, 3, 3)])
def test_generated_forms_match_serial(nprocs, variant, N, levels, cf):
    """Forms generated from two kernels (ocnet.plugin.kernels): the ResNet's -block double and
    the two-kernel test plugin; one level bitwise the layer-serial solve, three to 1e-10."""
    cmd = mpiexec_prefix(nprocs) + [sys.executable, SCRIPT, str(N), str(levels), str(cf), variant]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr
