"""Performance model: predicted time per optimisation iteration of -mode serial|exact|oneshot.

    python -m ocnet.perfmodel calibrate [--out runs/out/perf_calibration.json]
    python -m ocnet.perfmodel predict   [--calibration FILE] [--Ns 1024,4096,16384] [--Ps 64,...,4096]

The model counts, for every rank, the forward, adjoint and gradient steps and the messages of each
operation of an MGRIT solve (the cycles of ocnet/mgrit/solver.py: F- and C-relaxation, FAS restriction,
the serial sweep of the coarsest level passed rank to rank, correction, residual norms) from the
same block distribution and C-point pattern as the solver.  An operation costs its slowest rank's
steps plus a fixed per-operation overhead plus its messages on the critical path (alpha + 8 S /
beta each, S doubles); operations follow each other (each waits for halos from its neighbours).
A layer-serial solve is a chain of N steps and P - 1 messages.  An optimisation iteration is
``evals`` objective+gradient evaluations (state solve, adjoint solve, parameter gradient) plus a
validation forward solve plus the optimiser's own work (a + b * design size).

Machine constants come from ``calibrate`` (JSON; CPU times, best of several): step costs per state size (forward with and
without cache, transposed, gradient, the serial adjoint-with-gradient step; each a + b * S per
batched call and per step), the MPI ping-pong latency and bandwidth (2 ranks), the per-operation
overhead of an MGRIT operation and the optimiser's per-iteration overhead, each measured here.
Reference: Guenther et al., SIMODS 2020, section 3 (MGRIT complexity), and Falgout et al., SISC
2014 (MGRIT) for the cycle structure.
"""
import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field, asdict

import numpy as np

from ..base.grid import block_bounds

RELAX_C = {"F": 0, "FCF": 1, "FCFCF": 2}


@dataclass
class Solver:
    """MGRIT settings that shape the work (as MGRITSettings; ``its``: cycles per solve)."""
    levels: int = 1
    cfactor: tuple = (4,)
    relax: str = "FCF"
    fine_relax: str = ""
    cycle: str = "V"
    its: float = 2.0
    fixed: bool = True  # one-shot: fixed cycles, residual once at the end; else to tolerance
    warm_skip: bool = False  # fixed cycles: no relaxation on the first cycle's way down
    ahead: bool = True  # the plugin's sweeps take ahead= (C-point look-ahead; the ResNet's do)
    minus: bool = True  # the plugin's steps take minus= (FAS right-hand side in place)

    def factor(self, level):
        return self.cfactor[min(level, len(self.cfactor) - 1)]


# ---- counting ------------------------------------------------------------------------------------
def level_counts(N, P, m, cf, reverse=False):
    """Per rank (arrays of length P): steps (rows > 0), C-point steps and F-point steps of the level
    whose points are fine indices j*m, as ocnet.mgrit.solver.Level lays it out.  ``reverse``: the adjoint's
    reversed grid (rank r owns the reversed block of rank P-1-r)."""
    _, j_lo, j_hi = _level_points(N, P, m, reverse)
    a = np.maximum(j_lo, 1)  # step rows: points a..j_hi (point 0 has no step)
    steps = np.maximum(j_hi - a + 1, 0)
    c = np.where(steps > 0, j_hi // cf - (a - 1) // cf, 0)
    return steps, c, steps - c


def _level_points(N, P, m, reverse=False):
    """Per rank: (is rank 0, first owned point j_lo, last owned point j_hi) of the level of
    spacing m (points j*m), as ocnet.mgrit.solver.Level lays it out (rank 0 also owns point 0)."""
    b = np.array([block_bounds(N, P, r) for r in range(P)], dtype=np.int64)
    if reverse:
        b = (N - b[::-1])[:, ::-1]
    first = np.arange(P) == 0
    lo = np.where(first, 0, b[:, 0] + 1)
    return first, -(-lo // m), b[:, 1] // m


def level_rows(N, P, m, reverse=False):
    """(p0, nrows) per rank of the level of spacing m, as ocnet.mgrit.solver.Level lays it out."""
    first, j_lo, j_hi = _level_points(N, P, m, reverse)
    p0 = np.where(first, 0, j_lo - 1)
    return p0, np.maximum(j_hi - p0 + 1, 1)


def adjoint_setup_steps(N, P, m):
    """Per (forward) rank: the coarse steps the adjoint's set-up takes on its level of spacing m,
    0 where AdjointMGRIT._from_state finds them all in the state MGRIT's level (views)."""
    p0s, ns = level_rows(N, P, m)
    p0a, na = level_rows(N, P, m, reverse=True)
    out = np.zeros(P)
    for r in range(P):
        q = P - 1 - r  # this rank's block on the reversed grid
        n = na[q]
        row0 = N // m - p0a[q] - (n - 1) - p0s[r]
        if N % m or n < 2 or row0 < 0 or row0 + n - 1 > ns[r] - 1:
            out[r] = max(n - 1, 0)
    return out


def _levels(N, s):
    """(m, cf) of each level, as MGRIT builds them (ocnet.mgrit.solver.hierarchy, -mgrit_min_coarse 2)."""
    from ..mgrit.solver import MGRITSettings, hierarchy

    return hierarchy(N, MGRITSettings(levels=s.levels, cfactor=s.cfactor, min_coarse=2))


@dataclass
class Counts:
    """Critical-path counts of one solve (or the sum of several) and per-rank totals."""
    fine: float = 0.0  # steps on the finest level (critical path)
    coarse: float = 0.0  # steps on coarser levels (critical path)
    messages: float = 0.0  # point-to-point messages of S doubles on the critical path
    collectives: float = 0.0  # allgathers / allreduces
    ops: float = 0.0  # MGRIT operations (one batched kernel call each, roughly)
    copies: float = 0.0  # row copies, subtractions and norms of S doubles (critical path)
    point: float = 0.0  # of fine + coarse: independent C-point steps (C-relaxation, restriction, residual)
    per_rank: dict = field(default_factory=dict)  # level -> steps per rank (array)

    def add(self, other, k=1.0):
        for f in ("fine", "coarse", "messages", "collectives", "ops", "copies", "point"):
            setattr(self, f, getattr(self, f) + k * getattr(other, f))
        for l, v in other.per_rank.items():
            self.per_rank[l] = self.per_rank.get(l, 0) + k * v
        return self


def serial_counts(N, P):
    """The layer-serial sweep: N steps in a chain through the ranks."""
    b = np.array([block_bounds(N, P, r) for r in range(P)])
    return Counts(fine=N, messages=P - 1, ops=P, per_rank={0: b[:, 1] - b[:, 0]})


def mgrit_counts(N, P, s, reverse=False, its=None):
    """Counts of one MGRIT solve with ``its`` cycles (default s.its): the fixed-cycle path
    (one-shot) or the tolerance loop (opening F-relaxation, a residual after every cycle).  A
    fractional count (an average over solves, e.g. 3.2) mixes the two neighbouring whole counts."""
    its = float(s.its if its is None else its)
    lo = math.floor(its)
    if its == lo:
        return _mgrit_counts(N, P, s, reverse, int(lo))
    w = its - lo
    return Counts().add(_mgrit_counts(N, P, s, reverse, lo), 1.0 - w).add(_mgrit_counts(N, P, s, reverse, lo + 1), w)


def _mgrit_counts(N, P, s, reverse, its):
    levs = _levels(N, s)
    if len(levs) == 1:
        return serial_counts(N, P)
    L = len(levs)
    lc = [level_counts(N, P, m, cf, reverse) for m, cf in levs]
    tot = Counts()
    fine_relaxed = [False] * L
    ahead = [False] * L  # as ocnet.mgrit.solver.Level.ahead: the C-point values of the last F-relaxation
    injected = [False] * L  # as Level.injected: the coarser level holds this level's C-points

    def changed(l):  # C-points changed (Level.f_relaxed = False)
        fine_relaxed[l] = ahead[l] = injected[l] = False

    def op(l, steps, msgs=1, coll=0, point=False):
        crit = float(np.max(steps)) if np.ndim(steps) else float(steps)
        if l == 0:
            tot.fine += crit
        else:
            tot.coarse += crit
        tot.point += crit if point else 0.0
        tot.messages += msgs if P > 1 else 0
        tot.collectives += coll if P > 1 else 0
        tot.ops += 1
        tot.per_rank[l] = tot.per_rank.get(l, 0) + (steps if np.ndim(steps) else np.full(P, steps))

    def f_relax(l):
        cf = levs[l][1]
        F = lc[l][2]
        # an F-interval that starts on the left neighbour waits for its halo: at most cf-1 steps
        # and as many ranks as it spans
        pts = max(float(np.max(lc[l][0])), 1.0)
        hops = 1 if pts >= cf - 1 else math.ceil((cf - 1) / pts)
        look = s.ahead and l < L - 1  # and the step into each C-point, in the same sweep
        op(l, F + lc[l][1] if look else F, msgs=hops)
        fine_relaxed[l], ahead[l] = True, look

    def c_relax(l):
        if ahead[l]:  # the look-ahead's values copied in
            tot.copies += float(np.max(lc[l][1]))
        else:
            op(l, lc[l][1], msgs=0, point=True)
        changed(l)

    def relax(l):
        kind = s.fine_relax if (l == 0 and s.fine_relax) else s.relax
        if not fine_relaxed[l]:
            f_relax(l)
        for _ in range(RELAX_C[kind]):
            c_relax(l)
            f_relax(l)

    def restrict(l):
        C = lc[l][1]
        # fine C-point steps (+ the coarse level's halo exchange); none after a look-ahead
        op(l, 0 if ahead[l] else C, msgs=1, point=True)
        ahead[l] = False
        op(l + 1, C, msgs=0, point=True)  # coarse steps at the same points
        # injection (not right after a correction), and the FAS subtraction (not with minus=)
        tot.copies += float(np.max(C)) * ((not injected[l]) + (not s.minus))
        changed(l + 1)

    def coarsest(l):
        steps = lc[l][0]
        crit = float(np.sum(steps))  # a chain through the ranks that own points (rank 0 does)
        tot.coarse += crit if l else 0.0
        tot.fine += crit if not l else 0.0
        tot.messages += int(np.count_nonzero(steps[1:])) if P > 1 else 0
        tot.ops += 1
        tot.per_rank[l] = tot.per_rank.get(l, 0) + steps
        changed(l)

    def cycle(l, kind, skip=False):
        if l == L - 1:
            coarsest(l)
            return
        if not skip:
            relax(l)
        restrict(l)
        cycle(l + 1, kind, skip)
        if kind == "F" and l + 1 < L - 1:
            cycle(l + 1, "V")
        changed(l)
        tot.copies += float(np.max(lc[l][1]))  # C-points from the coarse level
        injected[l] = True
        f_relax(l)  # correction

    def residual():  # the C-point steps: the last F-relaxation's look-ahead where there is one
        op(0, 0 if ahead[0] else lc[0][1], msgs=1, coll=1, point=True)
        tot.copies += float(np.max(lc[0][1]))  # the sums of squares

    if s.fixed:
        for k in range(its):
            cycle(0, s.cycle, skip=s.warm_skip and k == 0)
        residual()
    else:
        f_relax(0)
        residual()
        for _ in range(its):
            cycle(0, s.cycle)
            residual()
    return tot


# ---- the model -------------------------------------------------------------------------------------
@dataclass
class Config:
    """One run: N layers on P ranks; S, S_val: state sizes (doubles) of training and validation data;
    n_design: design size; evals: objective+gradient evaluations per iteration."""
    mode: str
    N: int
    P: int
    S: int = 8 * 5000
    S_val: int = 8 * 200
    n_design: int = 0
    p: int = 72  # parameters per layer
    state: Solver = field(default_factory=Solver)
    adjoint: Solver = field(default_factory=Solver)
    val_its: float = 2.0
    evals: float = 1.0

    def __post_init__(self):
        if not self.n_design:
            self.n_design = self.N * self.p + 64


def step_cost(cal, kind, S):
    """Seconds per step of ``kind`` at state size S (linear fit through the calibrated sizes)."""
    a, b = cal["steps"][kind]
    return a + b * S


def call_cost(cal, kind, S):
    a, b = cal["calls"][kind]
    return a + b * S


def msg(cal, S):
    return cal["mpi"]["latency"] + 8.0 * S / cal["mpi"]["bandwidth"]


#: the calibrated kind of an independent (C-point) step of a sweep kind; older calibrations
#: without it cost those steps as sweep steps
POINT_KIND = {"forward": "point", "adjoint": "point_adjoint"}


def solve_time(cal, c, S, step_kind, P):
    """Time of a solve's critical path from its counts: sweep steps (F-relaxation, coarsest
    level) at the sweep's cost, independent C-point steps (C-relaxation, restriction, residual:
    each reads its input state from memory, not from cache) at their own calibrated cost."""
    point = POINT_KIND.get(step_kind)
    point = point if point in cal["steps"] else step_kind
    t = (c.fine + c.coarse - c.point) * step_cost(cal, step_kind, S) + c.point * step_cost(cal, point, S)
    t += c.ops * (cal["overhead"]["mgrit_op"] + call_cost(cal, step_kind, S))
    t += c.messages * msg(cal, S) + c.collectives * cal["mpi"]["latency"] * max(math.log2(P), 1)
    return t + c.copies * cal["copy"] * S


def predict(cal, cfg):
    """{phase: seconds per iteration} and 'total' for one Config."""
    N, P = cfg.N, cfg.P
    out = {}
    if cfg.mode == "serial":
        out["state"] = N * step_cost(cal, "forward", cfg.S) + (P - 1) * msg(cal, cfg.S) + P * call_cost(cal, "forward", cfg.S)
        out["adjoint"] = N * step_cost(cal, "serial_adjoint", cfg.S) + (P - 1) * msg(cal, cfg.S) \
            + P * call_cost(cal, "serial_adjoint", cfg.S)
        out["gradient"] = 0.0
        out["validation"] = N * step_cost(cal, "forward", cfg.S_val) + (P - 1) * msg(cal, cfg.S_val) \
            + P * call_cost(cal, "forward", cfg.S_val)
    else:
        st = mgrit_counts(N, P, cfg.state)
        ad = mgrit_counts(N, P, cfg.adjoint, reverse=True)
        setup_s = (P > 1) * cal["mpi"]["latency"] * max(math.log2(P), 1) + 8.0 * cfg.p * N / cal["mpi"]["bandwidth"] * (P > 1)
        out["state"] = solve_time(cal, st, cfg.S, "forward", P) + setup_s
        # the adjoint's coarse levels linearise the coarse steps at the state once per solve
        # (none where the state MGRIT's levels hold them: AdjointMGRIT._from_state)
        state_ms = {m for m, _ in _levels(N, cfg.state)[1:]} if cfg.state.ahead else set()
        lin = sum(float(np.max(adjoint_setup_steps(N, P, m) if m in state_ms else level_counts(N, P, m, cf, True)[0]))
                  for m, cf in _levels(N, cfg.adjoint)[1:])
        out["adjoint"] = solve_time(cal, ad, cfg.S, "adjoint", P) + setup_s \
            + lin * (step_cost(cal, "forward", cfg.S) + cal["copy"] * cfg.S)
        nloc = -(-N // P)
        if cfg.adjoint.fixed and cfg.adjoint.ahead:
            # one-shot: the adjoint's last F-relaxation (and its look-ahead) forms every layer's
            # gradient from the g its transposed steps compute anyway: the extra cost of an
            # adjoint step with its gradient over one without (no separate pass, no call)
            extra = max(step_cost(cal, "serial_adjoint", cfg.S) - step_cost(cal, "adjoint", cfg.S), 0.0)
            out["gradient"] = nloc * extra
        else:
            out["gradient"] = nloc * step_cost(cal, "gradient", cfg.S) + call_cost(cal, "gradient", cfg.S)
        vs = Solver(**{**asdict(cfg.state), "its": cfg.val_its})
        vc = mgrit_counts(N, P, vs)
        out["validation"] = solve_time(cal, vc, cfg.S_val, "forward", P) + setup_s
    ev = cfg.evals
    for k in ("state", "adjoint", "gradient"):
        out[k] *= ev
    if P > 1:  # ranks running at once share the node (calibrate_concurrency; older calibrations: 1)
        for k in ("state", "adjoint", "gradient", "validation"):
            out[k] *= cal.get("concurrency", {}).get("factor", 1.0)
    out["evaluation"] = ev * cal["overhead"]["evaluation"] + (P > 1) * ev * (
        cal["mpi"]["latency"] * max(math.log2(P), 1) + 8.0 * cfg.n_design / cal["mpi"]["bandwidth"])
    out["optimiser"] = cal["overhead"]["optimiser"][0] + cal["overhead"]["optimiser"][1] * cfg.n_design
    out["total"] = sum(out.values())
    return out


# ---- calibration -----------------------------------------------------------------------------------
def _best(fn, repeat):
    """Best of ``repeat`` CPU times of fn() (s): on a shared machine wall time also counts the
    time the process waited for a core; CPU time does not (it still counts contended memory)."""
    fn()
    best = math.inf
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def _fit(x, y):
    """Least-squares a + b x (a clipped at 0)."""
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return [max(float(a), 0.0), float(b)]


def calibrate_steps(width=8, batches=(200, 1000, 5000), repeat=5, nsteps=256):
    """Per-step and per-call costs of the ResNet kernels (a + b S each), one thread, on arrays of
    ``nsteps`` states (larger than the caches at the larger batches, as in a training run)."""
    from ocnet_problems.resnet.dense import ResNet

    class _Net(ResNet):
        name = "calibration"

    v = {"width": width, "activation": "smoothrelu", "gamma_tik": 0.0, "gamma_ddt": 0.0, "gamma_class": 0.0,
         "init_open": 1.0, "init_layer": 1.0, "init_class": 1.0}
    pb = _Net(v, None, 2, 5, {})
    rng = np.random.default_rng(0)
    per, calls = {}, {}
    for B in batches:
        S = width * B
        n = nsteps
        th = np.stack([pb.initial_layer_parameters(k, rng) for k in range(n + 1)]) * 0.5
        U = rng.standard_normal((n + 1, S))
        C = np.abs(rng.standard_normal((n + 1, S)))
        L = rng.standard_normal((n + 1, S))
        G = np.zeros((n, th.shape[1]))
        ns = np.arange(n + 1)
        h = 1.0 / n
        run = np.array([[1, n]], np.int64)
        one = np.array([[1, 1]], np.int64)
        out = np.empty((n, S))
        kinds = {
            "forward": (lambda: pb.sweeps(run, ns, h, th, U, C, cache=True),
                        lambda: pb.sweeps(one, ns, h, th, U, C, cache=True)),
            "adjoint": (lambda: pb.sweeps_adjoint(np.array([[0, n - 1]], np.int64), ns, h, th, U, C, L),
                        lambda: pb.sweeps_adjoint(np.array([[0, 0]], np.int64), ns, h, th, U, C, L)),
            "gradient": (lambda: pb.parameter_gradient(0, h, th[:n], U, C[:n], L, G),
                         lambda: pb.parameter_gradient(0, h, th[:1], U[:2], C[:1], L[:2], G[:1])),
            "serial_adjoint": (lambda: pb.sweep_adjoint(0, h, th[:n], U, C[:n], L, G),
                               lambda: pb.sweep_adjoint(0, h, th[:1], U[:2], C[:1], L[:2], G[:1])),
            "steps": (lambda: pb.steps(np.arange(1, n + 1), ns, h, th, U, C, out, np.arange(n), cache=False),
                      lambda: pb.steps(np.arange(1, 2), ns, h, th, U, C, out, np.arange(1), cache=False)),
        }
        for k, (many, single) in kinds.items():
            tm, t1 = _best(many, repeat), _best(single, repeat)
            step = (tm - t1) / (n - 1)
            per.setdefault(k, []).append((S, step))
            calls.setdefault(k, []).append((S, max(t1 - step, 0.0)))
    fit = lambda d: {k: _fit([s for s, _ in v], [t for _, t in v]) for k, v in d.items()}
    # a row copy (jitted, as MGRIT's injection, correction and FAS subtraction) per double
    from ..mgrit import rowops
    rows = np.arange(0, nsteps, 4)
    t = _best(lambda: rowops.copy_rows(out, rows, U, rows + 1), repeat)
    copy = t / (len(rows) * U.shape[1])
    return fit(per), fit(calls), {"width": width, "batches": list(batches), "nsteps": nsteps}, copy


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


CONCURRENT = r'''
import sys, time, json
import petsc4py
petsc4py.init([])
sys.path.insert(0, sys.argv[1])
from ocnet.mgrit.solver import MGRIT, MGRITSettings
from ocnet.perfmodel.model import _peaks_objective
obj, x, th = _peaks_objective(int(sys.argv[2]), int(sys.argv[3]), world=True)
comm = obj.comm
st = MGRITSettings(levels=3, cfactor=(8,), relax="F", max_it=2, rtol=0.0, atol=0.0)
m = MGRIT(obj.grid, obj.problem, comm, st, obj.state.state_size, obj.problem.cache_size(obj.data), obj.state)
m.solve(th)
best = 1e9
for rep in range(int(sys.argv[4])):
    comm.Barrier(); t = time.perf_counter()
    m.solve(th)
    comm.Barrier(); best = min(best, time.perf_counter() - t)
if comm.Get_rank() == 0:
    print("CONCURRENT", json.dumps(best))
'''


def calibrate_concurrency(cal, N=512, batch=5000, repeat=7):
    """What the counts miss when several ranks run at once (they share the node's memory
    bandwidth and caches): a one-shot state solve (3 levels, cfactor 8, F, 2 cycles) of Peaks,
    N = 512, width 8 x 5000, on 1 and on 2 ranks bound to cores (best of ``repeat``); the factor
    is the measured 2-rank/1-rank time ratio over the ratio the model predicts for the same two
    solves (1.0: the model's critical path explains it).  predict() scales the state, adjoint,
    gradient and validation times of P > 1 runs by it."""
    import subprocess
    from ..run.launch import mpiexec

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    t = {}
    for P in (1, 2):
        p = subprocess.run(mpiexec(P, bind=True) + [sys.executable, "-c", CONCURRENT, root, str(N), str(batch),
                                                    str(repeat)], capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("CONCURRENT")]
        if not line:
            raise RuntimeError(f"concurrency calibration failed:\n{p.stdout}\n{p.stderr}")
        t[P] = json.loads(line[0].split(None, 1)[1])
    s = Solver(levels=3, cfactor=(8,), relax="F", its=2, fixed=True)
    model = {P: solve_time(cal, mgrit_counts(N, P, s), 8 * batch, "forward", P) for P in (1, 2)}
    return {"factor": max((t[2] / t[1]) / (model[2] / model[1]), 1.0), "measured": t, "model": model}


def calibrate_mpi():
    """Half round-trip times of 2-rank ping-pongs: latency (8 bytes) and bandwidth (large messages)."""
    import subprocess
    from ..run.launch import mpiexec

    p = subprocess.run(mpiexec(2, bind=True) + [sys.executable, "-c", PINGPONG], capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("PINGPONG")]
    if not line:
        raise RuntimeError(f"ping-pong failed:\n{p.stdout}\n{p.stderr}")
    pts = json.loads(line[0].split(None, 1)[1])
    lat = pts[0][1]
    (b1, t1), (b2, t2) = pts[-2], pts[-1]
    bw = (b2 - b1) / max(t2 - t1, 1e-12)
    return {"latency": lat, "bandwidth": bw, "pingpong": pts}


def _peaks_objective(N, batch, world=False):
    """(ReducedObjective, design, local thetas) of a Peaks problem of ``batch`` samples with its
    initial state u[0] set (rank 0): the calibration runs' subject; on one rank, or with
    ``world`` its layers distributed over PETSc's COMM_WORLD."""
    import petsc4py
    petsc4py.init([])
    from petsc4py import PETSc
    from ..run.cli import framework_options
    from ..base.grid import LayerGrid
    from ..optim.objective import ReducedObjective
    from ocnet_problems.peaks import Peaks

    comm = (PETSc.COMM_WORLD if world else PETSc.COMM_SELF).tompi4py()
    opts = framework_options()
    Peaks.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v.update(ntrain=batch, nval=0)
    obj = ReducedObjective(LayerGrid.from_comm(N, 1.0, comm), Peaks(v, comm), comm)
    x = obj.design.initial(0, replicated=True)
    g, th = obj.design.split(obj.design.local(x))
    if obj.grid.first:
        obj.problem.opening(g, obj.data, obj.state.U[0])
    return obj, x, th


def calibrate_overheads(cal, N=64, batch=50, repeat=5):
    """Per-operation overhead of an MGRIT operation (a tiny state, so the steps cost little: the
    measured time of fixed cycles minus the modelled step costs, divided by the operations), the
    per-evaluation overhead of the objective beyond the solves, and the optimiser's per-iteration
    cost (TAO lmvm on a quadratic of the design's size, a + b n)."""
    import petsc4py
    petsc4py.init([])
    from petsc4py import PETSc
    from ..mgrit.solver import MGRIT, MGRITSettings

    comm = PETSc.COMM_SELF.tompi4py()
    obj, x, th = _peaks_objective(N, batch)
    s = Solver(levels=3, cfactor=(4,), relax="FCF", its=2)
    st = MGRITSettings(levels=3, cfactor=(4,), relax="FCF", max_it=2, rtol=0.0, atol=0.0)
    m = MGRIT(obj.grid, obj.problem, comm, st, obj.state.state_size, obj.problem.cache_size(obj.data), obj.state)
    t = _best(lambda: m.solve(th), repeat)
    c = mgrit_counts(N, 1, s)
    S = obj.state.state_size
    model = (c.fine + c.coarse) * step_cost(cal, "forward", S) + c.ops * call_cost(cal, "forward", S)
    mgrit_op = max(t - model, 0.0) / c.ops
    # the objective beyond its solves: terminal, regularisation, sums (serial evaluate minus sweeps)
    gv = x.duplicate()
    t_eval = _best(lambda: obj.evaluate(x, gv), repeat)
    sweeps = N * (step_cost(cal, "forward", S) + step_cost(cal, "serial_adjoint", S)) \
        + call_cost(cal, "forward", S) + call_cost(cal, "serial_adjoint", S)
    evaluation = max(t_eval - sweeps, 0.0)
    opt = []
    for n in (10_000, 200_000):
        opt.append((n, _tao_overhead(PETSc, n)))
    return {"mgrit_op": mgrit_op, "evaluation": evaluation, "optimiser": _fit(*zip(*opt)),
            "optimiser_points": opt}


def calibrate_in_cycle(cal, N=128, batches=(1000, 5000), repeat=5):
    """C-point steps and row copies as they run inside an MGRIT cycle: each right after an
    F-relaxation has swept the trajectory through the caches, so its input rows come from memory
    (measured here up to 2x a sweep step, and copies several times the cached copy above).  Adds
    ``steps["point"]`` (a + b S per step, from the state's C-point steps), ``steps["point_adjoint"]``
    (the transposed steps scaled by the same factor over their sweep cost) and ``copy`` (per
    double) to ``cal``."""
    import petsc4py
    petsc4py.init([])
    from petsc4py import PETSc
    from ..mgrit import rowops
    from ..mgrit.solver import MGRIT, MGRITSettings

    comm = PETSc.COMM_SELF.tompi4py()
    pts, copies = [], []
    for B in batches:
        obj, _, th = _peaks_objective(N, B)
        st = MGRITSettings(levels=2, cfactor=(4,), relax="F", max_it=1, rtol=0.0, atol=0.0)
        m = MGRIT(obj.grid, obj.problem, comm, st, obj.state.state_size, obj.problem.cache_size(obj.data), obj.state)
        m.solve(th)
        f, c = m.levels
        S, rows = obj.state.state_size, f.c_rows
        crow = f.coarse_rows(rows, c)

        def after_sweep(op):
            best = float("inf")
            for _ in range(repeat):
                f.f_relaxed = False
                m.f_relax(f, cache=False)  # the caches now hold the last F-rows, as in a cycle
                t = time.perf_counter()
                op()
                best = min(best, time.perf_counter() - t)
            return best

        one = rows[:1]
        t_many = after_sweep(lambda: m._steps(f, rows, f.work[0], cache=True))
        t_one = after_sweep(lambda: m._steps(f, one, f.work[0], cache=True))
        pts.append((S, (t_many - t_one) / (len(rows) - 1)))
        copies.append(after_sweep(lambda: rowops.copy_rows(c.U, crow, f.U, rows)) / (len(rows) * S))
    a, b = _fit(*zip(*pts))
    S0 = pts[-1][0]
    ratio = (a + b * S0) / step_cost(cal, "forward", S0)
    adj = cal["steps"]["adjoint"]
    cal["steps"]["point"] = [a, b]
    cal["steps"]["point_adjoint"] = [adj[0] * ratio, adj[1] * ratio]
    cal["copy_cached"] = cal["copy"]
    cal["copy"] = copies[-1]
    return cal


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


def calibrate(out, quick=False):
    steps, calls, meta, copy = calibrate_steps(repeat=3 if quick else 21)
    cal = {"steps": steps, "calls": calls, "steps_meta": meta, "copy": copy}
    cal["mpi"] = calibrate_mpi()
    cal["overhead"] = calibrate_overheads(cal)
    calibrate_in_cycle(cal, repeat=3 if quick else 11)
    cal["concurrency"] = calibrate_concurrency(cal, repeat=3 if quick else 7)
    cal["machine"] = {"cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(cal, f, indent=1)
    return cal


def load(path):
    with open(path) as f:
        return json.load(f)


# ---- predictions beyond this machine ----------------------------------------------------------------
def mode_config(mode, N, P, state_its=2, adjoint_its=1, fine_relax="", relax=None, cf=None, evals=1.0,
                exact_its=(4, 4, 4)):
    """A Config with ocnet's defaults for ``mode`` (auto levels: coarsest grid at most 8 points;
    relax/cf None: the mode's default, -mgrit_relax F -mgrit_cfactor 8 in one-shot mode)."""
    from ..optim.modes import ONESHOT_MGRIT
    from ..mgrit.solver import MGRITSettings, auto_levels

    one = mode == "oneshot"
    relax = relax or (ONESHOT_MGRIT["relax"] if one else MGRITSettings.relax)
    cf = cf or (ONESHOT_MGRIT["cfactor"][0] if one else 4)
    levels = auto_levels(N, MGRITSettings(cfactor=(cf,)))
    fixed = mode == "oneshot"
    si, ai, vi = (state_its, adjoint_its, state_its) if fixed else exact_its
    mk = lambda its: Solver(levels=levels if mode != "serial" else 1, cfactor=(cf,), relax=relax,
                            fine_relax=fine_relax, its=its, fixed=fixed)
    return Config(mode, N, P, state=mk(si), adjoint=mk(ai), val_its=vi, evals=evals)


def crossover(cal, N, make=mode_config, Pmax=1 << 16, ratio=1.0, **kw):
    """Smallest P (powers of two) where one-shot beats layer-serial on 1 rank: per iteration, or
    with ``ratio`` = one-shot's iterations / serial's to an accuracy, in time to that accuracy."""
    ts = predict(cal, make("serial", N, 1))["total"]
    P = 1
    while P <= min(Pmax, N):
        if ratio * predict(cal, make("oneshot", N, P, **kw))["total"] < ts:
            return P
        P *= 2
    return None


def speedup_table(cal, Ns, Ps, **kw):
    rows = []
    for N in Ns:
        ts = predict(cal, mode_config("serial", N, 1))["total"]
        rows.append([N] + [ts / predict(cal, mode_config("oneshot", N, P, **kw))["total"] if P <= N else float("nan")
                           for P in Ps])
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m ocnet.perfmodel", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate", help="measure the machine constants, write JSON")
    c.add_argument("--out", default="runs/out/perf_calibration.json")
    c.add_argument("--quick", action="store_true")
    p = sub.add_parser("predict", help="predicted speed-up of one-shot over layer-serial on 1 rank")
    p.add_argument("--calibration", default="runs/out/perf_calibration.json")
    p.add_argument("--Ns", default="1024,2048,4096,8192,16384")
    p.add_argument("--Ps", default="64,128,256,512,1024,2048,4096")
    p.add_argument("--state_its", type=int, default=2)
    p.add_argument("--adjoint_its", type=int, default=1)
    p.add_argument("--fine_relax", default="")
    a = ap.parse_args(argv)
    if a.cmd == "calibrate":
        cal = calibrate(a.out, a.quick)
        print(json.dumps({k: cal[k] for k in ("steps", "mpi", "overhead")}, indent=1))
        print(f"wrote {a.out}")
        return 0
    cal = load(a.calibration)
    Ns = [int(n) for n in a.Ns.split(",")]
    Ps = [int(n) for n in a.Ps.split(",")]
    kw = dict(state_its=a.state_its, adjoint_its=a.adjoint_its, fine_relax=a.fine_relax)
    print(f"PREDICTED (model, calibration {a.calibration} of {cal['machine']['when']}): speed-up of one-shot "
          f"({a.state_its}+{a.adjoint_its} MGRIT its) per iteration over layer-serial on 1 rank")
    print("| N | " + " | ".join(f"P={P}" for P in Ps) + " | crossover P |")
    print("|---:|" + "---:|" * (len(Ps) + 1))
    for row in speedup_table(cal, Ns, Ps, **kw):
        print(f"| {row[0]} | " + " | ".join("-" if math.isnan(v) else f"{v:.1f}x" for v in row[1:])
              + f" | {crossover(cal, row[0], **kw)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
