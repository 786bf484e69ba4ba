"""The paper's one-shot optimiser as a PETSc TAO of type python (``-tao_type python
-tao_python_type ocnet.optim.oneshot.OneShot``, or ``-mode oneshot -oneshot_tao``).

Per iteration: one inexact objective+gradient (k_state state and k_adjoint adjoint MGRIT
iterations, warm-started), an L-BFGS direction from the stored pairs (dot products of PETSc
Vecs), and a backtracking Armijo line search whose trial points re-run only the state solve.
With the adaptive one-shot (ocnet.optim.adaptive) a line-search failure re-evaluates at the
current point with tighter solves and a fresh memory instead of stopping, until the solves are exact;
with mini-batches it restarts the same way once per accepted iteration.
Options (prefix of the TAO): -tao_oneshot_lbfgs_m (memory, 5), -tao_oneshot_armijo_c1 (1e-4),
-tao_oneshot_ls_shrink (0.5), -tao_oneshot_ls_max_it (20)."""
import numpy as np
from petsc4py import PETSc

DIVERGED_LS = PETSc.TAO.ConvergedReason.DIVERGED_LS_FAILURE


#: the one-shot TAO's options: (name, type, default, help, bounds); declared with ocnet's (so -help
#: lists them and bounds are checked), read by OneShot.setFromOptions
OPTIONS = (("tao_oneshot_lbfgs_m", int, 5, "-oneshot_tao: L-BFGS memory (pairs kept)", "[1,inf)"),
           ("tao_oneshot_armijo_c1", float, 1e-4, "-oneshot_tao: Armijo sufficient-decrease constant", "(0,1)"),
           ("tao_oneshot_ls_shrink", float, 0.5, "-oneshot_tao: step factor per rejected line-search trial", "(0,1)"),
           ("tao_oneshot_ls_max_it", int, 20, "-oneshot_tao: most trial points per line search", "[1,inf)"))


def declare_options(opts):
    """The one-shot TAO's options (framework options, group ocnet)."""
    for name, typ, default, text, bounds in OPTIONS:
        opts.add(name, typ, default, text, bounds=bounds)


class OneShot:
    def __init__(self):
        self.m, self.c1, self.shrink, self.ls_max = (o[2] for o in OPTIONS)
        self.pairs = []
        self.trainer = None  # set by ocnet's Trainer: checkpoint/restart hooks
        self.current = None  # (x, g, f, step, its) of the iteration being monitored (checkpoints)
        self.restarted_at, self.batch_restarts = 0, 0  # (mini-batches: line-search restarts)

    def setFromOptions(self, tao):
        db = PETSc.Options(tao.getOptionsPrefix())
        self.m = db.getInt("tao_oneshot_lbfgs_m", self.m)
        self.c1 = db.getReal("tao_oneshot_armijo_c1", self.c1)
        self.shrink = db.getReal("tao_oneshot_ls_shrink", self.shrink)
        self.ls_max = db.getInt("tao_oneshot_ls_max_it", self.ls_max)

    def _direction(self, g):
        """-H g by the L-BFGS two-loop recursion (initial scaling s.y/y.y, or 1/|g| at start)."""
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(self.pairs):
            a = rho * s.dot(q)
            q.axpy(-a, y)
            alphas.append(a)
        if self.pairs:
            s, y, _ = self.pairs[-1]
            q.scale(s.dot(y) / y.dot(y))
        else:
            q.scale(1.0 / max(g.norm(), 1e-300))
        for (s, y, rho), a in zip(self.pairs, reversed(alphas)):
            b = rho * y.dot(q)
            q.axpy(a - b, s)
        q.scale(-1.0)
        return q

    def solve(self, tao):
        x = tao.getSolution()
        g = x.duplicate()
        xt = x.duplicate()
        its, step = 0, 0.0
        resumed = self.trainer.resume_state() if self.trainer is not None else None
        if resumed is None:
            f = tao.computeObjectiveGradient(x, g)
        else:
            its, f, step = int(resumed["its"]), float(resumed["f"]), float(resumed["step"])
            # the solve's first evaluation was before the checkpoint: the next ones are line-search
            # trials, whose non-finite values shrink the step (the resumed run stopped on one instead)
            self.trainer._solve_start = False
            self.restarted_at = int(resumed.get("restarted_at", 0))
            x.setArray(resumed["x"])
            if "adapt" in resumed and self.trainer.obj.adapt is not None:
                self.trainer.obj.adapt.restore(resumed["adapt"])
            g.setArray(resumed["g"])
            self.pairs = []
            for s_, y_, rho in zip(resumed["S"], resumed["Y"], resumed["rho"]):
                sv, yv = x.duplicate(), x.duplicate()
                sv.setArray(s_)
                yv.setArray(y_)
                self.pairs.append((sv, yv, float(rho)))
        while True:
            tao.setIterationNumber(its)
            self.current = (x, g, f, step, its)
            tao.monitor(its, f, g.norm(), 0.0, step)
            if tao.checkConverged() != 0:
                return
            d = self._direction(g)
            slope = g.dot(d)
            if slope >= 0.0:  # not a descent direction: restart from steepest descent
                self.pairs.clear()
                d = self._direction(g)
                slope = g.dot(d)
            step = 1.0
            for _ in range(self.ls_max):
                xt.waxpy(step, d, x)
                ft = tao.computeObjective(xt)
                if ft <= f + self.c1 * step * slope:
                    break
                step *= self.shrink
            else:
                # adaptive one-shot's safeguard: the last accepted point again, with tighter solves
                # (up to exact) and a fresh L-BFGS memory; only the exact gradient's failure stops.
                # Mini-batches: the same restart when an iteration was accepted since the start or
                # the last restart (ocnet.optim.optimize.Safeguard)
                adapt = self.trainer.obj.adapt if self.trainer is not None else None
                if adapt is not None and adapt.tighten():
                    adapt.note_restart(its)
                elif self.trainer is not None and self.trainer.obj.batch_size and its > self.restarted_at:
                    from .optimize import note_batch_restart
                    self.batch_restarts += 1
                    note_batch_restart(its, self.batch_restarts, self.trainer.comm)
                else:
                    tao.setConvergedReason(DIVERGED_LS)
                    return
                self.restarted_at = its
                self.pairs.clear()
                self.trainer.skip_row = True
                f = tao.computeObjectiveGradient(x, g)
                continue
            s = xt.copy()
            s.axpy(-1.0, x)
            xt.copy(x)
            y = g.copy()
            f = tao.computeObjectiveGradient(x, g)
            y.aypx(-1.0, g)
            sy = s.dot(y)
            if sy > 1e-12 * s.norm() * y.norm():
                self.pairs.append((s, y, 1.0 / sy))
                del self.pairs[: -self.m]
            its += 1

    def state(self, x, g, f, step, its):
        """Everything the next iterations depend on, as arrays (for checkpoints)."""
        p = self.pairs
        n = x.getLocalSize()
        adapt = self.trainer.obj.adapt if self.trainer is not None else None
        extra = {} if adapt is None else {"adapt": adapt.saved()}
        return {**extra, "x": x.getArray(readonly=True).copy(), "g": g.getArray(readonly=True).copy(),
                "f": f, "step": step, "its": its, "restarted_at": self.restarted_at,
                "S": np.array([s.getArray(readonly=True) for s, _, _ in p]).reshape(len(p), n),
                "Y": np.array([y.getArray(readonly=True) for _, y, _ in p]).reshape(len(p), n),
                "rho": np.array([r for _, _, r in p])}
