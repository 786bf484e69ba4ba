"""PETSc TAO glue: objective/gradient callback, per-iteration monitor and history rows."""
import contextlib
import math
import time

import numpy as np

from petsc4py import PETSc

from ..base.errors import OcnetError, PeerStop
from ..mgrit.solver import phase


def check_tao_type(db):
    """Reject an unknown -tao_type with one line (PETSc would print a multi-line error trace)."""
    t = db.getString("tao_type", None)
    if t is None:
        return
    known = {v for k, v in vars(PETSc.TAO.Type).items() if not k.startswith("_") and isinstance(v, str)}
    if t not in known:
        raise OcnetError(f"option -tao_type: unknown TAO type '{t}' (known: {', '.join(sorted(known))})")


class Trainer:
    """Runs TAO on a ReducedObjective and records one history row per iteration.

    Replicated layout: TAO runs on rank 0 only (COMM_SELF); its callbacks broadcast a command and
    the design, and every rank takes part in the layer-parallel evaluation.  One optimiser
    instance means one sequence of iterates, so the history does not depend on the rank count.
    Distributed layout: one TAO on all ranks over the distributed design Vec.
    ``stop``: the -stop_state_residual / -stop_adjoint_residual thresholds (see ocnet.optim.stopping).
    """

    def __init__(self, objective, comm, replicated=True, on_row=None, run_dir=None,
                 checkpoint_every=0, resume=False, stop=(0.0, 0.0), meta=None):
        self.obj, self.comm, self.meta = objective, comm, meta
        self.run_dir, self.checkpoint_every, self.resume = run_dir, checkpoint_every, resume
        self._resumed = None
        self.rows = []
        self._in_callback = False
        self.last_good = None  # the design of the last recorded iteration (kept when a run fails)
        self.on_row = on_row
        self.evaluations = self._evals_since_monitor = 0  # rank 0's optimiser callbacks
        self.t0 = None
        self.replicated = replicated
        self.tao = PETSc.TAO().create(comm=PETSc.COMM_SELF if replicated else objective.design.comm)
        self.tao.setObjectiveGradient(self._objgrad, objective.design.create_vec(replicated))
        self.tao.setObjective(self._obj)
        self.tao.setMonitor(self._monitor)
        self.tao.setFromOptions()
        if any(stop) and (objective.mgrit is not None or objective.adj_mgrit is not None):
            from .stopping import ResidualStop
            ResidualStop(objective, *stop).install(self.tao)
        ctx = self.tao.getPythonContext() if self.tao.getType() == "python" else None
        if checkpoint_every or resume:
            from .oneshot import OneShot
            if not isinstance(ctx, OneShot):
                raise OcnetError("-checkpoint_every/-resume need the one-shot optimiser "
                                 "(-tao_type python -tao_python_type ocnet.optim.oneshot.OneShot): PETSc's "
                                 "built-in TAO types do not expose their internal state")
            ctx.trainer = self
        if ctx is not None and hasattr(ctx, "trainer"):
            ctx.trainer = self  # (the one-shot TAO's safeguard reads the objective's controller)
        # adaptive one-shot: a line-search failure tightens the solves and restarts (ocnet.optim.adaptive)
        self.safeguard, self.skip_row = None, False
        if objective.adapt is not None and not (ctx is not None and hasattr(ctx, "pairs")):
            from .adaptive import Safeguard
            self.safeguard = Safeguard(objective.adapt, self.tao, self)
        if resume:
            from . import checkpoint
            self._resumed, self.rows = checkpoint.load(run_dir, comm, objective)

    @property
    def root_only(self):
        return self.replicated and self.comm.Get_size() > 1

    def _command(self, cmd, x):
        """Rank 0: tell the other ranks what to do next and hand them the design."""
        if self.root_only:
            self.comm.bcast(cmd, root=0)
            self.comm.Bcast(np.array(x.getArray(readonly=True)), root=0)

    def _objgrad(self, tao, x, g):
        with self._eval_phase():
            self._command(("eval",), x)
            with self._callback():
                return self.obj.evaluate(x, g)

    def _obj(self, tao, x):
        """Objective only: the state solve (the one-shot line search uses this)."""
        with self._eval_phase():
            self._command(("obj",), x)
            with self._callback():
                return self.obj.evaluate(x)

    def _eval_phase(self):
        """Log event of an evaluation (rank 0's count): OcnetLineSearch after the iteration's first."""
        self.evaluations += 1
        self._evals_since_monitor += 1
        return phase("OcnetLineSearch" if self._evals_since_monitor > 1 else "OcnetEval")

    def _monitor(self, tao):
        self._evals_since_monitor = 0
        its, f, gnorm, _, step, _ = tao.getSolutionStatus()  # step: the last line-search step
        if self.skip_row:  # the safeguard's re-evaluation at the last recorded point
            self.skip_row = False
            return
        its += self.safeguard.offset if self.safeguard is not None else 0
        x = tao.getSolution()
        self._command(("monitor", its, f, gnorm, step), x)
        with self._callback():
            self._record(its, f, gnorm, step, x)

    @contextlib.contextmanager
    def _callback(self):
        """Marks the collective part of a callback: an error inside it happened while the other
        ranks took part (they fail too, or the error channel aborts), not while they wait."""
        self._in_callback = True
        yield
        self._in_callback = False  # not reached on an error: Trainer.solve reads the flag then

    def resume_state(self):
        """Rank 0's optimiser: the restored optimiser state (None for a fresh start)."""
        return self._resumed

    def maybe_checkpoint(self, its, x, state):
        if self.checkpoint_every and its % self.checkpoint_every == 0:
            self._command(("checkpoint", its, None), x)  # only rank 0 writes the optimiser state
            self._checkpoint(its, state)

    def _checkpoint(self, its, state):
        from . import checkpoint
        checkpoint.save(self.run_dir, self.comm, self.obj, its, state, self.rows, self.meta)

    def _serve(self, x):
        """Ranks > 0 of the replicated layout: follow rank 0's commands until it stops."""
        g = x.duplicate()
        while True:
            cmd = self.comm.bcast(None, root=0)
            with x as arr:
                self.comm.Bcast(arr, root=0)
            if cmd[0] == "eval":
                self.obj.evaluate(x, g)
            elif cmd[0] == "obj":
                self.obj.evaluate(x)
            elif cmd[0] == "monitor":
                self._record(*cmd[1:], x)
            elif cmd[0] == "checkpoint":
                self._checkpoint(cmd[1], cmd[2])
            elif cmd[0] == "error":
                raise PeerStop()
            else:
                return cmd[1]

    def _record(self, its, f, gnorm, step, x):
        with phase("OcnetValidation"):
            train = self.obj.metrics(x, "train").get("accuracy", math.nan)
            val = self.obj.metrics(x, "val")
        row = {"iteration": int(its), "objective": float(f), "gradient_norm": float(gnorm),
               "train_accuracy": train, "val_accuracy": val.get("accuracy", math.nan),
               "wall_time": self.comm.bcast(time.perf_counter() - self.t0, root=0),
               "step_length": float(step),
               "state_residual": self.obj.state_residual,
               "adjoint_residual": self.obj.adjoint_residual,
               "val_state_residual": val.get("state_residual", math.nan),
               "state_mgrit_its": self.obj.state_its, "adjoint_mgrit_its": self.obj.adjoint_its}
        if self.obj.adapt is not None:
            row.update(self.obj.adapt.row())
        self.rows.append(row)
        if self.last_good is None:
            self.last_good = x.duplicate()
        x.copy(self.last_good)
        self.obj.next_batch(int(its) + 1)
        if self.on_row:
            self.on_row(row)

    def evaluate_only(self, x):
        """-tao_max_it 0: one evaluation at x, recorded as iteration 0."""
        self.t0 = time.perf_counter()
        g = x.duplicate()
        f = self.obj.evaluate(x, g)
        self.tao.setSolution(x)
        self._record(0, f, g.norm(), 0.0, x)
        return 0

    def _tao_solve(self, x):
        """tao.solve, re-raising an ocnet error from inside a callback as itself."""
        try:
            self.tao.solve(x)
            while self.safeguard is not None and self.safeguard.retry():
                self.tao.solve(x)
        except PETSc.Error as e:
            if isinstance(e.__cause__, OcnetError):
                raise e.__cause__ from None
            raise

    def solve(self, x):
        self.t0 = time.perf_counter()
        if not self.root_only:
            self._tao_solve(x)
            return self.tao.getConvergedReason()
        if self.comm.Get_rank() == 0:
            try:
                self._tao_solve(x)
            except BaseException:
                if not self._in_callback:  # the others wait for a command: tell them to stop
                    self._command(("error",), x)
                raise
            reason = self.tao.getConvergedReason()
            self._command(("stop", reason), x)
            return reason
        return self._serve(x)


def accepted_stops():
    R = PETSc.TAO.ConvergedReason
    # stops that end an optimisation normally: the iteration budget, a line search that can no
    # longer decrease the objective (typical near an optimum) and TAO's own step limits
    return tuple(getattr(R, n) for n in ("DIVERGED_MAXITS", "DIVERGED_LS_FAILURE", "DIVERGED_MAXFCN",
                                         "DIVERGED_TR_REDUCTION") if hasattr(R, n))
