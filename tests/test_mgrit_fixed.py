"""A one-shot MGRIT solve (fixed cycle count, no tolerance) skips the residual of the guess; its
iterates must be bitwise those of the tolerance-driven loop run for the same number of cycles."""
import numpy as np
from petsc4py import PETSc

from ocnet.cli import framework_options
from ocnet.grid import LayerGrid
from ocnet.mgrit import MGRIT, MGRITSettings
from ocnet.objective import ReducedObjective
from problems.peaks import Peaks

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
