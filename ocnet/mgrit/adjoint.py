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
from petsc4py import PETSc

from . import rowops
from ..plugin.problem import accepts
from ..base.reasons import reason_name
from .solver import MGRIT, coarse_parameters, logged


def _forward_view(out, rows):
    """(array, rows) in forward order: a level array (stored back to front) as its reversed view,
    its row indices mapped alike (negative entries, "none", kept)."""
    if out.strides[0] >= 0:
        return out, rows
    return out[::-1], np.where(rows >= 0, out.shape[0] - 1 - rows, rows)


def reversed_grid(grid):
    return SimpleNamespace(N=grid.N, T=grid.T, h=grid.h, size=grid.size, rank=grid.size - 1 - grid.rank,
                           n0=grid.N - grid.n1, n1=grid.N - grid.n0, first=grid.last, last=grid.first,
                           nlocal=grid.nlocal)


class AdjointMGRIT(MGRIT):
    """MGRIT on the reversed grid whose steps are transposed Jacobians.

    Level arrays are stored back to front (``alloc``), so ``lev.U[::-1]`` is the adjoint in
    forward-layer order (index j = nrows-1-r for reversed row r) as a contiguous array; each level
    also keeps, in that order, the parameters, linearisation states and caches of the forward
    steps it transposes (views of the state trajectory on the finest level).  A relaxation is one
    call of the plugin's batched ``sweeps_adjoint``/``steps_adjoint``, with no copies.  The levels'
    own cache arrays stay empty: the transposed steps keep no caches."""

    log_prefix = "AdjMGRIT"  # PETSc log events AdjMGRITRelax, ...

    def __init__(self, grid, problem, comm, settings, state, cache_size, adj=None):
        """``adj``: the adjoint trajectory (forward order) to solve into; the finest level then
        stores its rows back to front in the same memory, and no copy is needed at the end."""
        self.fgrid, self.cache_size = grid, cache_size
        rcomm = comm.Split(0, grid.size - 1 - grid.rank)
        S = state.state_size
        U = self.alloc((grid.nlocal + 1, S)) if adj is None else adj.U[::-1]
        own = SimpleNamespace(U=U, Cfull=np.zeros((grid.nlocal + 1, 0)))
        super().__init__(reversed_grid(grid), problem, rcomm, settings, S, 0, own)
        self.own = own
        self._ahead = accepts(problem.sweeps_adjoint, "ahead")  # the C-point look-ahead (MGRIT.f_relax)
        self._minus = accepts(problem.steps_adjoint, "minus")  # (MGRIT.restrict)
        # the parameter gradient formed in the last F-relaxation of a fixed-cycle solve (plugins
        # whose sweeps_adjoint and parameter_gradient take grad= and rows=; the ResNet's do)
        self.fuse = accepts(problem.sweeps_adjoint, "grad") and accepts(problem.parameter_gradient, "rows")
        self.grad, self._gathering = None, False
        self.formed = np.zeros(grid.nlocal, bool)  # local layers whose gradient the solve formed
        # the state's MGRIT (with keep_coarse), whose coarse levels may hold this solve's coarse
        # linearisation after its solve (set by ReducedObjective; None: always computed here)
        self.state_mgrit = None

    @staticmethod
    def alloc(shape):
        return np.zeros(shape)[::-1]

    @logged("Setup")
    def set_parameters(self, thetas_local, state):
        """Per level, in forward order: theta, u and the cache of the forward step each reversed
        step transposes (coarse levels: the plugin's coarse step at u[layer] with its
        ``coarse_parameters``, as on the state's levels).
        On the finest level reversed row r transposes local layer nrows-1-r: plain views."""
        g, pb = self.fgrid, self.problem
        # the forward layer order: the reversed communicator's ranks reversed (collective, so on
        # every rank, whether or not its levels come from the state's)
        allth = np.concatenate(self.comm.allgather(thetas_local)[::-1]) if len(self.levels) > 1 else None
        for lev in self.levels:
            n = lev.nrows
            if lev.m == 1:
                lev.fw = SimpleNamespace(ns=g.n0 + np.arange(n), th=thetas_local, U=state.U, C=state.C)
                continue
            if self._from_state(lev, state):
                continue
            r = np.arange(1, n)
            j = n - 1 - r
            layer = g.N - (lev.p0 + r) * lev.m
            # row j+1 of the *_b arrays is row j of the level's forward arrays, so that the plugin's
            # steps (which read U[r-1] and write C[r]) compute the caches in place
            if not hasattr(lev, "fw_base"):  # allocated once per level
                lev.fw_base = (np.zeros((n + 1, thetas_local.shape[1])), np.zeros((n + 1, self.cache_size)),
                               np.zeros(n + 1, np.int64), np.zeros((n, state.state_size)),
                               np.zeros((max(n - 1, 0), state.state_size)))
            th_b, C_b, ns_b, U, scratch = lev.fw_base
            th_b[j + 1] = coarse_parameters(pb, allth, layer, lev.m)
            ns_b[j + 1] = layer
            # jitted row copy: numpy's fancy-index copy (a temporary of the whole block) was
            # measured 20x slower here (0.62 s against 0.03 s for N = 1024, batch 5000)
            rowops.copy_rows(U, j, state.U, layer - g.n0)
            if n > 1:
                pb.steps(j + 1, ns_b, g.h * lev.m, th_b, U, C_b, scratch, np.arange(n - 1))
            lev.fw = SimpleNamespace(ns=ns_b[1:], th=th_b[1:], U=U, C=C_b[1:])

    def _from_state(self, lev, state):
        """Point the level's forward arrays at the state MGRIT's level of the same spacing m when
        its last solve left there, in place, every coarse step this rank transposes: the same
        states (its C-points were copied into the trajectory), parameters and caches (its final
        F-relaxation with look-ahead, or coarsest sweep, kept them), so the views give bitwise
        the values the steps below would recompute.  False: compute them."""
        src, g, n = self.state_mgrit, self.fgrid, lev.nrows
        if src is None or not src.coarse_final or g.N % lev.m or src.levels[0].U is not state.U:
            return False
        slev = next((s for s in src.levels[1:] if s.m == lev.m), None)
        if slev is None or n < 2:
            return False
        # reversed row r = 1..n-1 transposes the forward step from coarse point N/m - p0 - r
        # (forward row j = n-1-r); the first of them, j = 0, is state row q0 - p0
        row0 = g.N // lev.m - lev.p0 - (n - 1) - slev.p0
        if row0 < 0 or row0 + n - 1 > slev.nrows - 1:  # a step this rank's state level lacks
            return False
        sl = slice(row0 + 1, row0 + n)
        lev.fw = SimpleNamespace(ns=slev.ns[sl], th=slev.thetas[sl], U=slev.U[row0:row0 + n - 1], C=slev.C[sl])
        return True

    def _sweeps(self, lev, runs, cache=None, ahead=None):  # the transposed steps keep no caches
        if len(runs):
            n, fw = lev.nrows, lev.fw
            fwd = np.ascontiguousarray((n - 1) - runs[:, ::-1])  # forward rows = local layers
            kw = {}
            if ahead is not None:  # the look-ahead of a reversed run is forward row a-1
                kw["ahead"] = _forward_view(*ahead)
            if self._gathering and lev is self.levels[0]:
                kw["grad"] = self.grad
                for i, (a, b) in enumerate(fwd):
                    self.formed[a:b + 1] = True
                    if ahead is not None and ahead[1][i] >= 0:
                        self.formed[a - 1] = True
            self.problem.sweeps_adjoint(fwd, fw.ns, self.fgrid.h * lev.m, fw.th, fw.U, fw.C, lev.U[::-1],
                                        lev.G[::-1] if lev.forced else None, **kw)

    def correct(self, fine, coarse):
        """The last cycle's correction on the finest level of a one-shot solve (fixed cycles) is
        the last F-relaxation: it adds the parameter gradient of the layers it sweeps to
        ``self.grad`` from the g it computes anyway (the arithmetic of parameter_gradient, so the
        gradient is bitwise the same); ``unformed`` lists the other layers."""
        self._gathering = self.grad is not None and self.last_cycle and fine is self.levels[0]
        try:
            super().correct(fine, coarse)
        finally:
            self._gathering = False

    def unformed(self):
        """Local layers (int64) whose parameter gradient the last solve did not form (None: all)."""
        return np.flatnonzero(~self.formed).astype(np.int64) if self.formed.any() else None

    def _steps(self, lev, rows, out, out_rows=None, forced=False, cache=None, minus=False):
        if not len(rows):
            return
        n, fw = lev.nrows, lev.fw
        if out_rows is None:
            out_rows = np.arange(len(rows))
        out, out_rows = _forward_view(out, out_rows)
        kw = {"minus": True} if minus else {}
        self.problem.steps_adjoint(n - 1 - rows, fw.ns, self.fgrid.h * lev.m, fw.th, fw.U, fw.C, lev.U[::-1],
                                   out, out_rows, lev.G[::-1] if forced else None, **kw)

    def solve_adjoint(self, thetas_local, state, adj, lamN, on_iteration=None, grad=None):
        """Fill adj.U (rows <-> fine points n0..n1) with the MGRIT adjoint; lamN on the last rank.
        ``grad`` (local layers x parameters): a fixed-cycle solve adds the parameter gradients of
        the layers its last F-relaxation sweeps (see ``correct``; the rest: ``unformed``)."""
        g = self.fgrid
        self.set_parameters(thetas_local, state)
        if g.last:
            self.own.U[0] = lamN
        self.formed[:] = False
        self.grad = grad if self.fuse else None
        try:
            its = self.run("adjoint mgrit", on_iteration)
        finally:
            self.grad = None
        self._to(adj)
        return its

    def _to(self, adj):
        """adj.U <- the fine level in forward order (nothing to do when it is that memory)."""
        if not np.shares_memory(adj.U, self.own.U):
            adj.U[:] = self.own.U[::-1]


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
        s.flush()


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
        fine.f_relaxed = False
        fine.G[s.owned] = r.getArray(readonly=True).reshape(-1, S)
        if s.fgrid.last:  # initial condition row: (A x)[0] = x[0]
            fine.U[0] = fine.G[0]
            fine.G[0] = 0.0
        s.f_relax(fine)
        s.cycle(0, s.s.cycle)
        s.flush()
        fine.forced = False
        with e as arr:
            arr.reshape(-1, S)[:] = fine.U[s.owned]


class AdjointKSP(AdjointMGRIT):
    """The adjoint as a PETSc KSP (prefix ``adjoint_``) on the space-time operator, preconditioned by
    MGRIT: ``-adjoint_ksp_type richardson`` (default) is plain MGRIT, ``gmres`` accelerates it."""

    def __init__(self, grid, problem, comm, settings, state, cache_size, adj=None):
        from .solver import Level
        super().__init__(grid, problem, comm, settings, state, cache_size, adj)
        fine = self.levels[0]
        self.owned = slice(0, None) if grid.last else slice(1, None)
        self.work = Level(self.grid, 1, fine.cf, fine.U.shape[1], 0, self.problem.layer_param_size,
                          alloc=self.alloc)
        self.link(self.work)
        self.extra_levels.append(self.work)
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
        self._view_reason = PETSc.Options("adjoint_").hasName("ksp_converged_reason")
        if ksp.getType() != "richardson":
            ksp.setPCSide(PETSc.PC.Side.RIGHT)
        self.ksp, self.A = ksp, A
        self.x = self.b = None  # the Krylov path's Vecs, created on its first solve (the Richardson
        # shortcut needs neither: two trajectories of memory saved)
        self.history = []
        self._krylov = []  # residual norms of a Krylov solve
        ksp.setMonitor(lambda k, it, rnorm: self._krylov.append(rnorm))

    def set_parameters(self, thetas_local, state):
        super().set_parameters(thetas_local, state)
        self.work.fw = self.levels[0].fw  # the operator's residuals take the fine level's steps

    def solve_adjoint(self, thetas_local, state, adj, lamN, grad=None):
        self.formed[:] = False
        if self.ksp.getType() == "richardson" and self.ksp.getPC().getType() == "python":
            # Richardson with the MGRIT PC *is* plain MGRIT: iterate directly and skip the
            # operator applications the Krylov wrapper would add; the KSP's monitors still run,
            # and its iteration count and converged reason are set.
            ksp = self.ksp
            its = super().solve_adjoint(thetas_local, state, adj, lamN, on_iteration=ksp.monitor, grad=grad)
            R = PETSc.KSP.ConvergedReason
            ksp.setIterationNumber(its)
            if not self.tolerance_set:  # one-shot: the fixed number of cycles asked for was run
                ksp.setConvergedReason(R.CONVERGED_ITS)
            else:  # as a Krylov KSP would say: the iterations ran out above the tolerance
                ksp.setConvergedReason(R.CONVERGED_RTOL if self.converged else R.DIVERGED_MAX_IT)
            if self._view_reason:  # KSPSolve would print it; this shortcut does so itself
                code = ksp.getConvergedReason()
                name = reason_name(code, R)
                verb = "converged" if code > 0 else "did not converge"
                PETSc.Sys.Print(f"Linear adjoint_ solve {verb} due to {name} iterations {its}")
            return its
        self.set_parameters(thetas_local, state)
        fine = self.levels[0]
        S = fine.U.shape[1]
        if self.x is None:
            self.x, self.b = self.A.createVecs()
        with self.b as b:
            b[:] = 0.0
            if self.fgrid.last:
                b[:S] = lamN
        with self.x as x:  # warm start: the previous adjoint trajectory
            x[:] = fine.U[self.owned].ravel()
            if self.fgrid.last:
                x[:S] = lamN
        self._krylov = []
        self.ksp.solve(self.b, self.x)
        fine.U[self.owned] = self.x.getArray(readonly=True).reshape(-1, S)
        self.exchange(fine)
        self._to(adj)
        self.history = self._krylov or [0.0]
        self.converged = self.ksp.getConvergedReason() > 0
        return self.ksp.getIterationNumber()
