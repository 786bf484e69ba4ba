"""A one-shot MGRIT solve (fixed cycle count, no tolerance) skips the residual of the guess; its
iterates must be bitwise those of the tolerance-driven loop run for the same number of cycles."""
import numpy as np
from petsc4py import PETSc

from ocnet.run.cli import framework_options
from ocnet.base.grid import LayerGrid
from ocnet.mgrit.solver import MGRIT, MGRITSettings
from ocnet.optim.objective import ReducedObjective
from ocnet_problems.peaks import Peaks

COMM = PETSc.COMM_WORLD.tompi4py()


def solve(rtol, cycles):
    opts = framework_options()
    Peaks.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v.update(width=4, ntrain=80, nval=0, init_layer=2.0)
    obj = ReducedObjective(LayerGrid.from_comm(48, 1.0, COMM), Peaks(v, COMM), COMM)
    st = MGRITSettings(levels=3, cfactor=(4,), relax="FCF", max_it=cycles, rtol=rtol, atol=0.0)
    m = MGRIT(obj.grid, obj.problem, COMM, st, obj.state.state_size, obj.problem.cache_size(obj.data), obj.state)
    x = obj.design.initial(5)
    g, thetas = obj.design.split(obj.design.local(x))
    obj.problem.opening(g, obj.data, obj.state.U[0])
    its = m.solve(thetas)
    return its, obj.state.U.copy(), obj.state.Cfull.copy(), m.history[-1]


def test_fixed_cycles_match_the_tolerance_loop():
    its_f, U_f, C_f, r_f = solve(0.0, 2)  # the one-shot path
    its_t, U_t, C_t, r_t = solve(1e-300, 2)  # unreachable tolerance: the measured loop, 2 cycles
    assert its_f == its_t == 2
    assert np.array_equal(U_f, U_t) and np.array_equal(C_f, C_t)  # states and adjoint caches
    assert r_f == r_t > 0


def gradient(fuse, relax, cycles, N=48, P=None, ahead=True):
    opts = framework_options()
    Peaks.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v.update(width=4, ntrain=80, nval=0, init_layer=2.0)
    st = lambda its: MGRITSettings(levels=3, cfactor=(4,), relax=relax, max_it=its, rtol=0.0, atol=0.0)
    obj = ReducedObjective(LayerGrid.from_comm(N, 1.0, COMM), Peaks(v, COMM), COMM, state_mgrit=st(2),
                           adjoint_mgrit=st(cycles))
    obj.adj_mgrit.fuse = fuse
    obj.mgrit._ahead &= ahead
    obj.adj_mgrit._ahead &= ahead
    x = obj.design.initial(5)
    g = x.duplicate()
    J = [obj.evaluate(x, g) for _ in range(2)][-1]  # the second from a warm start
    return J, g.getArray().copy(), obj.adj_mgrit.unformed()


def test_gradient_formed_in_the_last_relaxation_is_bitwise():
    """One-shot adjoint MGRIT forms the parameter gradient of the layers its last F-relaxation
    sweeps inside that sweep: the gradient is bitwise the separate pass's."""
    for relax, cycles in (("F", 1), ("FCF", 2)):
        J0, g0, rows0 = gradient(False, relax, cycles)
        # without the C-point look-ahead the C-layers (12 of 48 at cfactor 4) are left to the pass
        J1, g1, rows1 = gradient(True, relax, cycles, ahead=False)
        assert rows0 is None and rows1 is not None and 0 < len(rows1) < 48  # fused for the F-layers
        assert J0 == J1 and np.array_equal(g0, g1)
        # with it, the look-ahead steps form the C-layers' gradients too (but for a C-layer right
        # after a rank's halo: at most one per rank)
        J2, g2, rows2 = gradient(True, relax, cycles)
        assert rows2 is not None and len(rows2) <= 1
        assert J0 == J2 and np.array_equal(g0, g2)
