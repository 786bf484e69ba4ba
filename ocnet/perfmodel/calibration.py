"""Calibration of the performance model for one plugin problem: the unit costs model.py multiplies.

    python -m ocnet.perfmodel calibrate --problem SPEC [--out FILE] [--steps K] [--quick] [ocnet options ...]

The problem is built as ``ocnet`` builds it (ocnet.plugin.loader, the framework's, MGRIT's and the
plugin's declared options read from PETSc's option database, ``-options_file`` included), so its
options parse as in a run: ``-problem peaks -activation tanh`` calibrates the tanh ResNet, ``-problem
heat -nx 512`` the heat equation on 512 points.  Everything is timed through the plugin interface
(ocnet.plugin.problem.ControlProblem), on the plugin's own data sets (``train`` and, where there is
one, ``val``): state size S and cache size Sc from ``state_size``/``cache_size``, parameter size p
from ``layer_param_size``, parameters from ``initial_layer_parameters`` (the seed and init options
as given), and states and adjoints of a real forward and backward sweep from the plugin's opening
and terminal.  Times are CPU times, best of several (a shared machine's waits are not counted).

What is measured (JSON keys of the calibration file):

- ``steps`` / ``calls``: per step and per batched call (s) of each form the model counts, at the
  data sets' sizes, as ``[a, b]`` (a + b S through the measured sizes): ``forward`` (``sweeps`` with
  caches), ``serial_forward`` (``sweep``), ``adjoint`` (``sweeps_adjoint``), ``serial_adjoint``
  (``sweep_adjoint``: transposed step and gradient), ``gradient`` (``parameter_gradient``) and
  ``steps`` (independent ``steps``); each on K consecutive layers and on one (step = the difference
  over K - 1, call = the rest); ``steps_points`` keeps the measured (S, seconds) pairs.
- ``steps.point`` / ``steps.point_adjoint`` and ``copy``: C-point steps and row copies inside a
  two-level MGRIT cycle of the plugin (their input rows come from memory after an F-relaxation);
  ``steps.adjoint_cycle``: a transposed step of an adjoint MGRIT F-relaxation (short runs between
  C-points), the cost of the adjoint solves' sweep steps.
- ``overhead``: ``mgrit_op`` (ocnet's own cost per MGRIT operation, measured with a plugin whose
  steps do nothing), ``evaluation`` (one objective + gradient evaluation besides its solves: ocnet's
  part, measured the same way, plus the plugin's opening, terminal, opening_adjoint and global
  regularisation), ``regularization`` ([a, b]: layer_regularization on n layers), ``metrics`` (the
  plugin's metrics on the training and validation states: once per iteration), ``optimiser``
  (TAO lmvm's own work per iteration, a + b n on a design of size n), ``iteration`` (ocnet's
  bookkeeping per iteration around TAO: callbacks, history row, monitor line, safe point).
- ``mpi``: 2-rank ping-pong latency and bandwidth; ``concurrency``: the measured over the modelled
  2-rank/1-rank time ratio of a one-shot state solve of the plugin (ranks sharing a node's memory).
- ``problem``: the options, name, S, S_val (None without validation data), Sc, p, G and which
  optional extensions of the batched forms the plugin has (``ahead=``, ``minus=``, ``grad=``), the
  facts ``predict`` reads.
"""
import json
import math
import os
import shlex
import sys
import time

import numpy as np

from . import model as pm

# ---- the subject: a plugin problem built from ocnet options ----------------------------------------
def build_problem(comm):
    """(spec, values, problem) built from PETSc's option database as ``ocnet`` builds them
    (ocnet.run.cli.run): the framework's and MGRIT's options and the plugin's declared ones are read
    (ranges checked); ``comm`` (mpi4py) is handed to the plugin.  PETSc must be initialised with the
    options.  Raises OcnetError for an unknown problem or a bad option value."""
    from petsc4py import PETSc

    from ..plugin.loader import load_problem_class
    from ..run.cli import framework_options, problem_options

    db = PETSc.Options()
    opts = framework_options()
    spec = opts.get("problem", db)
    cls = load_problem_class(spec)
    opts, _ = problem_options(cls, opts)
    values = opts.read(db)
    from ..plugin.problem import check_required
    problem = cls(values, comm)
    check_required(problem)
    return spec, values, problem


def unused_options():
    """Options in PETSc's database that building the problem did not read (TAO's and PETSc's own
    ``-tao_*``, ``-vec_*``, ``-options_*``, ``-log*`` aside): typos, or options of another problem."""
    from petsc4py import PETSc

    db = PETSc.Options()
    keep = ("tao_", "vec_", "options_", "log", "malloc", "help", "on_error", "fp_trap")
    return [k for k in db.getAll() if not db.used(k) and not k.startswith(keep)] if hasattr(db, "used") else []


class Arrays:
    """A plugin's states, caches, adjoints and parameters on K consecutive layers of one data set,
    from a forward sweep (opening, ``sweep``) and a backward sweep (``terminal``, ``sweep_adjoint``)
    at its initial parameters, laid out for the batched forms: forward forms take rows indexed by
    the point a step goes into (``thf``, ``nsf``, ``Cf``: K + 1 rows, row 0 unused), transposed ones
    by the step's layer (``th``, ``C``: K rows).  U, Lam (K + 1, S); G (K, p)."""

    def __init__(self, problem, values, data, K, comm):
        from ..base.grid import LayerGrid
        from ..mgrit.serial import LayerSerial
        from ..optim.layout import Design, Trajectory

        self.problem, self.data, self.K = problem, data, K
        self.grid = LayerGrid.from_comm(K, values["T"], comm)
        design = Design(self.grid, problem, comm)
        x = design.initial(values["seed"], replicated=True)
        g, th = design.split(design.local(x))
        self.g = None if g is None else np.array(g)  # rank 0's (the opening's)
        self.th = np.array(th)
        self.h = self.grid.h
        self.traj = Trajectory(self.grid, problem.state_size(data), problem.cache_size(data), comm)
        self.lam = Trajectory(self.grid, problem.state_size(data), 0, comm)
        serial = LayerSerial(self.grid, problem, comm)
        self.g_last = serial.share_global(self.g)  # the last rank's (the terminal's)
        serial.forward(self.g, self.th, data, self.traj)
        self.grad_g = np.zeros(problem.global_param_size)
        if self.grid.last:
            problem.terminal(self.g_last, data, self.traj.U[-1], self.lam.U[-1], self.grad_g)
        self.G = np.zeros_like(self.th)
        serial.adjoint(self.g, self.th, data, self.traj, self.lam, self.G, self.grad_g)
        self.S, self.Sc = self.traj.U.shape[1], self.traj.Cfull.shape[1]
        self.U, self.Cf, self.C, self.Lam = self.traj.U, self.traj.Cfull, self.traj.C, self.lam.U
        self.thf = np.vstack([self.th[:1], self.th])
        self.ns = np.arange(K, dtype=np.int64)
        self.nsf = np.concatenate([[0], self.ns]).astype(np.int64)
        self.out = np.empty((K, self.S))

    def forms(self):
        """{kind: (call on all K layers, call on one)}: the plugin's batched forms (idempotent:
        each recomputes the same rows, the gradients accumulate into scratch)."""
        pb, K, h = self.problem, self.K, self.h
        th, thf, U, C, Cf, L, G, ns, nsf, out = (self.th, self.thf, self.U, self.C, self.Cf, self.Lam, self.G,
                                                   self.ns, self.nsf, self.out)
        run = lambda a, b: np.array([[a, b]], np.int64)
        return {
            "forward": (lambda: pb.sweeps(run(1, K), nsf, h, thf, U, Cf, cache=True),
                        lambda: pb.sweeps(run(1, 1), nsf, h, thf, U, Cf, cache=True)),
            "serial_forward": (lambda: pb.sweep(0, h, th, U, C),
                               lambda: pb.sweep(0, h, th[:1], U[:2], C[:1])),
            "adjoint": (lambda: pb.sweeps_adjoint(run(0, K - 1), ns, h, th, U, C, L),
                        lambda: pb.sweeps_adjoint(run(0, 0), ns, h, th, U, C, L)),
            "serial_adjoint": (lambda: pb.sweep_adjoint(0, h, th, U, C, L, G),
                               lambda: pb.sweep_adjoint(0, h, th[:1], U[:2], C[:1], L[:2], G[:1])),
            "gradient": (lambda: pb.parameter_gradient(0, h, th, U, C, L, G),
                         lambda: pb.parameter_gradient(0, h, th[:1], U[:2], C[:1], L[:2], G[:1])),
            "steps": (lambda: pb.steps(np.arange(1, K + 1), nsf, h, thf, U, Cf, out, np.arange(K), cache=False),
                      lambda: pb.steps(np.arange(1, 2), nsf, h, thf, U, Cf, out, np.arange(1), cache=False)),
        }


#: bytes per (layers x state) array of the calibration: a plugin with a large state is timed on fewer
#: layers (at least MIN_LAYERS), so that its four trajectories fit in memory
ARRAY_BYTES = 512 << 20
MIN_LAYERS = 16


def layers_for(S, want):
    """Layers to time a state of S doubles on: ``want``, fewer where (want + 1) S doubles would
    exceed ARRAY_BYTES, never fewer than MIN_LAYERS."""
    return int(min(want, max(MIN_LAYERS, ARRAY_BYTES // (8 * max(S, 1)) - 1)))


def _best(fn, repeat):
    """Best of ``repeat`` CPU times of fn() (s), after one untimed call (JIT, first touch)."""
    fn()
    best = math.inf
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def _line(points):
    """[a, b] of a + b S through measured (S, seconds) points: the line through the two
    extreme sizes; one size: proportional to S (a = 0)."""
    pts = sorted(points)
    if len(pts) == 1 or pts[0][0] == pts[-1][0]:
        S, t = pts[-1]
        return [0.0, t / max(S, 1)]
    (S1, t1), (S2, t2) = pts[0], pts[-1]
    b = (t2 - t1) / (S2 - S1)
    return [t1 - b * S1, b]


def time_forms(arrays, repeat):
    """{kind: (seconds per step, seconds per call)} of the plugin's batched forms on ``arrays``."""
    out = {}
    K = arrays.K
    for kind, (many, one) in arrays.forms().items():
        tm, t1 = _best(many, repeat), _best(one, repeat)
        step = max(tm - t1, 0.0) / (K - 1)
        out[kind] = (step, max(t1 - step, 0.0))
    return out


def time_in_cycle(arrays, repeat, comm):
    """(seconds per C-point step, seconds per copied double) inside a two-level MGRIT cycle
    (cfactor 4, F-relaxation) of the plugin on ``arrays``: each timed right after an F-relaxation
    has swept the trajectory through the caches, as in a cycle."""
    from ..mgrit import rowops
    from ..mgrit.solver import MGRIT, MGRITSettings

    st = MGRITSettings(levels=2, cfactor=(4,), relax="F", max_it=1, rtol=0.0, atol=0.0)
    m = MGRIT(arrays.grid, arrays.problem, comm, st, arrays.S, arrays.Sc, arrays.traj)
    m.solve(arrays.th)
    f, c = m.levels
    rows = f.c_rows
    crow = f.coarse_rows(rows, c)

    def after_sweep(op):
        best = math.inf
        for _ in range(repeat + 1):
            f.f_relaxed = False
            m.f_relax(f, cache=False)  # the caches now hold the last F-rows, as in a cycle
            t = time.process_time()
            op()
            best = min(best, time.process_time() - t)
        return best

    t_many = after_sweep(lambda: m._steps(f, rows, f.work[0], cache=True))
    t_one = after_sweep(lambda: m._steps(f, rows[:1], f.work[0], cache=True))
    copy = after_sweep(lambda: rowops.copy_rows(c.U, crow, f.U, rows)) / (len(rows) * arrays.S)
    return max(t_many - t_one, 0.0) / max(len(rows) - 1, 1), copy


def time_adjoint_cycle(arrays, repeat, comm):
    """Seconds per transposed step of the finest level's F-relaxation inside a two-level adjoint
    MGRIT cycle (cfactor 4) of the plugin on ``arrays``: runs of 3 layers between C-points (and the
    look-ahead into each C-point where the plugin's sweeps_adjoint takes ahead=), whose first
    adjoint row and every state and cache row come from memory — measured up to 1.2x the long
    sweep of ``time_forms`` (tanh ResNet, 5000 samples)."""
    from types import SimpleNamespace

    from ..mgrit.adjoint import AdjointMGRIT
    from ..mgrit.solver import MGRITSettings

    st = MGRITSettings(levels=2, cfactor=(4,), relax="F", max_it=1, rtol=0.0, atol=0.0)
    am = AdjointMGRIT(arrays.grid, arrays.problem, comm, st, arrays.traj, arrays.Sc)
    am.solve_adjoint(arrays.th, arrays.traj, SimpleNamespace(U=np.empty_like(arrays.Lam)), arrays.Lam[-1].copy())
    f = am.levels[0]
    _, nc, nf = pm.level_counts(arrays.K, 1, 1, 4, reverse=True)
    n = int(nf[0] + (nc[0] if am._ahead else 0))

    def relax():
        f.f_relaxed = False
        am.f_relax(f, cache=False)

    return _best(relax, repeat) / max(n, 1)


class NoOp:
    """Factory of a plugin whose steps do nothing (state size 8, one parameter per layer): what
    remains of an MGRIT solve or an evaluation is ocnet's own work (indexing, halos, norms, sums)."""

    @staticmethod
    def make(comm):
        from ..plugin.problem import ControlProblem

        class _NoOp(ControlProblem):
            name = "noop"
            layer_param_size, global_param_size = 1, 0
            regularization_options = None
            datasets = {"train": None}

            def state_size(self, data):
                return 8

            def opening(self, g, data, u0):
                u0[:] = 1.0

            def step(self, n, h, theta, u, out, cache):
                pass

            def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
                pass

            def sweep(self, n0, h, thetas, U, C, F=None):
                pass

            def sweep_adjoint(self, n0, h, thetas, U, C, Lam, G, F=None):
                pass

            def parameter_gradient(self, n0, h, thetas, U, C, Lam, G, rows=None):
                pass

            def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True, ahead=None):
                pass

            def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True, minus=False):
                pass

            def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None, ahead=None, grad=None):
                pass

            def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None, minus=False):
                pass

            def terminal(self, g, data, uN, lamN, grad_g):
                lamN[:] = 0.0
                return 0.0

        return _NoOp({}, comm)


def framework_overheads(cal, repeat, N=64):
    """ocnet's own costs, measured with the NoOp plugin: per MGRIT operation (fixed cycles: 3
    levels, cfactor 4, FCF, 2 cycles; the time over the model's operation count, the row copies
    of 8 doubles taken off) and per objective + gradient evaluation besides the plugin's calls."""
    from petsc4py import PETSc

    from ..base.grid import LayerGrid
    from ..mgrit.solver import MGRIT, MGRITSettings
    from ..optim.objective import ReducedObjective

    comm = PETSc.COMM_SELF.tompi4py()
    pb = NoOp.make(comm)
    obj = ReducedObjective(LayerGrid.from_comm(N, 1.0, comm), pb, comm)
    x = obj.design.initial(0, replicated=True)
    gv = x.duplicate()
    evaluation = _best(lambda: obj.evaluate(x, gv), repeat)
    _, th = obj.design.split(obj.design.local(x))
    st = MGRITSettings(levels=3, cfactor=(4,), relax="FCF", max_it=2, rtol=0.0, atol=0.0)
    m = MGRIT(obj.grid, pb, comm, st, 8, 0, obj.state)
    t = _best(lambda: m.solve(th), repeat)
    c = pm.mgrit_counts(N, 1, pm.Solver(levels=3, cfactor=(4,), relax="FCF", its=2))
    return max(t - c.copies * cal["copy"] * 8, 0.0) / c.ops, evaluation


def iteration_overhead(repeat, N=64, its=30):
    """Seconds per iteration of ocnet's bookkeeping around TAO (the Trainer: its callbacks, the
    history row, its CSV line and monitor line, the safe point): a Trainer's solve, with a run
    folder, less a bare TAO lmvm solve of the same objective (the same iterations and evaluations),
    over the iterations.  The objective: the NoOp plugin with a diagonal quadratic layer
    regularisation (condition 1e3, so that lmvm takes ``its`` iterations), and training and
    validation data sets (tokens: its steps ignore them), so that every row's metrics take ocnet's
    path, a validation forward solve included, whose plugin work the model counts apart."""
    import io
    import tempfile
    from contextlib import redirect_stdout

    from petsc4py import PETSc

    from ..base.grid import LayerGrid
    from ..optim.objective import ReducedObjective
    from ..optim.optimize import Trainer
    from ..run import rundir

    comm = PETSc.COMM_SELF.tompi4py()
    pb = NoOp.make(comm)
    d = np.geomspace(1.0, 1e3, N)

    def quadratic(h, n0, n, thetas, prev, nxt, grad):
        w = d[n0:n0 + thetas.shape[0], None]
        grad += w * thetas
        return 0.5 * np.sum(w * thetas * thetas, axis=1)

    pb.layer_regularization = quadratic
    pb.datasets = {"train": "train", "val": "val"}
    obj = ReducedObjective(LayerGrid.from_comm(N, 1.0, comm), pb, comm)
    x = obj.design.initial(0, replicated=True)
    db = PETSc.Options()
    mine = {"tao_type": "lmvm", "tao_max_it": str(its), "tao_gatol": "0", "tao_grtol": "0", "tao_gttol": "0"}
    kept = {k: db.getString(k) if db.hasName(k) else None for k in mine}  # (the user's, put back after)
    for k, v in mine.items():
        db.setValue(k, v)
    sink = io.StringIO()

    def trainer():
        x.set(1.0)
        with tempfile.TemporaryDirectory() as run_dir, redirect_stdout(sink):
            tr = Trainer(obj, comm, True, run_dir=run_dir, files=rundir,
                         on_row=lambda row: print(" ".join(f"{k} {v}" for k, v in row.items())))
            t = time.process_time()
            tr.solve(x)
            t = time.process_time() - t
            n = (tr.tao.getIterationNumber(), tr.evaluations)
            tr.tao.destroy()
        return t, n

    def bare():
        x.set(1.0)
        tao = PETSc.TAO().create(comm=PETSc.COMM_SELF)
        calls = [0]

        def objgrad(tao, y, g):
            calls[0] += 1
            return obj.evaluate(y, g)

        tao.setObjectiveGradient(objgrad, x.duplicate())
        tao.setFromOptions()
        t = time.process_time()
        tao.solve(x)
        t = time.process_time() - t
        n = (tao.getIterationNumber(), calls[0])
        tao.destroy()
        return t, n

    try:
        trainer(), bare()  # (untimed: first calls)
        runs = [(trainer(), bare()) for _ in range(max(repeat, 3))]
    finally:
        for k, v in kept.items():
            db.delValue(k) if v is None else db.setValue(k, v)
    (_, n_t), (_, n_b) = runs[0]
    if n_t != n_b or n_t[0] < 1:  # (the same optimiser on the same objective: never seen)
        raise RuntimeError(f"iteration overhead: the Trainer took {n_t} iterations/evaluations, bare TAO {n_b}")
    return max(min(t for (t, _), _ in runs) - min(t for _, (t, _) in runs), 0.0) / n_t[0]


def plugin_overheads(arrays, val, repeat):
    """The plugin's per-evaluation calls besides its solves: opening + terminal + opening_adjoint +
    global_regularization (s); layer_regularization on n layers as [a, b] (a + b n, s); metrics on
    the training state and (``val``: Arrays of the validation data, or None) the validation state.
    ``arrays``: of the training data, on one rank."""
    pb, g, d = arrays.problem, arrays.g, arrays.data
    u0, lam = np.empty(arrays.S), np.empty(arrays.S)
    gg = np.zeros(pb.global_param_size)
    once = _best(lambda: pb.opening(g, d, u0), repeat) \
        + _best(lambda: pb.terminal(arrays.g_last, d, arrays.U[-1], lam, gg), repeat) \
        + _best(lambda: pb.opening_adjoint(g, d, arrays.Lam[0], gg), repeat) \
        + _best(lambda: pb.global_regularization(g, gg), repeat)
    K, th = arrays.K, arrays.th
    Gs = np.zeros_like(th)
    h = arrays.h
    tK = _best(lambda: pb.layer_regularization(h, 1, K + 2, th, th[0], th[-1], Gs), repeat)
    t1 = _best(lambda: pb.layer_regularization(h, 1, K + 2, th[:1], th[0], th[-1], Gs[:1]), repeat)
    b = max(tK - t1, 0.0) / (K - 1)
    metrics = _best(lambda: pb.metrics(arrays.g_last, d, arrays.U[-1]), repeat)
    if val is not None:
        metrics += _best(lambda: pb.metrics(val.g_last, val.data, val.U[-1]), repeat)
    return once, [max(t1 - b, 0.0), b], metrics


def _extensions(pb):
    """Which optional extensions of the batched forms the plugin has (MGRIT and AdjointMGRIT
    check the same signatures): look-ahead, in-place FAS subtraction, the fused gradient."""
    from ..plugin.problem import accepts

    return {"ahead": accepts(pb.sweeps, "ahead"), "minus": accepts(pb.steps, "minus"),
            "adjoint_ahead": accepts(pb.sweeps_adjoint, "ahead"), "adjoint_minus": accepts(pb.steps_adjoint, "minus"),
            "fuse": accepts(pb.sweeps_adjoint, "grad") and accepts(pb.parameter_gradient, "rows")}


def other_runnable(samples=5, pause=0.1):
    """Processes runnable besides this one right now (median of ``samples`` reads of Linux's
    /proc/loadavg, ``pause`` s apart), or None where there is no such file.  Instantaneous, unlike
    the load average, which still counts a job that ended a minute ago."""
    counts = []
    for k in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if k + 1 < samples:
            time.sleep(pause)
    return sorted(counts)[len(counts) // 2]


def busy_warning(others, cpus):
    """The warning line when ``others`` processes are runnable besides the calibration, or None."""
    if not others:
        return None
    return (f"ocnet: warning: {others} other process{'es' if others > 1 else ''} running on {cpus} CPUs before "
            "calibrating: their share of the machine enters every timing and the concurrency factor "
            "(calibrate on a quiet machine)")


def calibrate(out, args, steps=256, quick=False, say=print, launcher=None):
    """Measure the unit costs of the plugin problem given by ocnet options ``args`` (a list, e.g.
    ["-problem", "heat", "-nx", "512"]; PETSc must be initialised with them) on ``steps`` layers
    (fewer for a large state: ``layers_for``), write them as JSON to ``out`` and return them (dict;
    keys in the module docstring; seconds, sizes in doubles).  Raises OcnetError for a bad problem
    or option, RuntimeError when an MPI calibration run fails.  ``launcher``: the command prefix
    that starts n ranks, a format string with ``{n}`` (e.g. "srun -n {n}"; None: ocnet's mpiexec)."""
    from petsc4py import PETSc

    from ..base.errors import OcnetError

    if steps < 8:
        raise OcnetError(f"--steps {steps}: at least 8 layers")
    repeat = 3 if quick else 11
    comm = PETSc.COMM_SELF.tompi4py()
    spec, values, pb = build_problem(comm)
    from ..base.options import closest_name
    for k in unused_options():  # (before the timings, which take minutes: a typo is seen at once)
        close = closest_name(k, sorted(values))
        print(f"ocnet: warning: option -{k} was given but never used" + (f" (did you mean -{close}?)" if close else ""),
              file=sys.stderr, flush=True)
    sets = {"train": pb.datasets.get("train")}
    if sets["train"] is None:
        raise OcnetError(f"problem '{spec}' has no 'train' data set")
    if pb.datasets.get("val") is not None:
        sets["val"] = pb.datasets["val"]
    big = max(max(pb.state_size(d), pb.cache_size(d)) for d in sets.values())
    K = layers_for(big, steps)
    say(f"calibrating problem '{spec}' ({pb.name}): " + ", ".join(
        f"{k} S = {pb.state_size(d)}" for k, d in sets.items()) + f", p = {pb.layer_param_size}, {K} layers"
        + (f" (not {steps}: {big} doubles per state)" if K < steps else ""))
    others, load = other_runnable(), os.getloadavg()[0]  # other work enters every timing below
    warning = busy_warning(others, os.cpu_count())
    if warning:
        print(warning, file=sys.stderr, flush=True)
    arrays = {k: Arrays(pb, values, d, K, comm) for k, d in sets.items()}
    calls, points = {}, {}
    for k, arr in arrays.items():
        for kind, (step, call) in time_forms(arr, repeat).items():
            points.setdefault(kind, []).append((arr.S, step))
            calls.setdefault(kind, []).append((arr.S, call))
    cal = {"steps": {k: _line(v) for k, v in points.items()}, "calls": {k: _line(v) for k, v in calls.items()},
           "steps_points": points, "steps_meta": {"layers": K, "repeat": repeat}}
    # C-point steps and copies as they run inside a cycle (train; val where it differs in size)
    tr = arrays["train"]
    pts = []
    for k, arr in arrays.items():
        point, copy = time_in_cycle(arr, repeat, comm)
        pts.append((arr.S, point))
        if k == "train":
            cal["copy"] = copy
    cal["steps"]["point"] = _line(pts)
    cal["steps"]["adjoint_cycle"] = _line([(tr.S, time_adjoint_cycle(tr, repeat, comm))])
    fwd = pm.step_cost(cal, "forward", tr.S)
    ratio = pm.step_cost(cal, "point", tr.S) / fwd if fwd > 0 else 1.0
    cal["steps"]["point_adjoint"] = [v * ratio for v in cal["steps"]["adjoint"]]
    once, reg, metrics = plugin_overheads(tr, arrays.get("val"), repeat)
    mgrit_op, evaluation = framework_overheads(cal, repeat)
    opt = [(n, _tao_overhead(PETSc, n)) for n in (10_000, 200_000)]
    cal["overhead"] = {"mgrit_op": mgrit_op, "evaluation": evaluation + once, "evaluation_framework": evaluation,
                       "regularization": reg, "metrics": metrics, "optimiser": pm._fit(*zip(*opt)),
                       "optimiser_points": opt, "iteration": iteration_overhead(repeat)}
    cal["problem"] = {"args": list(args), "spec": spec, "name": pb.name, "S": tr.S,
                      "S_val": arrays["val"].S if "val" in arrays else None, "Sc": tr.Sc,
                      "p": pb.layer_param_size, "G": pb.global_param_size, "extensions": _extensions(pb)}
    during = other_runnable()  # (work that started after the first check: a test job's next run)
    if not warning:
        late = busy_warning(during, os.cpu_count())
        if late:
            print(late.replace("before calibrating", "while calibrating"), file=sys.stderr, flush=True)
    say("timed the batched forms; MPI ping-pong and the 2-rank concurrency run next")
    cal["mpi"] = calibrate_mpi(launcher)
    cal["concurrency"] = calibrate_concurrency(cal, args, N=max(64, layers_for(big, 512)), repeat=3 if quick else 5,
                                               launcher=launcher)
    cal["machine"] = {"cpus": os.cpu_count(), "cpu": cpu_model(),
                      "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": load,
                      "other_processes": others, "other_processes_during": during}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(cal, f, indent=1)
    return cal


def cpu_model():
    """The CPU's model name (lscpu's 'Model name', from /proc/cpuinfo), or '' where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _tao_overhead(PETSc, n, its=30):
    """Seconds per iteration of TAO lmvm's own work on a cheap separable quadratic of size n."""
    x = PETSc.Vec().createSeq(n)
    x.set(1.0)
    d = PETSc.Vec().createSeq(n)
    d.setArray(np.linspace(1.0, 10.0, n))
    calls = [0.0]

    def objgrad(tao, x, g):
        t = time.process_time()
        g.pointwiseMult(d, x)
        f = 0.5 * g.dot(x)
        calls[0] += time.process_time() - t
        return f

    tao = PETSc.TAO().create(comm=PETSc.COMM_SELF)
    tao.setType("lmvm")
    tao.setObjectiveGradient(objgrad, x.duplicate())
    tao.setTolerances(gatol=0.0, grtol=0.0, gttol=0.0)
    tao.setMaximumIterations(its)
    t = time.process_time()
    tao.solve(x)
    total = time.process_time() - t
    k = max(tao.getIterationNumber(), 1)
    tao.destroy()
    return (total - calls[0]) / k


PINGPONG = r'''
import sys, time, json, numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
r = comm.Get_rank()
res = []
for n in (1, 1000, 40000, 400000):
    buf = np.zeros(n)
    best = 1e9
    for rep in range(30 if n < 100000 else 10):
        comm.Barrier(); t = time.perf_counter()
        if r == 0:
            comm.Send(buf, 1, 7); comm.Recv(buf, 1, 8)
        else:
            comm.Recv(buf, 0, 7); comm.Send(buf, 0, 8)
        best = min(best, (time.perf_counter() - t) / 2)
    res.append((8 * n, best))
if r == 0:
    print("PINGPONG", json.dumps(res))
'''


def _run(cmd, what, launcher, **kw):
    """subprocess.run of an MPI measurement; a launcher that is not there is a LaunchFailure."""
    import subprocess
    from types import SimpleNamespace
    try:
        return subprocess.run(cmd, capture_output=True, text=True, **kw)
    except OSError as e:
        raise LaunchFailure(what, cmd, SimpleNamespace(returncode=127, stdout="", stderr=str(e)), launcher) from None


def start_ranks(n, launcher=None):
    """The command prefix that starts ``n`` ranks: ``launcher`` (a format string with {n}, e.g.
    "srun -n {n}") or ocnet's mpiexec (bound to cores)."""
    if launcher:
        return shlex.split(launcher.format(n=n))
    from ..run.launch import mpiexec
    return mpiexec(n, bind=True)


class LaunchFailure(RuntimeError):
    """An MPI measurement's ranks did not run (the site's launcher, not the plugin): one line."""

    def __init__(self, what, cmd, p, launcher=None):
        last = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or ["no output"])[-1]
        how = (f"its ranks started with --launcher '{launcher}'" if launcher else
               "its ranks start with mpiexec from PATH unless --launcher gives the site's command, e.g. "
               "--launcher 'srun -n {n}' inside an allocation")
        super().__init__(f"calibrate: the {what} did not run (`{' '.join(cmd[:4])} ...` exit status {p.returncode}: "
                         f"{last}); {how}")


def calibrate_mpi(launcher=None):
    """Half round-trip times of 2-rank ping-pongs: latency (8 bytes) and bandwidth (large messages)."""
    for attempt in range(2):  # once, right after another MPI job ended, mpiexec printed nothing (twice in a row)
        cmd = start_ranks(2, launcher) + [sys.executable, "-c", PINGPONG]
        p = _run(cmd, "2-rank ping-pong", launcher, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("PINGPONG")]
        if line:
            break
        time.sleep(2)
    if not line:
        raise LaunchFailure("2-rank ping-pong", cmd, p, launcher)
    pts = json.loads(line[0].split(None, 1)[1])
    lat = pts[0][1]
    (b1, t1), (b2, t2) = pts[-2], pts[-1]
    bw = (b2 - b1) / max(t2 - t1, 1e-12)
    return {"latency": lat, "bandwidth": bw, "pingpong": pts}


# argv: root, N, repeat, then the problem's ocnet options (PETSc is initialised with them)
CONCURRENT = r'''
import sys, time, json
import petsc4py
sys.path.insert(0, sys.argv[1])
petsc4py.init(["ocnet"] + sys.argv[4:])
from petsc4py import PETSc
from mpi4py import MPI
from ocnet.mgrit.solver import MGRIT, MGRITSettings
from ocnet.perfmodel.calibration import Arrays, build_problem
comm = PETSc.COMM_WORLD.tompi4py()
spec, values, pb = build_problem(comm)
a = Arrays(pb, values, pb.datasets["train"], int(sys.argv[2]), comm)
st = MGRITSettings(levels=3, cfactor=(8,), relax="F", max_it=2, rtol=0.0, atol=0.0)
m = MGRIT(a.grid, pb, comm, st, a.S, a.Sc, a.traj)
m.solve(a.th)
best = 1e9
for rep in range(int(sys.argv[3])):
    comm.Barrier(); t = time.process_time()
    m.solve(a.th)
    t = comm.allreduce(time.process_time() - t, op=MPI.MAX)
    best = min(best, t)
if comm.Get_rank() == 0:
    print("CONCURRENT", json.dumps(best))
'''


def calibrate_concurrency(cal, args, N=512, repeat=5, launcher=None):
    """What the counts miss when several ranks run at once (they share the node's memory
    bandwidth and caches): a one-shot state solve (3 levels, cfactor 8, F, 2 cycles) of the plugin
    on N layers, on 1 and on 2 ranks bound to cores (CPU time of the slower rank, best of
    ``repeat``); the factor is the measured 2-rank/1-rank ratio over the ratio the model predicts
    for the same two solves (at least 1).  predict() scales the solve times of P > 1 runs by it."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    t = {}
    for P in (1, 2):
        cmd = start_ranks(P, launcher) + [sys.executable, "-c", CONCURRENT, root, str(N), str(repeat)] + list(args)
        p = _run(cmd, f"{P}-rank concurrency measurement", launcher, timeout=900,
                 env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("CONCURRENT")]
        if not line:
            if P == 1 or "Traceback" not in p.stderr:  # (a rank's Python error is a bug: reported in full)
                raise LaunchFailure(f"{P}-rank concurrency measurement", cmd, p, launcher)
            raise RuntimeError(f"concurrency calibration failed:\n{p.stdout}\n{p.stderr}")
        t[P] = json.loads(line[0].split(None, 1)[1])
    s = pm.Solver(levels=3, cfactor=(8,), relax="F", its=2, fixed=True, **pm.extension_flags(cal))
    S = cal["problem"]["S"]
    model = {P: pm.solve_time(cal, pm.mgrit_counts(N, P, s), S, "forward", P) for P in (1, 2)}
    return {"factor": max((t[2] / t[1]) / (model[2] / model[1]), 1.0), "measured": t, "model": model, "N": N}


def main(argv):
    """``calibrate`` sub-command: argv after the sub-command's name.  Returns the exit status."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m ocnet.perfmodel calibrate",
                                 description="measure the unit costs of a plugin problem's batched forms and of "
                                             "ocnet on this machine; write JSON",
                                 epilog="any further arguments are ocnet options of the problem (-options_file "
                                        "too), read as in a run")
    ap.add_argument("--problem", help="the problem (registered name or package.module:Class); default: -problem "
                                      "among the options, else ocnet's default")
    ap.add_argument("--out", default="runs/out/perf_calibration.json")
    ap.add_argument("--steps", type=int, default=256, help="layers of the timed sweeps (default 256)")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a rough calibration)")
    ap.add_argument("--launcher", default=None, help="the command that starts {n} ranks for the MPI measurements, "
                                                     "e.g. 'srun -n {n}' (default: mpiexec from PATH)")
    a, rest = ap.parse_known_args(argv)
    args = (["-problem", a.problem] if a.problem else []) + list(rest)
    from ..run.argv import unreadable_options_files

    bad = unreadable_options_files(["ocnet"] + args)
    if bad:
        print(f"ocnet: error: -options_file: cannot read '{bad}'", file=sys.stderr)
        return 2
    import petsc4py

    petsc4py.init(["ocnet"] + args)
    from petsc4py import PETSc

    from ..base.errors import OcnetError

    db = PETSc.Options()
    if not db.hasName("options_left"):  # unused options are reported below, one line each
        db.setValue("options_left", "0")
        db.getString("options_left")

    from ..base import threads
    threads.limit()  # one BLAS thread per process, as in a run (its children inherit the setting)
    if a.launcher is not None and "{n}" not in a.launcher:
        print(f"ocnet: error: --launcher '{a.launcher}': expected {{n}} where the rank count goes, e.g. "
              "'srun -n {n}'", file=sys.stderr)
        return 2
    import shutil
    if a.launcher is not None and not shutil.which((shlex.split(a.launcher) or [""])[0]):
        print(f"ocnet: error: --launcher '{a.launcher}': no command '{(shlex.split(a.launcher) or [''])[0]}' found "
              "(checked before the timings)", file=sys.stderr)
        return 2
    try:
        cal = calibrate(a.out, args, a.steps, a.quick, launcher=a.launcher)
    except (OcnetError, LaunchFailure) as e:
        print(f"ocnet: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: B902 - a plugin's bug: reported as a run reports it
        from ..run.cli import describe
        status, text = describe(e, PETSc.COMM_SELF.tompi4py())
        print(text, file=sys.stderr)
        return status
    pr = cal["problem"]
    print(f"problem {pr['spec']} ({' '.join(shlex.quote(x) for x in pr['args'])}): S = {pr['S']}, "
          f"S_val = {pr['S_val']}, p = {pr['p']}")
    for k in ("forward", "adjoint", "serial_adjoint", "gradient", "point"):
        print(f"  {k:15s} {1e6 * pm.step_cost(cal, k, pr['S']):9.2f} us per step")
    print(f"  MGRIT operation {1e6 * cal['overhead']['mgrit_op']:9.2f} us; evaluation overhead "
          f"{1e6 * cal['overhead']['evaluation']:.1f} us; concurrency factor {cal['concurrency']['factor']:.2f}")
    print(f"wrote {a.out}")
    return 0
