"""Linear MGRIT for the discrete adjoint, backward in layers.

The adjoint recursion  lam[N] = dJ/du[N],  lam[n] = (dPhi_n/du[n])^T lam[n+1]  is, in reversed
index k = N - n, a linear forward problem.  It is solved by the same MGRIT cycles as the state on
a reversed grid and a reversed communicator: reversed point k is fine point N - k, a rank owns
fine points [n0, n1) (it holds u[n0..n1] already), so every coarse step finds its linearisation
state and its (injected) parameters locally.  Coarse steps are transposed Jacobians of the
plugin's coarse step (step size h*m, parameters of the first fine layer of the forward coarse
step) linearised at the current state.  The parameter gradient is then formed layer by layer
from the MGRIT adjoint (so an inexact, one-shot adjoint gives the same gradient on any number of
ranks).
"""
from types import SimpleNamespace

import numpy as np

from .mgrit import MGRIT


def reversed_grid(grid):
    return SimpleNamespace(N=grid.N, T=grid.T, h=grid.h, size=grid.size, rank=grid.size - 1 - grid.rank,
                           n0=grid.N - grid.n1, n1=grid.N - grid.n0, first=grid.last, last=grid.first,
                           nlocal=grid.nlocal)


class _TransposedSteps:
    """The plugin seen from the reversed grid: a 'step' applies a transposed Jacobian.

    Each step's parameter row is [theta | u] (u: the forward state the Jacobian is taken at);
    its cache row holds the forward step's cache at that state, filled by AdjointMGRIT."""

    def __init__(self, problem, state_size):
        self.pb, self.p, self.S = problem, problem.layer_param_size, state_size
        self.layer_param_size = self.p + state_size

    def sweep(self, n0, h, rows, M, C, F=None):
        """M[k+1] = J_k^T M[k] (+ F[k]) for a run of rows: the plugin's own (jitted) backward
        sweep on the rows in forward-layer order."""
        nl = rows.shape[0]
        rev = rows[::-1]
        thetas = np.ascontiguousarray(rev[:, : self.p])
        U = np.empty((nl + 1, self.S))
        U[:nl] = rev[:, self.p:]
        Lam = np.ascontiguousarray(M[::-1])
        Frev = None if F is None else np.ascontiguousarray(F[::-1])
        self.pb.sweep_adjoint(n0, h, thetas, U, np.ascontiguousarray(C[::-1]), Lam,
                              np.zeros((nl, self.p)), Frev)
        M[1:] = Lam[::-1][1:]


class AdjointMGRIT(MGRIT):
    def __init__(self, grid, problem, comm, settings, state, cache_size):
        self.fgrid, self.fproblem = grid, problem
        rcomm = comm.Split(0, grid.size - 1 - grid.rank)
        S = state.state_size
        own = SimpleNamespace(U=np.zeros((grid.nlocal + 1, S)), Cfull=np.zeros((grid.nlocal + 1, cache_size)))
        super().__init__(reversed_grid(grid), _TransposedSteps(problem, S), rcomm, settings, S, cache_size, own)
        self.own = own

    def set_parameters(self, thetas_local, state):
        """Rows of every level: [theta | u] of the forward step the reversed step transposes."""
        g, pb, p = self.fgrid, self.fproblem, self.fproblem.layer_param_size
        for lev in self.levels:
            h = g.h * lev.m
            buf = np.empty((2, state.state_size))
            for r in range(1, lev.nrows):
                layer = g.N - lev.point(r) * lev.m
                k = layer - g.n0
                lev.thetas[r, :p] = thetas_local[k]
                lev.thetas[r, p:] = state.U[k]
                if lev.m == 1:
                    lev.C[r] = state.C[k]
                else:  # linearisation of the coarse forward step at u[layer]
                    buf[0] = state.U[k]
                    pb.sweep(layer, h, thetas_local[k:k + 1], buf, lev.C[r:r + 1])

    def solve_adjoint(self, thetas_local, state, adj, lamN):
        """Fill adj.U (rows <-> fine points n0..n1) with the MGRIT adjoint; lamN on the last rank."""
        g = self.fgrid
        self.set_parameters(thetas_local, state)
        if g.last:
            self.own.U[0] = lamN
        its = self.run("adjoint mgrit")
        adj.U[:] = self.own.U[::-1]
        return its


class _SpaceTimeAdjoint:
    """PETSc Mat (python) context: (A x)[k] = x[k] - J_k^T x[k-1] on the reversed grid, x[0] free."""

    def __init__(self, solver):
        self.s = solver

    def mult(self, mat, x, y):
        s = self.s
        w = s.work
        w.U[s.owned] = x.getArray(readonly=True).reshape(-1, w.U.shape[1])
        with y as out:  # the context bumps y's state, so PETSc drops cached norms
            s.point_residuals(w, out.reshape(-1, w.U.shape[1]))


class _MGRITPC:
    """PETSc PC (python) context: one MGRIT cycle on A e = r from a zero guess (a linear map)."""

    def __init__(self, solver):
        self.s = solver

    def apply(self, pc, r, e):
        s = self.s
        fine = s.levels[0]
        S = fine.U.shape[1]
        fine.forced = True
        fine.U[:] = 0.0
        fine.G[:] = 0.0
        fine.G[s.owned] = r.getArray(readonly=True).reshape(-1, S)
        if s.fgrid.last:  # initial condition row: (A x)[0] = x[0]
            fine.U[0] = fine.G[0]
            fine.G[0] = 0.0
        s.f_relax(fine)
        s.cycle(0, s.s.cycle)
        fine.forced = False
        with e as arr:
            arr.reshape(-1, S)[:] = fine.U[s.owned]


class AdjointKSP(AdjointMGRIT):
    """The adjoint as a PETSc KSP (prefix ``adjoint_``) on the space-time operator, preconditioned by
    MGRIT: ``-adjoint_ksp_type richardson`` (default) is plain MGRIT, ``gmres`` accelerates it."""

    def __init__(self, grid, problem, comm, settings, state, cache_size):
        from petsc4py import PETSc

        from .mgrit import Level
        super().__init__(grid, problem, comm, settings, state, cache_size)
        fine = self.levels[0]
        self.owned = slice(0, None) if grid.last else slice(1, None)
        self.work = Level(self.grid, 1, fine.cf, fine.U.shape[1], cache_size, self.problem.layer_param_size)
        self.work.thetas, self.work.C = fine.thetas, fine.C
        n = fine.U[self.owned].size
        wcomm = PETSc.COMM_WORLD
        A = PETSc.Mat().createPython(((n, None), (n, None)), _SpaceTimeAdjoint(self), comm=wcomm)
        A.setUp()
        ksp = PETSc.KSP().create(comm=wcomm)
        ksp.setOptionsPrefix("adjoint_")
        ksp.setOperators(A)
        ksp.setType("richardson")
        ksp.getPC().setType("python")
        ksp.getPC().setPythonContext(_MGRITPC(self))
        ksp.setTolerances(rtol=settings.rtol, atol=settings.atol, max_it=settings.max_it)
        ksp.setNormType(PETSc.KSP.NormType.UNPRECONDITIONED)
        ksp.setInitialGuessNonzero(True)
        ksp.setFromOptions()
        if ksp.getType() != "richardson":
            ksp.setPCSide(PETSc.PC.Side.RIGHT)
        self.ksp, self.A = ksp, A
        self.x, self.b = A.createVecs()
        self.history = []
        ksp.setMonitor(lambda k, it, rnorm: self.history.append(rnorm))

    def solve_adjoint(self, thetas_local, state, adj, lamN):
        if self.ksp.getType() == "richardson" and self.ksp.getPC().getType() == "python":
            # Richardson with the MGRIT PC *is* plain MGRIT: iterate directly and skip the
            # operator applications the Krylov wrapper would add.
            return super().solve_adjoint(thetas_local, state, adj, lamN)
        self.set_parameters(thetas_local, state)
        fine = self.levels[0]
        S = fine.U.shape[1]
        with self.b as b:
            b[:] = 0.0
            if self.fgrid.last:
                b[:S] = lamN
        with self.x as x:  # warm start: the previous adjoint trajectory
            x[:] = fine.U[self.owned].ravel()
            if self.fgrid.last:
                x[:S] = lamN
        self.history = []
        self.ksp.solve(self.b, self.x)
        fine.U[self.owned] = self.x.getArray(readonly=True).reshape(-1, S)
        self.exchange(fine)
        adj.U[:] = self.own.U[::-1]
        self.history = self.history or [0.0]
        return self.ksp.getIterationNumber()
