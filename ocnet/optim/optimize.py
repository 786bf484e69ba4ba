"""PETSc TAO glue: objective/gradient callback, per-iteration monitor and history rows."""
import contextlib
import math
import sys
import time

import numpy as np

from petsc4py import PETSc

from ..base import jit_clock
from ..base.errors import NumericalFailure, OcnetError, PeerStop, collective_check
from ..mgrit.solver import phase
from .objective import is_number, metric_columns


#: TAO's tolerance options: a negative value is PETSc's "default"/"decide" (-1, -2), silently
#: replaced by PETSc's own default, never what the user meant
TAO_TOLERANCES = ("tao_gatol", "tao_grtol", "tao_gttol", "tao_fatol", "tao_frtol", "tao_steptol")


def check_tao_type(db):
    """Reject an unknown -tao_type and a negative TAO tolerance with one line (PETSc would print a
    multi-line error trace; a tolerance of -1 it replaces by its default); warning lines (a list)
    for a type that changes the problem (owlqn adds its L1 term, weight 100 unless given)."""
    from ..base.options import OptionSet
    for k in TAO_TOLERANCES:
        if db.hasName(k):
            OptionSet().add(k, float, 0.0, "", bounds="[0,inf)").get(k, db)
    t = db.getString("tao_type", None)
    if t is None:
        return []
    known = {v for k, v in vars(PETSc.TAO.Type).items() if not k.startswith("_") and isinstance(v, str)}
    if t not in known:
        raise OcnetError(f"option -tao_type: unknown TAO type '{t}' (known: {', '.join(sorted(known))})")
    if t not in GRADIENT_TYPES:  # (pounders crashed with a segmentation fault; nls, tron, ...: after setup)
        raise OcnetError(f"option -tao_type: TAO type '{t}' needs what ocnet does not provide (a Hessian, "
                         "least-squares residuals or constraints); ocnet gives the objective and its gradient: "
                         f"{', '.join(GRADIENT_TYPES)}, or -oneshot_tao")
    if t == "owlqn" and not db.hasName("tao_owlqn_lambda"):  # (it zeroed every weight of Peaks, testers 39, 40)
        return ["-tao_type owlqn minimises the objective plus lambda |x|_1 over the whole design, with PETSc's "
                "default lambda 100 (-tao_owlqn_lambda), which drives the parameters to 0; the history's objective "
                "leaves that term out; -tao_owlqn_lambda 0 for the plain objective"]
    return []


#: PETSc TAO types that need only the objective and its gradient (ocnet provides no Hessian,
#: residual or constraint callbacks); bqnktr/bqnktl use a quasi-Newton matrix as their Hessian (bqnkls
#: stopped with "Cannot solve a MatLMVM when it has a nonzero shift")
GRADIENT_TYPES = ("lmvm", "blmvm", "bqnls", "bqnktr", "bqnktl", "cg", "bncg", "owlqn", "nm", "python")


class Trainer:
    """Runs TAO on a ReducedObjective and records one history row per iteration.

    Replicated layout: TAO runs on rank 0 only (COMM_SELF); its callbacks broadcast a command and
    the design, and every rank takes part in the layer-parallel evaluation.  One optimiser
    instance means one sequence of iterates, so the history does not depend on the rank count.
    Distributed layout: one TAO on all ranks over the distributed design Vec.
    ``stop``: the -stop_state_residual / -stop_adjoint_residual thresholds (see ocnet.optim.stopping).

    With a ``run_dir`` every iteration appends its history row to history.csv, and a checkpoint
    with the parameters is saved after an iteration when ``checkpoint_seconds`` have passed since
    the last save (0: every iteration) or the iteration is a multiple of ``checkpoint_every``
    (``checkpoint_seconds`` None, -checkpoint 0: no saves but a signal's).
    The end of every iteration is a safe point: a signal received by any rank (ocnet.base.signals)
    stops every rank there, after a save, with :class:`~ocnet.base.signals.Interrupted`.
    ``resume``: continue from the run folder's checkpoint (every optimiser: the one-shot TAO with
    its whole state, bitwise; PETSc's types at the saved design with their internal state, e.g.
    lmvm's quasi-Newton memory, started afresh: TAO exposes lmvm's matrix to no API).
    The run folder's files are written through ``files`` (the run machinery, ocnet.run.rundir,
    handed in so that this layer does not import it): ``files.HistoryWriter(run_dir, comm)`` and
    ``files.save_params(run_dir, x, meta, comm)``; required with a ``run_dir``.

    In-process use: ``Trainer(objective, comm).solve(x)`` optimises from the design Vec ``x`` (its
    layout as ``replicated``) and leaves the result in it; the TAO type and limits come from the
    PETSc options database (``PETSc.Options().setValue("tao_max_it", 20)`` before the Trainer is
    made, as on the command line); ``on_row(row)`` receives each history row (a dict of the
    history.csv columns).
    """

    def __init__(self, objective, comm, replicated=True, on_row=None, run_dir=None,
                 checkpoint_every=0, resume=False, stop=(0.0, 0.0), meta=None, checkpoint_seconds=60.0,
                 files=None):
        if run_dir and files is None:
            raise ValueError("Trainer: a run_dir needs files= (ocnet.run.rundir)")
        self.files = files
        self.obj, self.comm, self.meta = objective, comm, meta
        self.run_dir, self.checkpoint_every, self.resume = run_dir, checkpoint_every, resume
        self.checkpoint_seconds = checkpoint_seconds
        self._resumed = None
        self.resume_its = 0
        self.wall_offset = 0.0  # wall_time continues from the checkpoint's last row after -resume
        self.rows = []
        self._in_callback = False
        self.last_good = None  # the design of the last recorded iteration (kept when a run fails)
        self.on_row = on_row
        self.evaluations = self._evals_since_monitor = 0  # rank 0's optimiser callbacks
        self.t0 = None
        self.jit0 = 0.0  # jit_clock.seconds() at t0
        self._last_save = None
        self.saved_its = None  # the iteration of the last checkpoint written by this run
        #: this start's checkpoint saves: count, seconds of the last and the longest, the last's size
        #: (rank 0; summary.json "checkpoints": what a job's warning time must cover)
        self.save_stats = {"saves": 0, "seconds_last": None, "seconds_max": 0.0, "bytes": None}
        self.offset = 0  # PETSc TAO counts from 0 again after a resume
        self.skip_its = None  # the resumed iteration: recorded before the stop, not again
        self.renumber = 0  # added to TAO's iteration numbers that repeat a recorded one (_monitor)
        self.replicated = replicated
        self.history = files.HistoryWriter(run_dir, comm) if run_dir else None
        self.tao = PETSc.TAO().create(comm=PETSc.COMM_SELF if replicated else objective.design.comm)
        self.tao.setObjectiveGradient(self._objgrad, objective.design.create_vec(replicated))
        self.tao.setObjective(self._obj)
        self.tao.setMonitor(self._monitor)
        self.tao.setFromOptions()
        if any(stop) and (objective.mgrit is not None or objective.adj_mgrit is not None):
            from .stopping import ResidualStop
            ResidualStop(objective, *stop).install(self.tao)
        ctx = self.tao.getPythonContext() if self.tao.getType() == "python" else None
        from .oneshot import OneShot
        self.oneshot = ctx if isinstance(ctx, OneShot) else None
        if self.oneshot is not None:
            ctx.trainer = self
        if (checkpoint_every or resume) and not run_dir:
            raise OcnetError("-checkpoint_every/-resume need a run folder")
        # mini-batches: the constant added to the objective TAO sees, so that the batch change
        # after an iteration does not change TAO's value at its iterate (see _refresh_batch)
        self.batch_offset = 0.0
        self.optimising = True  # (False for -tao_max_it 0's single evaluation: nothing to refresh)
        self._non_scalar = set()  # problem metrics reported as not numbers
        self.safeguard, self.skip_row, self._first_monitor = None, False, False
        self._solve_start = False  # the next evaluation is a TAO solve's first (not a trial point)
        self._unrecorded = None  # (objective, |g|) of a safeguard re-evaluation not yet in a history row
        if resume:
            from . import checkpoint
            self._resumed, self.rows, its = checkpoint.load(run_dir, comm, objective, self.replicated)
            self.resume_its = self.skip_its = self.saved_its = its
            self.wall_offset = float(self.rows[-1].get("wall_time", 0.0)) if self.rows else 0.0
            objective.next_batch(its + 1)  # as after recording iteration its
            self.batch_offset = float(self._resumed.get("batch_offset", 0.0))
            if self.oneshot is None:
                self.offset = its
                left = self.tao.getMaximumIterations() - its
                self.tao.setMaximumIterations(max(left, 0) if left > 0 else 1)
                self._left = left
            if self.oneshot is None and objective.adapt is not None and "adapt" in self._resumed:
                objective.adapt.restore(self._resumed["adapt"])
        # adaptive one-shot: a line-search failure tightens the solves and restarts TAO with the
        # iterations left (ocnet.optim.adaptive); mini-batches: it restarts TAO (Safeguard); the
        # one-shot TAO does both itself
        if (objective.adapt is not None or objective.batch_size) and self.oneshot is None:
            self.safeguard = Safeguard(objective.adapt, self.tao, self)
        if resume and self._restarter is not None:  # (the summary's restart count covers the whole run)
            self._restarter.batch_restarts = int(self._resumed.get("batch_restarts", 0))
        if self.history is not None:
            self.history.start(self.rows)

    @property
    def _restarter(self):
        """What restarts line searches and counts mini-batch restarts: the one-shot TAO itself, else
        the Safeguard (None: neither adaptive one-shot nor mini-batches)."""
        return self.oneshot if self.oneshot is not None else self.safeguard

    @property
    def root_only(self):
        return self.replicated and self.comm.Get_size() > 1

    def _command(self, cmd, x):
        """Rank 0: tell the other ranks what to do next and hand them the design."""
        if self.root_only:
            self.comm.bcast(cmd, root=0)
            self.comm.Bcast(np.array(x.getArray(readonly=True)), root=0)

    def _objgrad(self, tao, x, g):
        # a PETSc TAO's evaluations after its solve's first are line-search trials (the one-shot
        # TAO's are its objective-only ones: _obj)
        trial = self.oneshot is None and not self._solve_start and self._compares_values()
        self._solve_start = False
        with self._eval_phase():
            self._command(("eval", trial), x)
            with self._callback():
                return self._evaluate(trial, x, g) + self.batch_offset

    def _obj(self, tao, x):
        """Objective only: the state solve (the one-shot line search uses this)."""
        trial = not self._solve_start and self._compares_values()
        self._solve_start = False
        with self._eval_phase():
            self._command(("obj", trial), x)
            with self._callback():
                return self._evaluate(trial, x) + self.batch_offset

    def _evaluate(self, trial, x, g=None):
        """The objective's evaluation; at a line search's trial point a non-finite result is +inf
        (the step is rejected and shrunk) instead of a stop: a trial step that overflows the state
        (e.g. a stiff ODE plugin) is a step too long, not a failed run."""
        self.obj.trial = trial
        try:
            return self.obj.evaluate(x, g) if g is not None else self.obj.evaluate(x)
        finally:
            self.obj.trial = False

    def _eval_phase(self):
        """Log event of an evaluation (rank 0's count): OcnetLineSearch after the iteration's first."""
        self.evaluations += 1
        self._evals_since_monitor += 1
        return phase("OcnetLineSearch" if self._evals_since_monitor > 1 else "OcnetEval")

    def _monitor(self, tao):
        self._evals_since_monitor = 0
        its, f, gnorm, _, step, _ = tao.getSolutionStatus()  # step: the last line-search step
        if self._first_monitor:  # a solve's starting point: no step taken (TAO reports its initial 1)
            self._first_monitor, step = False, 0.0
        if self.skip_row:  # the safeguard's re-evaluation at the last recorded point
            self.skip_row = False
            self._unrecorded = (f, gnorm)  # (if the run ends on it: _tao_solve amends the last row)
            return
        its += self.offset + (self.safeguard.offset if self.safeguard is not None else 0) + self.renumber
        if self.rows and self.skip_its is None and its <= int(self.rows[-1]["iteration"]):
            # a new iterate reported with an iteration number already recorded (PETSc's bncg reports
            # its first step as iteration 0 again): numbered on, so that rows count iterates
            self.renumber += int(self.rows[-1]["iteration"]) + 1 - its
            its = int(self.rows[-1]["iteration"]) + 1
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
        """This rank's restored optimiser state (None for a fresh start)."""
        return self._resumed

    def _opt_state(self, x):
        """This rank's optimiser state at the iteration just recorded (arrays and numbers)."""
        batches = {"batch_offset": self.batch_offset,
                   "batch_restarts": self._restarter.batch_restarts if self._restarter is not None else 0}
        if self.oneshot is not None and self.oneshot.current is not None:
            return dict(self.oneshot.state(*self.oneshot.current), **batches)
        extra = {} if self.obj.adapt is None else {"adapt": self.obj.adapt.saved()}
        return {**extra, "x": x.getArray(readonly=True).copy(), **batches}

    def _save(self, its, x):
        """Collective: checkpoint and parameters of iteration ``its`` (design ``x``)."""
        from . import checkpoint
        t = time.perf_counter()
        with phase("OcnetCheckpoint"):  # (its own phase: not the optimiser's time in phases.json)
            checkpoint.save(self.run_dir, self.comm, self.obj, its, self._opt_state(x), self.rows, self.meta)
            self.files.save_params(self.run_dir, self.obj.design.convert(x, False),
                                   dict(self.meta or {}, iteration=its), self.comm)
        st = self.save_stats
        st["saves"] += 1
        st["seconds_last"] = time.perf_counter() - t
        st["seconds_max"] = max(st["seconds_max"], st["seconds_last"])
        if self.comm.Get_rank() == 0:
            st["bytes"] = checkpoint.size(self.run_dir)
        checkpoint._kill_hook("after", its)
        self.saved_its = its
        self._last_save = time.perf_counter()

    def _save_due(self, its, now):
        if not self.run_dir or self.checkpoint_seconds is None:  # (None: -checkpoint 0)
            return False
        if self.checkpoint_every and its % self.checkpoint_every == 0:
            return True
        return now - (self._last_save if self._last_save is not None else self.t0) >= self.checkpoint_seconds

    def _serve(self, x):
        """Ranks > 0 of the replicated layout: follow rank 0's commands until it stops."""
        g = x.duplicate()
        while True:
            cmd = self.comm.bcast(None, root=0)
            with x as arr:
                self.comm.Bcast(arr, root=0)
            if cmd[0] == "eval":
                self._evaluate(cmd[1], x, g)
            elif cmd[0] == "obj":
                self._evaluate(cmd[1], x)
            elif cmd[0] == "monitor":
                self._record(*cmd[1:], x)
            elif cmd[0] == "error":
                raise PeerStop()
            else:
                return cmd[1]

    def _amend_last_row(self, f, gnorm):
        """The last history row becomes the safeguard's re-evaluation of its iteration (same design,
        tighter solves) when the run stops there: the stop rests on these residuals and gradient,
        and the MGRIT counts of the failed line search and the re-evaluation join the row's."""
        row = self.rows[-1]
        row.update(self._evaluation_columns(f, gnorm))
        if self.obj.adapt is not None:
            extra = self.obj.adapt.row()
            for k in ("state_mgrit_its_total", "adjoint_mgrit_its_total", "exact_evaluations"):
                row[k] = row.get(k, 0) + extra[k]
            row.update(gradient_error_estimate=extra["gradient_error_estimate"], oneshot_level=extra["oneshot_level"])

    def _evaluation_columns(self, f, gnorm):
        """The history columns of the objective's last evaluation: J, |g|, MGRIT residuals and counts."""
        o = self.obj
        return {"objective": float(f) - self.batch_offset, "gradient_norm": float(gnorm), "state_residual": o.state_residual,
                "adjoint_residual": o.adjoint_residual, "state_mgrit_its": o.state_its,
                "adjoint_mgrit_its": o.adjoint_its}

    def _record(self, its, f, gnorm, step, x):
        """Collective (every rank): the history row of iteration ``its``, any save due, and the
        safe point where a signal to any rank stops every rank."""
        self._unrecorded = None
        if its == self.skip_its:  # the resumed iterate, re-reported by the optimiser
            self.skip_its = None
            self._safe_point(its, x)
            return
        # a failed line search: the optimiser reports its restored starting point (step 0) as an
        # iteration; the row repeats that point's evaluation and metrics (the last evaluation was a
        # rejected trial point, and metrics warm-started from it would describe neither)
        repeat = bool(step == 0 and self.rows and self.last_good is not None
                      and x.equal(self.last_good))  # (the same on every rank: a replicated x is bcast)
        now = time.perf_counter()
        wall = now - self.t0 - (jit_clock.seconds() - self.jit0) + self.wall_offset  # (JIT compiles excluded)
        wall, due = self.comm.bcast((wall, self._save_due(int(its), now)), root=0)
        if repeat:
            row = dict(self.rows[-1], iteration=int(its), objective=float(f) - self.batch_offset,
                       gradient_norm=float(gnorm), wall_time=wall, step_length=0.0)
        else:
            with phase("OcnetValidation"):
                train_metrics = self.obj.metrics(x, "train")
                val = self.obj.metrics(x, "val")
            row = {"iteration": int(its), **self._evaluation_columns(f, gnorm),
                   "train_accuracy": float(a) if is_number(a := train_metrics.get("accuracy")) else math.nan,
                   "val_accuracy": float(a) if is_number(a := val.get("accuracy")) else math.nan,
                   "wall_time": wall, "step_length": float(step),
                   "val_state_residual": val.get("state_residual", math.nan)}
            # the problem's other metrics (e.g. a tracking error), as train_<name> and val_<name>
            for where, m in (("train", train_metrics), ("val", val)):  # (accuracy has its columns above)
                row.update(metric_columns(where, m, skip=("accuracy", "state_residual")))
            self._warn_non_scalar(train_metrics, val)
        refresh = self.obj.batch_size and self.optimising and self._compares_values()
        if self.obj.batch_size:  # (the re-evaluation on the next batch is this iteration's work)
            estimate = self.obj.adapt.estimate if self.obj.adapt is not None else None
            self.obj.next_batch(int(its) + 1)
            if refresh:
                self._refresh_batch(f, x)
        if self.obj.adapt is not None:
            row.update(self.obj.adapt.row())
            if refresh:  # (the estimate of the iterate's evaluation, as without batches)
                row["gradient_error_estimate"] = estimate
        self.rows.append(row)
        if self.last_good is None:
            self.last_good = x.duplicate()
        x.copy(self.last_good)
        if self.history is not None:
            self.history.append(row)
        if self.on_row:
            self.on_row(row)
        from ..base.signals import test_hook
        test_hook("row", int(its))
        if due:
            self._save(int(its), x)
        self._safe_point(int(its), x)

    def _warn_non_scalar(self, *metrics):
        """Once per name: a problem metric that is not a number has no history column."""
        for k in sorted({k for m in metrics for k, v in m.items() if not is_number(v)} - self._non_scalar):
            self._non_scalar.add(k)
            if self.comm.Get_rank() == 0:
                print(f"ocnet: warning: problem metric '{k}' is not a number (history.csv records only "
                      "numbers): left out", file=sys.stderr, flush=True)

    def line_search_restarts(self):
        """Mini-batch line-search restarts so far (rank 0's optimiser; None without batches)."""
        if not self.obj.batch_size:
            return None
        opt = self._restarter
        return self.comm.bcast(opt.batch_restarts if opt is not None else 0, root=0)

    def _compares_values(self):
        """Whether the optimiser compares objective values across an iteration: every line search
        except PETSc's ``unit`` step does, as do trust regions and the one-shot TAO; then
        mini-batches need _refresh_batch.  The same on every rank (the options are)."""
        if self.oneshot is not None:
            return True
        # (from the options: the line search object of a type without one, e.g. nm, has no type
        # to ask for -- asking crashed)
        db = PETSc.Options(self.tao.getOptionsPrefix())
        return db.getString("tao_ls_type", "") != "unit"

    def _refresh_batch(self, f, x):
        """Collective, after the batch changed at a recorded iterate x_k: evaluate x_k on the new
        batch and shift the objective TAO sees by a constant so that its value at x_k stays ``f``:
        every line search then compares objective values of one batch (TAO's line searches keep
        f(x_k) from the previous line search, on the previous batch, and failed within a few
        iterations without it).  lmvm and the one-shot TAO, which read their gradient Vec after
        the monitor, are also handed x_k's gradient on the new batch (in place), so that their
        direction and initial slope are the batch's too: one objective+gradient evaluation per
        iteration; other types keep their own copies of the gradient (bncg: the unprojected one;
        writing into TAO's Vec crashed nm), so for them it is an objective evaluation, and a line
        search that fails on the old gradient restarts (Safeguard).  Not done for
        ``-tao_ls_type unit``, which compares nothing.  The history records the batch's objective
        (the shift taken off); TAO's own relative tests (-tao_grtol: |g|/|f|) see the shifted value."""
        g = None
        if self.oneshot is not None or self.tao.getType() == "lmvm":  # (the same on every rank)
            if self.oneshot is not None and self.oneshot.current is not None:
                g = self.oneshot.current[1]
            elif self.oneshot is None and (self.comm.Get_rank() == 0 or not self.root_only):
                g = self.tao.getGradient()[0]
            # (ranks > 0 of the replicated layout; a TAO without a gradient Vec yet: handle 0)
            g = g if g is not None and g.handle else x.duplicate()
        with self._eval_phase():
            fb = self.obj.evaluate(x, g) if g is not None else self.obj.evaluate(x)
        self._evals_since_monitor = 0
        self.batch_offset = float(f) - fb

    def _safe_point(self, its, x):
        from ..base import signals
        sig = signals.agreed(self.comm)
        if sig:
            if self.run_dir and self.saved_its != its:
                self._save(its, x)
            raise signals.Interrupted(sig)

    def jit_time(self):
        """Seconds of Numba compiles since this start's optimisation began (not in wall_time)."""
        return jit_clock.seconds() - self.jit0

    def evaluate_only(self, x):
        """-tao_max_it 0: one evaluation at x, recorded as iteration 0."""
        self.t0 = time.perf_counter()
        self.jit0 = jit_clock.seconds()
        g = x.duplicate()
        f = self.obj.evaluate(x, g)
        self.tao.setSolution(x)
        self.optimising = False
        self._record(0, f, g.norm(), 0.0, x)
        return 0

    def _tao_solve(self, x):
        """tao.solve, re-raising an ocnet error from inside a callback as itself."""
        try:
            self._first_monitor = self._solve_start = True
            self.tao.solve(x)
            while self.safeguard is not None and self.safeguard.retry():
                self._first_monitor = self._solve_start = True
                self.tao.solve(x)
            if self._unrecorded is not None and self.rows:  # the run ended on the safeguard's re-evaluation
                self._amend_last_row(*self._unrecorded)
        except PETSc.Error as e:
            cause = e  # a callback's error, wrapped once per PETSc level it crossed (a python TAO: twice)
            while isinstance(cause, PETSc.Error) and cause.__cause__ is not None:
                cause = cause.__cause__
            if isinstance(cause, OcnetError):
                raise cause from None
            raise

    def _restore(self, x):
        """A resumed PETSc TAO: the design of the checkpoint."""
        if self._resumed is None or self.oneshot is not None:
            return
        x.setArray(self._resumed["x"])

    def finish(self, x):
        """Collective, after a normal end: save the last iteration if its save is not done yet (so
        -resume of a finished run, e.g. with a larger -tao_max_it, continues from its end)."""
        if self.run_dir and self.rows and self.saved_its != self.rows[-1]["iteration"] \
                and self.checkpoint_seconds is not None:
            self._save(self.rows[-1]["iteration"], self.last_good)

    def _nothing_left(self):
        return self._resumed is not None and self.oneshot is None and getattr(self, "_left", 1) <= 0

    def solve(self, x):
        """Collective: optimise from ``x`` (overwritten with the result); TAO's converged reason, an
        int (``ocnet.base.reasons.reason_name`` gives its name).  Raises NumericalFailure when the
        optimiser stopped on a line search whose last trial point went non-finite; OcnetError
        (every rank) for a Vec of the other layout than ``replicated`` says (it failed deep in MPI
        and PETSc on 2 ranks, and passed on 1; tester 44)."""
        d = self.obj.design
        want = d.global_size if self.replicated else d.local_size
        n = x.getLocalSize() if isinstance(x, PETSc.Vec) else None
        collective_check(self.comm, n == want, f"Trainer.solve: expected a {'replicated' if self.replicated else 'distributed'} "
                         f"design Vec of local size {want}, got " + (f"one of local size {n}" if n is not None else
                                                                      f"a {type(x).__name__}")
                         + f" (Trainer(..., replicated={self.replicated}); design.convert(x, {self.replicated}) converts "
                           "a design Vec of the other layout)")
        reason = self._solve(x)
        failure = self.obj.nonfinite_trial  # (the same on every rank: every rank evaluated it)
        if failure is not None and reason == PETSc.TAO.ConvergedReason.DIVERGED_LS_FAILURE:
            failure = self.obj.nonfinite_failure(  # (collective: every rank is here)
                failure, self.rows[-1]["state_residual"] if self.rows else None)
            raise NumericalFailure(f"the line search failed on non-finite trial points ({self.obj.rejected_trials} "
                                   f"in all; the last: {failure}; a line search that shrinks the step further may "
                                   "pass them: -tao_ls_type armijo -tao_ls_max_funcs 100)")
        return reason

    def _solve(self, x):
        self.t0 = time.perf_counter()
        self.jit0 = jit_clock.seconds()
        if self._nothing_left():  # resumed at its iteration limit: TAO would not take 0 iterations
            if self.comm.Get_rank() == 0:  # (a finished run the command line leaves alone; here: one
                # stopped in its final outputs, which the command line then writes)
                print(f"ocnet: note: -resume: the run is at iteration {self.resume_its}, -tao_max_it "
                      f"{self.resume_its + self._left}: no iterations left (give a larger -tao_max_it to continue)",
                      file=sys.stderr, flush=True)
            x.setArray(self._resumed["x"])  # every rank saved its copy or part of the design
            return PETSc.TAO.ConvergedReason.DIVERGED_MAXITS
        if not self.root_only:
            self._restore(x)
            self._tao_solve(x)
            return self.tao.getConvergedReason()
        if self.comm.Get_rank() == 0:
            try:
                self._restore(x)
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


class Safeguard:
    """Line-search failures of PETSc TAO runs (lmvm and the other built-in types): ``retry`` after
    a solve that ended with DIVERGED_LS_FAILURE restarts TAO at its solution (the last accepted
    point: TAO's line searches restore it) with a fresh quasi-Newton memory and the remaining
    iteration budget, when

    - adaptive one-shot (``adapt``) can tighten its solves (ocnet.optim.adaptive: only a failure
      with exact solves stops), or
    - the run uses mini-batches and this TAO solve took at least one iteration: a batch's line
      search can fail on a direction from another batch's gradient (types that keep their own
      gradient copy, e.g. bncg); the restart evaluates the point on the current batch.  A failure
      right after a restart stops the run (the batch's own line search failed).
    """

    def __init__(self, adapt, tao, trainer):
        self.adapt, self.tao, self.trainer = adapt, tao, trainer
        self.offset = 0  # iterations of the earlier TAO solves (history rows continue counting)
        self.max_it = tao.getMaximumIterations()
        self.batch_restarts = 0

    def retry(self):
        tao = self.tao
        if tao.getConvergedReason() != PETSc.TAO.ConvergedReason.DIVERGED_LS_FAILURE:
            return False
        done = self.offset + tao.getIterationNumber()
        if done >= self.max_it:
            return False
        rows = self.trainer.rows  # (the notes name the history's iteration)
        at = int(rows[-1]["iteration"]) if rows else done
        if self.adapt is not None and self.adapt.tighten():
            self.adapt.note_restart(at)
        elif self.trainer.obj.batch_size and tao.getIterationNumber() > 0:
            self.batch_restarts += 1
            note_batch_restart(at, self.batch_restarts, self.trainer.comm)
        else:
            return False
        self.offset = done
        self.trainer.skip_row = True
        tao.setMaximumIterations(self.max_it - done)
        return True


def note_batch_restart(its, n, comm):
    """One line on stderr (rate-limited: the first 3, the 10th, 100th, every 1000th)."""
    if comm.Get_rank() == 0 and (n <= 3 or n in (10, 100) or n % 1000 == 0):
        print(f"ocnet: note: line search failed at iteration {its} on its mini-batch; restarting there with a "
              f"fresh quasi-Newton memory ({n} so far)", file=sys.stderr, flush=True)
