"""Two-level MGRIT on the scalar linear problem against the exact theory (Dobrev, Kolev,
Petersson, Schroder, SISC 2017): on C-points one iteration maps the error by the strictly lower
triangular Toeplitz matrix with entries (phi^m - psi) psi^(i-j-1) (F-relaxation) and
(phi^m - psi) phi^m psi^(i-j-2) (FCF), phi, psi the fine and coarse propagators."""
import numpy as np
import pytest
from petsc4py import PETSc

from ocnet.run.cli import framework_options
from ocnet.base.grid import LayerGrid
from ocnet.mgrit.solver import MGRIT, MGRITSettings
from ocnet.optim.objective import ReducedObjective
from ocnet_problems.dahlquist import Dahlquist

COMM = PETSc.COMM_WORLD.tompi4py()


def propagator(N, m, lam, relax):
    opts = framework_options()
    Dahlquist.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v["lambda"] = lam
    obj = ReducedObjective(LayerGrid.from_comm(N, 1.0, COMM), Dahlquist(v, COMM), COMM)
    st = MGRITSettings(levels=2, cfactor=(m,), min_coarse=1, relax=relax)
    mg = MGRIT(obj.grid, obj.problem, COMM, st, 1, 0, obj.state)
    mg.set_parameters(np.zeros((N, 1)))  # homogeneous: the exact solution is 0, iterates are errors
    nc = N // m
    E = np.zeros((nc, nc))
    U = obj.state.U
    for j in range(nc):
        U[:] = 0.0
        U[(j + 1) * m] = 1.0
        mg.invalidate()  # U was set from outside a solve
        mg.cycle()
        E[:, j] = U[m::m, 0]
    return E


@pytest.mark.parametrize("relax", ["F", "FCF"])
@pytest.mark.parametrize("lam,m", [(-1.0, 4), (-20.0, 2), (-200.0, 8)])
def test_two_level_error_propagator_is_exact(lam, m, relax):
    N = 64
    h = 1.0 / N
    phi, psi = 1 / (1 - h * lam), 1 / (1 - m * h * lam)
    E = propagator(N, m, lam, relax)
    nc = E.shape[0]
    i, j = np.indices((nc, nc))
    d = i - j
    if relax == "F":
        exact = np.where(d >= 1, (phi**m - psi) * psi ** np.maximum(d - 1, 0), 0.0)
    else:
        exact = np.where(d >= 2, (phi**m - psi) * phi**m * psi ** np.maximum(d - 2, 0), 0.0)
    np.testing.assert_allclose(E, exact, rtol=1e-10, atol=1e-14)
    # measured convergence factor (2-norm) within the theory's bound
    k = 1 if relax == "F" else 2
    bound = abs(phi**m - psi) * abs(phi**m) ** (k - 1) * (1 - abs(psi) ** (nc - k + 1)) / (1 - abs(psi))
    assert np.linalg.norm(E, 2) <= bound * (1 + 1e-12)
