"""Calibration of the adaptive one-shot's gradient-error estimate (ocnet/optim/adaptive.py): runs
ocnet (1 rank) with the given options and, after every one-shot gradient evaluation, also the
exact (layer-serial) gradient at the same design, printing per evaluation

    CAL <estimate eta> <true relative error |g~ - g| / |g~|> <state its> <adjoint its> <pair error> <cos>
        <step cos> <|e| / |s|>

where the pair error is the error of the quasi-Newton difference, |e_k - e_{k-1}| / |y_k| with
e = g~ - g and y_k = g_k - g_{k-1} of the exact gradients (nan at the first evaluation and where
y_k = 0, a re-evaluation at the same design), and cos the cosine between e_k and e_{k-1} (near
+-1: the error keeps its direction from one evaluation to the next; random errors give ~0); step
cos is the cosine between s_k = x_k - x_{k-1} and s_{k-1}, the design changes since the previous
gradient evaluations (the changes the warm-started solves have to follow), and |e| / |s| the
error's norm over |s_k| (nan at the first evaluations and where s_k = 0).

The trajectories are restored afterwards, so the run itself is the run without this script.
Usage: python runs/calibrate_adaptive.py -mode oneshot -activation tanh -N 32 -tao_max_it 300 -quiet
"""
import math
import sys

import petsc4py

petsc4py.init(sys.argv)  # before any import of petsc4py.PETSc, so that the options are read
from ocnet.optim.objective import ReducedObjective  # noqa: E402

_orig = ReducedObjective.evaluate
_last = []  # the previous evaluation's exact gradient and error
_steps = []  # the design at the last gradient evaluation, and the step that led to it


def _diff(a, b):
    """a - b (a new Vec)."""
    d = a.copy()
    d.axpy(-1.0, b)
    return d


def _ratio(num, den):
    return num / den if den > 0 else math.nan


def _cos(u, v):
    return _ratio(u.dot(v), u.norm() * v.norm())


def _evaluate(self, x, grad=None):
    J = _orig(self, x, grad)
    ad = self.adapt
    if grad is None or ad is None or ad.fallback_reason is not None or self.mgrit is None:
        return J
    keep = [a.copy() for a in (self.state.U, self.state.Cfull, self.adj.U)]
    its = (self.mgrit.s.max_it, self.adj_mgrit.s.max_it if self.adj_mgrit is not None else 0)
    saved = self.adapt, self.mgrit, self.adj_mgrit, self._evaluated
    self.adapt = self.mgrit = self.adj_mgrit = None
    g2 = grad.duplicate()
    try:
        _orig(self, x, g2)
    finally:
        self.adapt, self.mgrit, self.adj_mgrit, self._evaluated = saved
        for a, b in zip((self.state.U, self.state.Cfull, self.adj.U), keep):
            a[...] = b
        self.mgrit.invalidate()
    d = _diff(grad, g2)
    pair = cos = scos = ratio = math.nan
    if _last:
        cos = _cos(d, _last[1])
        pair = _ratio(_diff(d, _last[1]).norm(), _diff(g2, _last[0]).norm())
    _last[:] = [g2, d]
    step = _diff(x, _steps[0]) if _steps else None
    if step is not None:
        ratio = _ratio(d.norm(), step.norm())
        if _steps[1] is not None:
            scos = _cos(step, _steps[1])
    _steps[:] = [x.copy(), step]
    print(f"CAL {ad.estimate:.6e} {d.norm() / grad.norm():.6e} {its[0]} {its[1]} {pair:.6e} {cos:+.4f} "
          f"{scos:+.4f} {ratio:.6e}", file=sys.stderr, flush=True)
    return J


ReducedObjective.evaluate = _evaluate

if __name__ == "__main__":
    from ocnet.run.cli import main
    sys.exit(main())
