"""Helper run under mpiexec by test_perfmodel: count the steps an MGRIT solve really takes, per
level and rank, with a plugin that counts its batched calls; rank 0 prints them as JSON."""
import json
import sys

import numpy as np
import petsc4py

petsc4py.init([])
from petsc4py import PETSc  # noqa: E402

from ocnet.base.grid import LayerGrid  # noqa: E402
from ocnet.optim.layout import Trajectory  # noqa: E402
from ocnet.mgrit.solver import MGRIT, MGRITSettings  # noqa: E402
from ocnet.mgrit.adjoint import AdjointMGRIT  # noqa: E402
from ocnet.plugin.problem import ControlProblem  # noqa: E402
from tests.toy import LinearControl  # noqa: E402


class Counting(LinearControl):
    """Counts steps per level (level = log of the step size over h, in units of the factor)."""

    def __init__(self, values, comm, h):
        super().__init__(values, comm)
        self.h0, self.count = h, {}

    def _add(self, h, n):
        m = int(round(h / self.h0))
        self.count[m] = self.count.get(m, 0) + int(n)

    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True):
        self._add(h, sum(b - a + 1 for a, b in runs))
        super().sweeps(runs, ns, h, thetas, U, C, F, cache)

    def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True):
        self._add(h, len(rows))
        super().steps(rows, ns, h, thetas, U, C, out, out_rows, F, cache)

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None):
        self._add(h, sum(b - a + 1 for a, b in runs))
        super().sweeps_adjoint(runs, ns, h, thetas, U, C, Lam, F)

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None):
        self._add(h, len(rows))
        super().steps_adjoint(rows, ns, h, thetas, U, C, Lam, out, out_rows, F)


class CountingAhead(Counting):
    """With the optional extensions the ResNet's kernels have: the C-point look-ahead of the
    sweeps (ahead=, its steps counted with the sweep's) and the FAS subtraction (minus=)."""

    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True, ahead=None):
        super().sweeps(runs, ns, h, thetas, U, C, F, cache)
        if ahead is not None:
            A, arows = ahead
            rows = np.array([b + 1 for (a, b), r in zip(runs, arows) if r >= 0], np.int64)
            self._add(h, len(rows))
            ControlProblem.steps(self, rows, ns, h, thetas, U, C, A, arows[arows >= 0], F, cache)

    def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True, minus=False):
        if not minus:
            return super().steps(rows, ns, h, thetas, U, C, out, out_rows, F, cache)
        tmp = np.empty((len(rows), U.shape[1]))
        super().steps(rows, ns, h, thetas, U, C, tmp, np.arange(len(rows)), F, cache)
        out[out_rows] -= tmp

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None, ahead=None):
        super().sweeps_adjoint(runs, ns, h, thetas, U, C, Lam, F)
        if ahead is not None:
            A, arows = ahead
            rows = np.array([a - 1 for (a, b), r in zip(runs, arows) if r >= 0], np.int64)
            self._add(h, len(rows))
            ControlProblem.steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, A, arows[arows >= 0], F)

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None, minus=False):
        if not minus:
            return super().steps_adjoint(rows, ns, h, thetas, U, C, Lam, out, out_rows, F)
        tmp = np.empty((len(rows), Lam.shape[1]))
        super().steps_adjoint(rows, ns, h, thetas, U, C, Lam, tmp, np.arange(len(rows)), F)
        out[out_rows] -= tmp


N, levels, cf, its = map(int, sys.argv[1:5])
relax, fine_relax, cycle, fixed, which, warm, ahead = sys.argv[5:12]
comm = PETSc.COMM_WORLD.tompi4py()
grid = LayerGrid.from_comm(N, 1.0, comm)
pb = (CountingAhead if ahead == "1" else Counting)({"dim": 2, "gamma_tik": 0.0, "gamma_ddt": 0.0}, comm, grid.h)
st = MGRITSettings(levels=levels, cfactor=(cf,), relax=relax, fine_relax="" if fine_relax == "-" else fine_relax,
                   cycle=cycle, max_it=its, rtol=0.0 if fixed == "1" else 1e-300, atol=0.0, warm_skip=warm == "1")
traj = Trajectory(grid, 2, 0, comm)
thetas = np.full((grid.nlocal, 2), 0.1)
if which == "state":
    m = MGRIT(grid, pb, comm, st, 2, 0, traj)
    if grid.first:
        traj.U[0] = 1.0
    m.solve(thetas)
else:  # the adjoint: its coarse-level linearisation (set-up steps) is counted apart
    m = AdjointMGRIT(grid, pb, comm, st, traj, 0)
    m.set_parameters(thetas, traj)
    pb.count = {}
    m.set_parameters = lambda *a: None
    lam = np.zeros((grid.nlocal + 1, 2))
    from types import SimpleNamespace
    m.solve_adjoint(thetas, traj, SimpleNamespace(U=lam), np.ones(2))
counts = comm.gather(pb.count, root=0)
if comm.rank == 0:
    print("COUNTS", json.dumps(counts))
