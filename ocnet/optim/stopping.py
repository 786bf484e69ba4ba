"""Stopping on MGRIT residuals: a TAO convergence test (``-stop_state_residual``,
``-stop_adjoint_residual``) for the MGRIT modes.

petsc4py runs PETSc's default test first and then this one, which may replace its reason.  The
gradient of an iteration is trusted only when the state and adjoint MGRIT residual norms of its
evaluation are below their thresholds (0: no condition): otherwise the gradient-norm stops
(gatol, grtol, gttol) are withheld and only the iteration limit ends the run; when they are
below and |g| <= gatol the run stops with CONVERGED_USER.  Other stops (NaN, line-search failure,
-tao_max_it) stand.  The residuals come from reductions over all ranks, so every rank running the
test sees the same values; in the replicated layout only rank 0 runs it and then broadcasts the
stop to the serving ranks as for any other reason.
"""
import math

from petsc4py import PETSc

R = PETSc.TAO.ConvergedReason
GRADIENT_REASONS = (R.CONVERGED_GATOL, R.CONVERGED_GRTOL, R.CONVERGED_GTTOL)


class ResidualStop:
    """``objective`` supplies state_residual and adjoint_residual (nan: that solve was the exact
    layer-serial sweep, no condition)."""

    def __init__(self, objective, state_tol, adjoint_tol):
        self.obj, self.tols = objective, (state_tol, adjoint_tol)

    def install(self, tao):
        """Set as the test of ``tao`` (after its type is set: TaoSetType resets the test)."""
        tao.setConvergenceTest(self)

    def residuals_ok(self):
        values = (self.obj.state_residual, self.obj.adjoint_residual)
        return all(tol == 0.0 or math.isnan(v) or v <= tol for v, tol in zip(values, self.tols))

    def __call__(self, tao):
        """The reason replacing the default test's, or None to keep it."""
        reason = tao.getConvergedReason()
        if reason not in GRADIENT_REASONS:
            return None
        if self.residuals_ok():
            return R.CONVERGED_USER if reason == R.CONVERGED_GATOL else None
        # an inexact gradient is not trusted; the default test stopped before its iteration limit
        if tao.getIterationNumber() >= tao.getMaximumIterations():
            return R.DIVERGED_MAXITS
        return R.CONTINUE_ITERATING
