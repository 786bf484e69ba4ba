"""PETSc TAO glue: objective/gradient callback, per-iteration monitor and history rows."""
import math
import time

from petsc4py import PETSc

from .errors import OcnetError


def check_tao_type(db):
    """Reject an unknown -tao_type with one line (PETSc would print a multi-line error trace)."""
    t = db.getString("tao_type", None)
    if t is None:
        return
    known = {v for k, v in vars(PETSc.TAO.Type).items() if not k.startswith("_") and isinstance(v, str)}
    if t not in known:
        raise OcnetError(f"option -tao_type: unknown TAO type '{t}' (known: {', '.join(sorted(known))})")


class Trainer:
    """Runs TAO on a ReducedObjective and records one history row per iteration."""

    def __init__(self, objective, comm, on_row=None):
        self.obj, self.comm = objective, comm
        self.rows = []
        self.on_row = on_row
        self.t0 = None
        self.tao = PETSc.TAO().create(comm=objective.design.comm)
        self.tao.setObjectiveGradient(self._objgrad, objective.design.create_vec())
        self.tao.setMonitor(self._monitor)
        self.tao.setFromOptions()

    def _objgrad(self, tao, x, g):
        return self.obj.evaluate(x, g)

    def _monitor(self, tao):
        its, f, gnorm, _, _, _ = tao.getSolutionStatus()
        self._record(its, f, gnorm, tao.getSolution())

    def _record(self, its, f, gnorm, x):
        train = self.obj.metrics(x, "train").get("accuracy", math.nan)
        val = self.obj.metrics(x, "val").get("accuracy", math.nan)
        row = {"iteration": int(its), "objective": float(f), "gradient_norm": float(gnorm),
               "train_accuracy": train, "val_accuracy": val,
               "wall_time": self.comm.bcast(time.perf_counter() - self.t0, root=0)}
        self.rows.append(row)
        if self.on_row:
            self.on_row(row)

    def evaluate_only(self, x):
        """-tao_max_it 0: one evaluation at x, recorded as iteration 0."""
        self.t0 = time.perf_counter()
        g = x.duplicate()
        f = self.obj.evaluate(x, g)
        self.tao.setSolution(x)
        self._record(0, f, g.norm(), x)
        return 0

    def solve(self, x):
        self.t0 = time.perf_counter()
        self.tao.solve(x)
        return self.tao.getConvergedReason()
