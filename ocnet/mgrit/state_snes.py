"""The state equation as a PETSc SNES (prefix ``state_``) on the distributed trajectory Vec.

Residual F(u)[j] = u[j] - Phi_j(u[j-1]) (and u[0] - E(g) on rank 0) is the space-time residual;
the SNES is of type python and its solve runs MGRIT FAS cycles, with the SNES tolerances and
iteration limit (defaults from -state_mgrit_*), monitors and converged reasons."""
import numpy as np
from petsc4py import PETSc


class _MGRITSolve:
    def __init__(self, mgrit, traj):
        self.m, self.traj = mgrit, traj

    def solve(self, snes, b, x):
        m = self.m
        rtol, atol, _, max_it = snes.getTolerances()
        m.s.rtol, m.s.atol, m.s.max_it = rtol, atol, max_it
        its = m.iterate("state mgrit", on_iteration=snes.monitor)  # monitors run live
        snes.setIterationNumber(its)
        snes.setFunctionNorm(m.history[-1])
        R = PETSc.SNES.ConvergedReason
        if not m.tolerance_set:  # one-shot: a fixed number of cycles was asked for and run
            snes.setConvergedReason(R.CONVERGED_ITS)
        else:
            snes.setConvergedReason(R.CONVERGED_FNORM_RELATIVE if m.converged else R.DIVERGED_MAX_IT)


class StateSNES:
    def __init__(self, mgrit, traj, problem, comm):
        self.m, self.traj = mgrit, traj
        snes = PETSc.SNES().create(comm=PETSc.COMM_WORLD)
        snes.setOptionsPrefix("state_")
        snes.setType("python")
        snes.setPythonContext(_MGRITSolve(mgrit, traj))
        # the residual Vec (PETSc would duplicate the trajectory, touching a trajectory's worth of
        # memory: 3.1 GB per rank-layer block on MNIST); numpy's zeros are mapped on first write,
        # so it costs memory only when the residual is computed (monitors, tests)
        self._farr = np.zeros(traj.vec.getLocalSize())
        self.f = PETSc.Vec().createWithArray(self._farr, size=traj.vec.getSizes(), comm=traj.vec.getComm())
        snes.setFunction(self._residual, self.f)
        s = mgrit.s
        snes.setTolerances(rtol=s.rtol, atol=s.atol, max_it=s.max_it)
        snes.setFromOptions()
        self.snes = snes

    def _residual(self, snes, x, f):
        """Space-time residual of the trajectory (x is the trajectory Vec itself)."""
        m, lev = self.m, self.m.levels[0]
        with f as arr:  # the context bumps f's state, so PETSc drops cached norms
            out = arr.reshape(-1, lev.U.shape[1])
            m.point_residuals(lev, out)
            if m.grid.first:
                out[0] = 0.0  # u[0] is set from the opening map before the solve

    def solve(self, thetas_local):
        self.m.set_parameters(thetas_local)
        self.snes.solve(None, self.traj.vec)
        return self.snes.getIterationNumber()
