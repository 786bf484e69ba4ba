"""Performance model: predicted time per optimisation iteration of -mode serial|exact|oneshot for a plugin problem.

    python -m ocnet.perfmodel calibrate --problem SPEC [--out FILE] [ocnet options of the problem ...]
    python -m ocnet.perfmodel predict   [--calibration FILE] [--Ns 1024,4096,16384] [--Ps 64,...,4096]

The model counts, for every rank, the forward, adjoint and gradient steps and the messages of each
operation of an MGRIT solve (the cycles of ocnet/mgrit/solver.py: F- and C-relaxation, FAS restriction,
the serial sweep of the coarsest level passed rank to rank, correction, residual norms) from the
same block distribution and C-point pattern as the solver.  An operation costs its slowest rank's
steps plus a fixed per-operation overhead plus its messages on the critical path (alpha + 8 S /
beta each, S doubles); operations follow each other (each waits for halos from its neighbours).
A layer-serial solve is a chain of N steps and P - 1 messages.  An optimisation iteration is
``evals`` objective+gradient evaluations (state solve, adjoint solve, parameter gradient, the
plugin's opening/terminal/regularisation) plus a validation forward solve and the metrics plus the
optimiser's own work (a + b * design size) and ocnet's bookkeeping per iteration.

The unit costs come from ``calibrate`` (ocnet/perfmodel/calibration.py), which times the given
plugin's own batched forms at its own state size S and parameter size p (JSON; CPU times, best of
several); ``predict`` reads S, S_val, p and the plugin's optional extensions from that file.  What
the model assumes is in docs/hpc/perfmodel.md (e.g. a step's cost is independent of the layer
index n and of the step size h).  Reference: Guenther et al., SIMODS 2020, section 3 (MGRIT
complexity), and Falgout et al., SISC 2014 (MGRIT) for the cycle structure.
"""
import argparse
import json
import math
import numbers
import sys
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
    fuse: bool = True  # adjoint: the plugin's sweeps_adjoint takes grad= (one-shot gradient in the last F-relaxation)

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
    """One run: N layers on P ranks.  S, S_val: state sizes (doubles) of the training and validation
    data (S_val 0: no validation data); p, G: parameters per layer and global; n_design: design size
    (N p + G); evals: objective+gradient evaluations per iteration.  None: from the calibration's
    problem (``resolved``)."""
    mode: str
    N: int
    P: int
    S: int = None
    S_val: int = None
    n_design: int = None
    p: int = None
    G: int = None
    state: Solver = field(default_factory=Solver)
    adjoint: Solver = field(default_factory=Solver)
    val_its: float = 2.0
    evals: float = 1.0

    def resolved(self, cal):
        """A copy with the sizes left None taken from ``cal["problem"]`` (the calibrated problem).
        Raises ValueError when the calibration has no problem section (an older calibration)."""
        pr = cal.get("problem")
        if pr is None and None in (self.S, self.S_val, self.p, self.G):
            raise ValueError("the calibration names no problem (it predates per-problem calibration): "
                             "run python -m ocnet.perfmodel calibrate --problem SPEC")
        pick = lambda v, k: pr[k] if v is None else v
        S, S_val, p, G = pick(self.S, "S"), pick(self.S_val, "S_val"), pick(self.p, "p"), pick(self.G, "G")
        n = self.n_design if self.n_design is not None else self.N * p + G
        return Config(self.mode, self.N, self.P, S, S_val or 0, n, p, G, self.state, self.adjoint, self.val_its,
                      self.evals)


def extension_flags(cal, adjoint=False):
    """Solver flags (ahead, minus; adjoint: and fuse) of the calibrated plugin's optional batched-form
    extensions; {} for a calibration without them (the Solver defaults: the ResNet's)."""
    e = cal.get("problem", {}).get("extensions")
    if e is None:
        return {}
    if adjoint:
        return {"ahead": e["adjoint_ahead"], "minus": e["adjoint_minus"], "fuse": e["fuse"]}
    return {"ahead": e["ahead"], "minus": e["minus"]}


def step_cost(cal, kind, S):
    """Seconds per step of ``kind`` at state size S (a + b S through the calibrated sizes, >= 0)."""
    a, b = cal["steps"][kind]
    return max(a + b * S, 0.0)


def call_cost(cal, kind, S):
    """Seconds per batched call of ``kind`` besides its steps at state size S (>= 0)."""
    a, b = cal["calls"][kind]
    return max(a + b * S, 0.0)


def msg(cal, S):
    return cal["mpi"]["latency"] + 8.0 * S / cal["mpi"]["bandwidth"]


#: the calibrated kind of an independent (C-point) step of a sweep kind; older calibrations
#: without it cost those steps as sweep steps
POINT_KIND = {"forward": "point", "adjoint": "point_adjoint"}


#: the calibrated kind of a sweep step inside an MGRIT cycle, where one differs from the long
#: sweep's (the adjoint's short F-runs: calibration.time_adjoint_cycle); older calibrations: none
CYCLE_KIND = {"adjoint": "adjoint_cycle"}


def solve_time(cal, c, S, step_kind, P):
    """Time of a solve's critical path from its counts: sweep steps (F-relaxation, coarsest
    level) at the sweep's cost in a cycle, independent C-point steps (C-relaxation, restriction,
    residual: each reads its input state from memory, not from cache) at their own calibrated cost."""
    point = POINT_KIND.get(step_kind)
    point = point if point in cal["steps"] else step_kind
    sweep = CYCLE_KIND.get(step_kind)
    sweep = sweep if sweep in cal["steps"] else step_kind
    t = (c.fine + c.coarse - c.point) * step_cost(cal, sweep, S) + c.point * step_cost(cal, point, S)
    t += c.ops * (cal["overhead"]["mgrit_op"] + call_cost(cal, step_kind, S))
    t += c.messages * msg(cal, S) + c.collectives * cal["mpi"]["latency"] * max(math.log2(P), 1)
    return t + c.copies * cal["copy"] * S


def _serial_chain(cal, kind, N, P, S, chunk=None):
    """A layer-serial sweep through P ranks: N steps, P - 1 messages, one call per rank (or, with
    ``chunk``, one per ``chunk`` layers: ``forward_last``, the evaluation data's serial solve)."""
    calls = P if chunk is None else sum(-(-(hi - lo) // chunk) for lo, hi in (block_bounds(N, P, r) for r in range(P)))
    return N * step_cost(cal, kind, S) + (P - 1) * msg(cal, S) + calls * call_cost(cal, kind, S)


def predict(cal, cfg):
    """{phase: seconds per iteration} and 'total' for one Config (sizes from the calibration's
    problem where the Config leaves them None)."""
    cfg = cfg.resolved(cal)
    N, P, S, Sv = cfg.N, cfg.P, cfg.S, cfg.S_val
    oh = cal["overhead"]
    nloc = -(-N // P)
    out = {}
    if cfg.mode == "serial":
        fw = "serial_forward" if "serial_forward" in cal["steps"] else "forward"
        out["state"] = _serial_chain(cal, fw, N, P, S)
        out["adjoint"] = _serial_chain(cal, "serial_adjoint", N, P, S)
        out["gradient"] = 0.0
        out["validation"] = _serial_chain(cal, fw, N, P, Sv, chunk=8) if Sv else 0.0
    else:
        st = mgrit_counts(N, P, cfg.state)
        ad = mgrit_counts(N, P, cfg.adjoint, reverse=True)
        setup_s = (P > 1) * cal["mpi"]["latency"] * max(math.log2(P), 1) + 8.0 * cfg.p * N / cal["mpi"]["bandwidth"] * (P > 1)
        out["state"] = solve_time(cal, st, S, "forward", P) + setup_s
        # the adjoint's coarse levels linearise the coarse steps at the state once per solve
        # (none where the state MGRIT's levels hold them: AdjointMGRIT._from_state)
        state_ms = {m for m, _ in _levels(N, cfg.state)[1:]} if cfg.state.ahead else set()
        lin = sum(float(np.max(adjoint_setup_steps(N, P, m) if m in state_ms else level_counts(N, P, m, cf, True)[0]))
                  for m, cf in _levels(N, cfg.adjoint)[1:])
        out["adjoint"] = solve_time(cal, ad, S, "adjoint", P) + setup_s \
            + lin * (step_cost(cal, "forward", S) + cal["copy"] * S)
        if cfg.adjoint.fixed and cfg.adjoint.fuse and len(_levels(N, cfg.adjoint)) > 1:
            # one-shot: the adjoint's last F-relaxation (and its look-ahead) forms the gradient of
            # the layers it sweeps from the g its transposed steps compute anyway: the extra cost of
            # an adjoint step with its gradient over one without; the C-points it does not reach
            # (no look-ahead) by parameter_gradient(rows=)
            extra = max(step_cost(cal, "serial_adjoint", S) - step_cost(cal, "adjoint", S), 0.0)
            rest = 0 if cfg.adjoint.ahead else nloc // cfg.adjoint.factor(0)
            out["gradient"] = (nloc - rest) * extra + (rest > 0) * (
                rest * step_cost(cal, "gradient", S) + call_cost(cal, "gradient", S))
        else:
            out["gradient"] = nloc * step_cost(cal, "gradient", S) + call_cost(cal, "gradient", S)
        if Sv:
            vs = Solver(**{**asdict(cfg.state), "its": cfg.val_its})
            out["validation"] = solve_time(cal, mgrit_counts(N, P, vs), Sv, "forward", P) + setup_s
        else:
            out["validation"] = 0.0
    ev = cfg.evals
    for k in ("state", "adjoint", "gradient"):
        out[k] *= ev
    if P > 1:  # ranks running at once share the node (calibrate_concurrency; older calibrations: 1)
        for k in ("state", "adjoint", "gradient", "validation"):
            out[k] *= cal.get("concurrency", {}).get("factor", 1.0)
    out["validation"] += oh.get("metrics", 0.0)
    a, b = oh.get("regularization", (0.0, 0.0))
    out["evaluation"] = ev * (oh["evaluation"] + a + b * nloc) + (P > 1) * ev * (
        cal["mpi"]["latency"] * max(math.log2(P), 1) + 8.0 * cfg.n_design / cal["mpi"]["bandwidth"])
    # TAO's own work and ocnet's bookkeeping around it (the history row; on P > 1 ranks its
    # broadcast and the safe point's reduction); calibrations before the bookkeeping was measured: 0
    out["optimiser"] = oh["optimiser"][0] + oh["optimiser"][1] * cfg.n_design + oh.get("iteration", 0.0) \
        + (P > 1) * 2 * cal["mpi"]["latency"] * max(math.log2(P), 1)
    out["total"] = sum(out.values())
    return out


def _fit(x, y):
    """Least-squares a + b x (a clipped at 0)."""
    b, a = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return [max(float(a), 0.0), float(b)]


def calibrate(out, args, steps=256, quick=False):
    """Calibrate for the plugin problem of ocnet options ``args`` (a list, e.g. ['-problem',
    'mymod:MyProblem', '-width', '16']; ocnet/perfmodel/calibration.py); returns the calibration
    dict and writes it to ``out``.  Initialises PETSc with ``args`` where it is not yet; raises
    OcnetError where it was initialised with other options (PETSc reads a process's options once:
    the calibration would time another problem than ``args`` names, and record ``args``)."""
    import sys

    from ..base.errors import OcnetError
    from .calibration import calibrate as run

    args = [str(a) for a in args]
    if "petsc4py.PETSc" not in sys.modules:
        import petsc4py
        petsc4py.init(["ocnet"] + args)
    else:
        from ..run.cli import _options_unread
        unread = _options_unread(["ocnet"] + args)
        if unread:
            raise OcnetError(f"calibrate: PETSc was initialised with other options than args ({unread}), and it "
                             "reads a process's options once: call calibrate before importing petsc4py.PETSc, "
                             "or petsc4py.init(['ocnet'] + args) first, or run python -m ocnet.perfmodel calibrate")
    return run(out, args, steps, quick)


def load(path):
    with open(path) as f:
        return json.load(f)


# ---- predictions beyond this machine ----------------------------------------------------------------
def mode_config(mode, N, P, state_its=2, adjoint_its=1, fine_relax="", relax=None, cf=None, evals=1.0,
                exact_its=(4, 4, 4), cal=None):
    """A Config with ocnet's defaults for ``mode`` (auto levels: coarsest grid at most 8 points;
    relax/cf None: the mode's default, -mgrit_relax F -mgrit_cfactor 8 in one-shot mode); ``cal``:
    the calibration whose plugin's batched-form extensions (ahead=, minus=, grad=) shape the
    counts (None: the ResNet's, all present).  Raises ValueError for a mode, relaxation or count
    the solver has not (the command line's checks: a misspelt mode predicted exact mode's times,
    negative evaluations negative times, P = 0 a ZeroDivisionError; tester 44)."""
    from ..optim.modes import ONESHOT_MGRIT
    from ..mgrit.solver import RELAXATIONS, MGRITSettings, auto_levels

    bad = [f"mode {mode!r} (serial, exact or oneshot)" for _ in [0] if mode not in ("serial", "exact", "oneshot")]
    bad += [f"{k} {v!r} (an integer >= 1)" for k, v in (("N", N), ("P", P))
            if not (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1)]
    # (counts may be averages, e.g. adaptive one-shot's: the model mixes the neighbouring whole
    # counts; `predict --state_its 2.4` in one-shot mode was a ValueError traceback)
    bad += [f"{k} {v!r} (a number >= 1)" for k, v in (("state_its", state_its), ("adjoint_its", adjoint_its))
            if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 1)]
    bad += [f"{k} {v!r} (one of {', '.join(RELAXATIONS)})" for k, v in (("relax", relax), ("fine_relax", fine_relax))
            if v not in (None, "") + RELAXATIONS]
    bad += [f"cf {cf!r} (an integer >= 2)" for _ in [0] if cf is not None and not (isinstance(cf, (int, np.integer))
                                                                                  and cf >= 2)]
    bad += [f"evals {evals!r} (a number > 0)" for _ in [0] if not (isinstance(evals, numbers.Real) and evals > 0)]
    if bad:
        raise ValueError("mode_config: " + "; ".join(bad))

    one = mode == "oneshot"
    relax = relax or (ONESHOT_MGRIT["relax"] if one else MGRITSettings.relax)
    cf = cf or (ONESHOT_MGRIT["cfactor"][0] if one else 4)
    levels = auto_levels(N, MGRITSettings(cfactor=(cf,)))
    fixed = mode == "oneshot"
    si, ai, vi = (state_its, adjoint_its, state_its) if fixed else exact_its
    mk = lambda its, adj: Solver(levels=levels if mode != "serial" else 1, cfactor=(cf,), relax=relax,
                                 fine_relax=fine_relax, its=its, fixed=fixed,
                                 **(extension_flags(cal, adj) if cal is not None else {}))
    return Config(mode, N, P, state=mk(si, False), adjoint=mk(ai, True), val_its=vi, evals=evals)


def crossover(cal, N, make=None, Pmax=1 << 16, ratio=1.0, mode="oneshot", **kw):
    """Smallest P (powers of two) where ``mode`` (one-shot, or exact) beats layer-serial on 1 rank:
    per iteration, or with ``ratio`` = its iterations / serial's to an accuracy, in time to that
    accuracy."""
    make = make or (lambda mode, n, P, **k: mode_config(mode, n, P, cal=cal, **k))
    ts = predict(cal, make("serial", N, 1))["total"]
    P = 1
    while P <= min(Pmax, N):
        if ratio * predict(cal, make(mode, N, P, **kw))["total"] < ts:
            return P
        P *= 2
    return None


def speedup_table(cal, Ns, Ps, evals=1.0, mode="oneshot", **kw):
    """Rows [N, speed-up at each P] of ``mode`` (one-shot or exact; ``kw``: its mode_config
    settings) over layer-serial on 1 rank, per iteration of ``evals`` objective/gradient
    evaluations (nan where P > N)."""
    rows = []
    for N in Ns:
        ts = predict(cal, mode_config("serial", N, 1, cal=cal, evals=evals))["total"]
        rows.append([N] + [ts / predict(cal, mode_config(mode, N, P, cal=cal, evals=evals, **kw))["total"]
                           if P <= N
                           else float("nan") for P in Ps])
    return rows


def main(argv=None):
    """``python -m ocnet.perfmodel calibrate|predict ...``; returns the exit status (2 and one
    line ``ocnet: error: ...`` on bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["calibrate"]:  # its own parser: the rest are ocnet options of the problem
        from .calibration import main as calibrate_main

        return calibrate_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m ocnet.perfmodel", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("calibrate", help="time a plugin problem's forms and ocnet's overheads, write JSON "
                                     "(calibrate --help: its options)")
    p = sub.add_parser("predict", help="predicted time per iteration and speed-up of one-shot over layer-serial "
                                       "on 1 rank, for the calibrated problem")
    p.add_argument("--calibration", default="runs/out/perf_calibration.json",
                   help="JSON written by calibrate (default: %(default)s)")
    p.add_argument("--Ns", default="1024,2048,4096,8192,16384", help="layer counts N, comma-separated")
    p.add_argument("--Ps", default="64,128,256,512,1024,2048,4096", help="rank counts P, comma-separated")
    p.add_argument("--mode", default="oneshot", choices=("oneshot", "exact"),
                   help="the layer-parallel mode to compare with layer-serial (default oneshot)")
    p.add_argument("--state_its", type=float, default=None, help="state MGRIT iterations per evaluation (default: "
                   "2 in one-shot, fixed; 4 in exact mode, per solve to its tolerance: a run's phases.json gives them)")
    p.add_argument("--adjoint_its", type=float, default=None, help="adjoint MGRIT iterations per evaluation (default: "
                   "1 in one-shot, 4 in exact mode)")
    p.add_argument("--cfactor", type=int, default=None, help="coarsening factor (default: the mode's, 8 in "
                   "one-shot, 4 in exact mode); levels as ocnet's default: coarsest grid of at most 8 points")
    p.add_argument("--relax", default=None, help=f"relaxation, as -mgrit_relax: {', '.join(RELAX_C)} (default: "
                   "the mode's, F in one-shot, FCF in exact mode)")
    p.add_argument("--evals", type=float, default=1.0, help="objective/gradient evaluations per iteration "
                   "(line-search trials included; a run's phases.json or runs/bench_modes.py's evals/it; default 1)")
    p.add_argument("--fine_relax", default="", help="relaxation on the finest level, as -mgrit_fine_relax: "
                   f"{', '.join(RELAX_C)} (default: the other levels')")
    p.add_argument("--latency", type=float, default=None, help="MPI message latency in seconds, e.g. a cluster "
                   "interconnect's 2e-6 (default: the calibration's ping-pong on this machine)")
    p.add_argument("--bandwidth", type=float, default=None, help="MPI bandwidth in bytes/s, e.g. 1e10 (default: "
                   "the calibration's)")
    a = ap.parse_args(argv)
    exact = a.mode == "exact"
    a.state_its = a.state_its if a.state_its is not None else (4 if exact else 2)
    a.adjoint_its = a.adjoint_its if a.adjoint_its is not None else (4 if exact else 1)
    try:
        Ns = [int(n) for n in a.Ns.split(",")]
        Ps = [int(n) for n in a.Ps.split(",")]
    except ValueError:
        print(f"ocnet: error: --Ns/--Ps: expected comma-separated integers, got '{a.Ns}' / '{a.Ps}'", file=sys.stderr)
        return 2
    if min(Ns + Ps) < 1 or min(a.state_its, a.adjoint_its) < 1 or not a.evals >= 1:
        print(f"ocnet: error: --Ns, --Ps, --state_its, --adjoint_its and --evals must be at least 1 (got --Ns "
              f"{a.Ns} --Ps {a.Ps} --state_its {a.state_its} --adjoint_its {a.adjoint_its} --evals {a.evals})",
              file=sys.stderr)
        return 2
    for name in ("fine_relax", "relax"):
        if getattr(a, name) and getattr(a, name) not in RELAX_C:
            print(f"ocnet: error: --{name} '{getattr(a, name)}': expected one of {', '.join(RELAX_C)}", file=sys.stderr)
            return 2
    if a.cfactor is not None and a.cfactor < 2:
        print(f"ocnet: error: --cfactor {a.cfactor}: at least 2", file=sys.stderr)
        return 2
    try:
        cal = load(a.calibration)
    except (OSError, ValueError) as e:
        print(f"ocnet: error: --calibration: cannot read '{a.calibration}' ({getattr(e, 'strerror', None) or e}); "
              "run python -m ocnet.perfmodel calibrate --problem SPEC first", file=sys.stderr)
        return 2
    for name in ("latency", "bandwidth"):
        value = getattr(a, name)
        if value is not None:
            if not (value > 0 and math.isfinite(value)):
                print(f"ocnet: error: --{name} {value}: a positive number", file=sys.stderr)
                return 2
            cal.setdefault("mpi", {})[name] = value
    if "problem" not in cal:
        print(f"ocnet: error: {a.calibration} names no problem (it predates per-problem calibration): run "
              "python -m ocnet.perfmodel calibrate --problem SPEC", file=sys.stderr)
        return 2
    kw = dict(fine_relax=a.fine_relax, relax=a.relax, cf=a.cfactor, mode=a.mode,
              **(dict(exact_its=(a.state_its, a.adjoint_its, a.state_its)) if exact else
                 dict(state_its=a.state_its, adjoint_its=a.adjoint_its)))
    pr = cal["problem"]
    print(f"PREDICTED (model, calibration {a.calibration} of {cal['machine']['when']}) for "
          f"{' '.join(pr['args'])}: S = {pr['S']}, S_val = {pr['S_val']}, p = {pr['p']}; MPI latency "
          f"{cal['mpi']['latency']:.3g} s, bandwidth {cal['mpi']['bandwidth']:.3g} B/s"
          + (" (given)" if a.latency is not None or a.bandwidth is not None else " (calibrated)"))
    print(f"time per iteration of {a.evals:g} evaluation(s) (--evals) on 1 rank, layer-serial: " + ", ".join(
        f"N = {N}: {1e3 * predict(cal, mode_config('serial', N, 1, cal=cal, evals=a.evals))['total']:.1f} ms"
        for N in Ns))
    what = "exact mode" if exact else "one-shot"
    from ..mgrit.solver import MGRITSettings
    from ..optim.modes import ONESHOT_MGRIT
    relax = a.relax or (MGRITSettings.relax if exact else ONESHOT_MGRIT["relax"])
    cf = a.cfactor or (4 if exact else ONESHOT_MGRIT["cfactor"][0])
    print(f"speed-up of {what} ({a.state_its:g}+{a.adjoint_its:g} MGRIT its, {relax} relaxation, cfactor {cf}) per "
          "iteration over layer-serial on 1 rank")
    print("| N | " + " | ".join(f"P={P}" for P in Ps) + " | crossover P |")
    print("|---:|" + "---:|" * (len(Ps) + 1))
    make = lambda mode, n, P, **k: mode_config(mode, n, P, cal=cal, evals=a.evals, **k)  # noqa: E731
    for row in speedup_table(cal, Ns, Ps, evals=a.evals, **kw):
        print(f"| {row[0]} | " + " | ".join("-" if math.isnan(v) else f"{v:.1f}x" if v >= 0.1 else f"{v:.2g}x"
                                           for v in row[1:])
              + f" | {crossover(cal, row[0], make=make, **kw) or f'none up to P = {row[0]}'} |")
    P = max(Ps)
    print(f"time per iteration by phase at P = {P} (ms; where the time goes: state, adjoint and gradient "
          "solves, validation, ocnet's per-evaluation work, TAO's work on the replicated design):")
    for N in Ns:
        ph = predict(cal, mode_config(a.mode, N, min(P, N), cal=cal, evals=a.evals, **{
            k: v for k, v in kw.items() if k != "mode"}))
        print(f"  N = {N}{f' (P = {N})' if P > N else ''}: total {1e3 * ph['total']:.3g}; "
              + ", ".join(f"{k} {1e3 * ph[k]:.3g}" for k in ph if k != "total"))
    if not exact:
        print("(per iteration of one-shot solves; the default adaptive -mode oneshot runs its first "
              "-oneshot_exact_start fraction f = 0.2 of the evaluations layer-serially, so a whole run's speed-up "
              "s becomes 1 / (f + (1 - f) / s), at most 1/f = 5: docs/hpc/scaling.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
