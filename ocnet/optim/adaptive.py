"""Adaptive one-shot (``-mode oneshot``, default ``-oneshot_adapt 1``): per evaluation, the state and
adjoint MGRIT iteration counts follow measured quantities, and an evaluation whose gradient cannot
be trusted becomes exact (layer-serial) instead of wrong.  Theory and the choice of constants:
docs/theory/index.md ("Adaptive one-shot"); user guide: docs/user/adaptive-oneshot.md.

What is measured (every number below comes from a reduction summed in layer/point order, so it is
the same on every rank and for every rank count; decisions therefore do not depend on it):

- the C-point residual norms r_{k-1}, r_k of the last two cycles of a solve, hence its convergence
  factor rho = r_k / r_{k-1} (the state runs at least 2 cycles, so rho_s is measured at every
  evaluation, as Jiang, Cyr, Schroder et al., arXiv 2601.09026, monitor it; the adjoint measures its
  own when it runs 2 or more, else the state's stands in: its cycle is the transposed linearised
  state cycle);
- ||u|| over the C-points (the relative residual r_k/||u||);
- the norm of the layer gradient's data term ||G_data|| (before the regulariser) and of the whole
  gradient ||g||.

The estimate.  For a contraction with factor rho the error after k cycles is bounded by
rho/(1-rho) times the last correction, which the residual measures: e = rho/(1-rho) r_k/||u||
(relative error of the trajectory).  The layer gradient G[n] is linear in the adjoint and, through
the linearisation, in the state; relative errors of both therefore enter G_data with weight one to
first order, and the gradient error is estimated as

    eta = C (e_s + e_a) ||G_data|| / ||g||            (relative gradient error, history column)

with C = -oneshot_error_scale (1000) absorbing what the first-order argument leaves out (the
coarse solve's amplification of a residual into an error, per-sample terms that cancel in G):
measured with runs/calibrate_adaptive.py, on Peaks N = 32 tanh log(eta/C) and the log of the
true error correlate with coefficient 0.95 and their ratio has median 1.3e3.

Near an optimum ||g|| -> 0 while ||G_data|| does not (the data term is balanced by the
regulariser), so the same trajectory accuracy gives a growing eta: the rule tightens the solves
near the optimum by itself.

The rule.  Inexact-gradient descent converges when ||g~ - g|| <= kappa ||g|| with kappa < 1
(Carter 1991; Heinkenschloss & Vicente 2002; for BFGS with bounded errors Xie, Byrd & Nocedal
2020), and Bosse & Griewank's adaptive one-shot couples the number of inner iterations to that
requirement.  Here kappa = -oneshot_kappa is split: the state gets the share -oneshot_state_share
(it decides the objective that the line search compares, so it is held tighter), the adjoint the
rest.  After each gradient evaluation a count whose share c is above its target tau grows by the
number of cycles its measured rho says the estimate needs,

    k <- clamp(k + min(ceil(log(c / tau) / log(1/rho)), 2), k_min, k_max),

and a count drops by one only when the same estimate formed from the residual measured *before*
the last cycle meets the target (the solve had been accurate enough one cycle earlier).  The
residual is measured rather than extrapolated as c/rho: MGRIT converges exactly after enough
cycles on few layers (MNIST, N = 30: the state after 3-4, the adjoint after 3), where c/rho of an
exact solve says nothing about one cycle fewer -- the first rule dropped a cycle there, the next
evaluation fell back to exact, and the counts oscillated (every second evaluation exact).  For the
same reason a rho below 1e-3 (a cycle that converged to round-off) is not kept for later estimates.
Fallbacks: rho >= 1 (a solve that does not contract gives no error bound) or eta >= 1 (-g~ is then
not guaranteed to be a descent direction: ||g~ - g|| < ||g~|| is Carter's condition) make the
evaluation exact: it is repeated with layer-serial sweeps at the same design (one line on stderr,
rate-limited), and each count goes one up.

The refresh (-oneshot_adjoint_refresh p, default 3; 0 turns it off): every p-th gradient
evaluation at the adaptive level runs at least 2 adjoint iterations.  Why: the one-shot adjoint
error keeps its direction from one evaluation to the next (|cos(e_k, e_{k-1})| median 0.53 on the
paper's Peaks files) and then acts like a bias, which a norm-based estimate does not see: eta can
meet kappa at every evaluation while the same error enters the quasi-Newton memory again and
again.  A warm-started adjoint that is given one more cycle every p evaluations contracts a
persistent error component by at least rho_a every p steps, whatever the estimate says; this
bounds how long such a component can persist, not its size, so the justification is heuristic
(no convergence theory of inexact BFGS covers it) and the choice p = 3 is empirical: over 24
seeds of the paper's files it moved the accuracy from -0.62 +- 0.54 to +0.31 +- 0.30 points
against serial and cut the worst final objective from 1.66x to 1.18x serial's, on Peaks N = 32
tanh it left the mean unchanged (-0.56 vs -0.66, within the seeds' noise); over 82 seed runs
of 8 cases 68 ended within 1 point of serial with it, 59 without; at 1.15x fixed one-shot's
time per iteration at N = 1024 (docs/user/adaptive-oneshot.md, "The refresh").

The exact start (-oneshot_exact_start f, default 0.2; 0 turns it off, 1 makes every evaluation
exact): the first ceil(f * -tao_max_it) gradient evaluations (and the function evaluations between
them) are exact, with the layer-serial sweeps of the fallback, so the run is serial mode's,
bitwise, up to there; one-shot takes over warm-started from exact trajectories.  Why: where an
optimisation path goes is decided early -- a perturbation in the first iterations moves it to
another region, one later on moves it within the region it is in (over 16 seeds of Peaks N = 32
tanh one-shot's final objective reached 1.56x serial's without the exact start, with a relative
gradient error of 0.2-6 % over the first 40 evaluations at seed 3; 1.10x with it).  The tighter
one-shot rules measured (kappa 0.02, more state or adjoint iterations) did not keep the path, the
adjoint solved to 1e-6 did (61 of 64 seeds within 1 point), so the start is exact; that a fraction
f of the budget decides is measured, not derived: over 82 seed runs of 8 cases
(docs/user/adaptive-oneshot.md, "The exact start") f = 0.1, 0.2 and 1/3 ended within 1 point of
serial in 69, 73 and 77 runs (68 without).  Its cost is serial's per iteration (less than
one-shot's on few ranks); on many ranks those iterations do not scale, which bounds a whole run's
speed-up by 1/f.

The calibration (-oneshot_calibrate k, default 10; 0 turns it off): every k-th one-shot gradient
evaluation also computes the exact (layer-serial) gradient at the same design and moves C to the
geometric mean of C and the measured ratio of true to estimated error, never below the option's
value (the calibration only tightens; its reductions in layer order, so the decisions stay
rank-count free).  Why: C was measured on Peaks; on three-arm spirals at N = 256 the ratio's
median was 2.7e3, and the too-small estimate left one-shot 3.4 points below serial (+0.5 with
the calibration).  Over 82 seed runs of 8 cases it was level with the default before (72 against
70 within 1 point of serial), and at seed 0 all 8 cases were within 1 point (7 before); cost
1.12x fixed one-shot's time per iteration at N = 1024 against 1.08x without
(docs/user/adaptive-oneshot.md, "On problems it was not tuned on").  On many ranks its
layer-serial gradient every k-th evaluation bounds one-shot's speed-up per evaluation by about k.

The safeguard (``ocnet.optim.optimize.Safeguard``; the one-shot TAO's own): a line-search failure tightens the level (0: adaptive, 1: the
maximum counts, 2: exact) and the optimiser re-evaluates at its last accepted point with a fresh
quasi-Newton memory; only a failure at level 2 (the exact gradient) stops the run.  The level
decays by one after -oneshot_relax_after gradient evaluations without a failure.
"""
import math
import sys

import numpy as np

FLOOR = 1e3  # rho is measured only above FLOOR times the solver's round-off floor of the residual
LEVELS = ("adaptive", "max", "exact")
RHO_INFORMATIVE = 1e-3  # a measured rho below this is a solve that converged to round-off
ALL = 2 ** 31  # the exact start's length for -oneshot_exact_start 1: every evaluation


def declare_options(opts):
    """The adaptive one-shot's options (framework options, group ocnet)."""
    opts.add("oneshot_adapt", bool, True, "-mode oneshot: choose the state/adjoint MGRIT iterations per "
             "evaluation from the measured convergence factor and gradient-error estimate, fall back to exact "
             "evaluations when rho >= 1 or the estimated error is not below |g|, and tighten on a line-search "
             "failure (docs/user/adaptive-oneshot.md); off (also when -oneshot_state_its or -oneshot_adjoint_its "
             "is given): fixed counts")
    opts.add("oneshot_state_its_min", int, 2, "adaptive one-shot: fewest state MGRIT iterations per evaluation "
             "(2: the convergence factor is measured in every state solve)", bounds="[2,inf)")
    opts.add("oneshot_state_its_max", int, 8, "adaptive one-shot: most state MGRIT iterations per evaluation",
             bounds="[2,inf)")
    opts.add("oneshot_adjoint_its_min", int, 1, "adaptive one-shot: fewest adjoint MGRIT iterations",
             bounds="[1,inf)")
    opts.add("oneshot_adjoint_its_max", int, 8, "adaptive one-shot: most adjoint MGRIT iterations",
             bounds="[1,inf)")
    opts.add("oneshot_kappa", float, 0.2, "adaptive one-shot: target relative gradient error "
             "||g~ - g|| <= kappa ||g|| (estimated)", bounds="(0,1)")
    opts.add("oneshot_state_share", float, 0.25, "adaptive one-shot: the state's share of kappa (the rest is "
             "the adjoint's; below 0.5 holds the state tighter)", bounds="(0,1)")
    opts.add("oneshot_error_scale", float, 1000.0, "adaptive one-shot: factor of the residual-based gradient-error "
             "estimate (measured: median true/estimated 1.3e3 on Peaks N=32 tanh, runs/calibrate_adaptive.py)",
             bounds="(0,inf)")
    opts.add("oneshot_adjoint_refresh", int, 3, "adaptive one-shot: every p-th gradient evaluation runs at "
             "least 2 adjoint MGRIT iterations (0: off); bounds the persistence of the one-shot adjoint error "
             "that a norm-based estimate does not see (measured over seeds: docs/user/adaptive-oneshot.md)",
             bounds="[0,inf)")
    opts.add("oneshot_exact_start", float, 0.2, "adaptive one-shot: the first fraction of -tao_max_it's gradient "
             "evaluations is exact (layer-serial), so that the one-shot run follows serial's optimisation path "
             "through its start, where a perturbation decides where the path goes (0: off; measured over seeds: "
             "docs/user/adaptive-oneshot.md)", bounds="[0,1]")
    opts.add("oneshot_calibrate", int, 10, "adaptive one-shot: every k-th one-shot gradient evaluation also "
             "computes the exact (layer-serial) gradient at the same design and moves -oneshot_error_scale towards "
             "the measured ratio of true to estimated error, never below the option's value (0: off; default 10: "
             "measured over 82 seed runs, docs/user/adaptive-oneshot.md)", bounds="[0,inf)")
    opts.add("oneshot_relax_after", int, 20, "adaptive one-shot: gradient evaluations after a tightening "
             "(line-search failure) before the level relaxes by one", bounds="[1,inf)")


def adaptive_wanted(values, db):
    """Whether -mode oneshot runs adaptive: -oneshot_adapt, unless fixed counts were given
    (-oneshot_state_its / -oneshot_adjoint_its) and -oneshot_adapt was not."""
    if values["mode"] != "oneshot":
        return False
    if db.hasName("oneshot_adapt"):
        return values["oneshot_adapt"]
    return not (db.hasName("oneshot_state_its") or db.hasName("oneshot_adjoint_its"))


def check_values(values):
    """Bad combinations of the adaptive options (OcnetError: one line, exit 2)."""
    from ..base.errors import OcnetError
    for w in ("state", "adjoint"):
        lo, hi = values[f"oneshot_{w}_its_min"], values[f"oneshot_{w}_its_max"]
        if lo > hi:
            raise OcnetError(f"-oneshot_{w}_its_min {lo} is above -oneshot_{w}_its_max {hi}")


#: summary.json's totals (adaptive_oneshot), in the order checkpoints save them
TOTALS = ("state_its", "adjoint_its", "evaluations", "gradient_evaluations", "exact_evaluations",
          "exact_start_evaluations", "tightenings")

ADAPT_KEYS = ("oneshot_state_its_min", "oneshot_state_its_max", "oneshot_adjoint_its_min",
              "oneshot_adjoint_its_max", "oneshot_kappa", "oneshot_state_share", "oneshot_relax_after",
              "oneshot_error_scale", "oneshot_adjoint_refresh", "oneshot_exact_start", "oneshot_calibrate")


def create(values, db, comm, warn):
    """The controller for this run's options (None: serial/exact mode or fixed one-shot counts);
    ``warn(line)`` reports adaptive options that have no effect."""
    if not adaptive_wanted(values, db):
        # an exact start of 0 asks for what these modes do anyway: honoured, nothing to report
        given = [k for k in ADAPT_KEYS if db.hasName(k) and not (k == "oneshot_exact_start" and values[k] == 0)]
        for k in given:
            warn(f"-{k} has no effect " + ("with fixed one-shot counts (-oneshot_adapt 0, or "
                 "-oneshot_state_its/-oneshot_adjoint_its given): add -oneshot_adapt 1"
                 if values["mode"] == "oneshot" else f"in -mode {values['mode']}: use -mode oneshot"))
        return None
    check_values(values)
    for w in ("state", "adjoint"):  # a starting count outside the bounds starts at the nearer bound
        k, lo, hi = values[f"oneshot_{w}_its"], values[f"oneshot_{w}_its_min"], values[f"oneshot_{w}_its_max"]
        if db.hasName(f"oneshot_{w}_its") and not lo <= k <= hi:
            warn(f"-oneshot_{w}_its {k} is outside [-oneshot_{w}_its_min {lo}, -oneshot_{w}_its_max {hi}]: the "
                 f"adaptive {w} count starts at {min(max(k, lo), hi)}")
    return AdaptiveOneShot(values, comm, db.getInt("tao_max_it", 0) if db.hasName("tao_max_it") else 0)


def _residuals(mg):
    """The residual norms a solve measured, in order (one-shot solves hold nan for the cycles
    whose residual was not computed)."""
    return [v for v in mg.history if not math.isnan(v)]


def _error(rho, r, unorm):
    """Relative trajectory error bound after a contraction with factor ``rho`` whose last
    correction has residual ``r``: rho / (1 - rho) * r / ||u|| (0 for a zero trajectory)."""
    return rho / (1.0 - rho) * r / unorm if unorm > 0 else 0.0


def _rho(mg):
    """Convergence factor of a solve's last cycle (nan when only one residual was measured; 0 when
    the residual before it was already at the round-off floor: a converged solve cannot contract
    further, and r_k / r_{k-1} ~ 1 there says nothing about divergence)."""
    from ..mgrit.solver import ROUNDOFF
    h = _residuals(mg)
    if len(h) < 2:
        return math.nan
    if math.isinf(h[-2]):  # non-finite before the last cycle: a finite result then rests on MGRIT's
        return math.inf  # exactness after enough cycles, not on a contraction (a diverging coarse level)
    floor = FLOOR * ROUNDOFF * getattr(mg, "unorm", 0.0)
    return h[-1] / h[-2] if h[-2] > floor else 0.0


class AdaptiveOneShot:
    """The controller; one instance per ReducedObjective, identical on every rank.  The counts
    start at -oneshot_state_its / -oneshot_adjoint_its clamped to [min, max]."""

    def __init__(self, values, comm, max_it=0):
        self.comm = comm
        self.kmin = {"state": values["oneshot_state_its_min"], "adjoint": values["oneshot_adjoint_its_min"]}
        self.kmax = {"state": values["oneshot_state_its_max"], "adjoint": values["oneshot_adjoint_its_max"]}
        self.k = {w: min(max(values[f"oneshot_{w}_its"], self.kmin[w]), self.kmax[w]) for w in self.kmin}
        self.kappa, self.share = values["oneshot_kappa"], values["oneshot_state_share"]
        self.relax_after = values["oneshot_relax_after"]
        self.scale = self.scale0 = values["oneshot_error_scale"]
        self.calibrate = values.get("oneshot_calibrate", 0)
        self.ncal = 0  # one-shot gradient evaluations at the adaptive level (the calibration's clock)
        self.calibrations = 0  # exact gradients computed for it
        self.refresh = values["oneshot_adjoint_refresh"]
        self.ngrad = 0  # gradient evaluations at the adaptive level (the refresh's clock)
        # the exact start: its length in gradient evaluations (fixed at the start: a resume that
        # changes -tao_max_it keeps it) and the gradient evaluations so far
        self.exact_start = f = values["oneshot_exact_start"]
        # (-tao_max_it 0, evaluation only: the one evaluation is the exact start's, so the row and the
        # exact final numbers agree; a cold MGRIT validation gave another accuracy)
        self.start_len = 0 if f == 0 else ALL if f >= 1 or max_it == 0 else math.ceil(f * max_it - 1e-9)
        self.nstart = 0
        self.announce = False  # (set after the command line's warm-up evaluation)
        self.rho = {"state": math.nan, "adjoint": math.nan}
        self.level = 0  # index into LEVELS: set by the safeguard (rank 0), broadcast at each evaluation
        self.since_tighten = 0
        self.estimate = math.nan  # eta of the last gradient evaluation
        self.fallback_reason = None  # why the last evaluation became exact (None: it did not)
        self.totals = {k: 0 for k in TOTALS}
        self.since_row = [0, 0, 0]  # state its, adjoint its, exact evaluations since the last history row

    def get_state(self):
        """What the decisions depend on, as an array (checkpoints; the broadcast at each evaluation)."""
        return np.array([self.k["state"], self.k["adjoint"], self.rho["state"], self.rho["adjoint"],
                         self.level, self.since_tighten, self.ngrad, self.start_len, self.nstart,
                         self.scale, self.ncal, self.calibrations], float)

    def saved(self):
        """get_state and the run's totals (checkpoints: a resumed run's summary counts the whole run)."""
        return np.concatenate([self.get_state(), [float(self.totals[k]) for k in TOTALS]])

    def restore(self, a):
        """A checkpoint's ``saved()``: the decisions' state and the totals; older checkpoints hold
        fewer state entries (7 before the exact start, 9 before the calibration) or the state only
        (totals from 0)."""
        for n in (len(self.get_state()), 9, 7):
            if len(a) == n + len(TOTALS):
                self.set_state(a[:n])
                self.totals = {k: int(v) for k, v in zip(TOTALS, a[n:])}
                return
        self.set_state(a)

    def set_state(self, a):
        self.k = {"state": int(a[0]), "adjoint": int(a[1])}
        self.rho = {"state": float(a[2]), "adjoint": float(a[3])}
        self.level, self.since_tighten = int(a[4]), int(a[5])
        self.ngrad = int(a[6]) if len(a) > 6 else 0  # (checkpoints written before the option)
        if len(a) > 8:
            self.start_len, self.nstart = int(a[7]), int(a[8])
        else:  # (a checkpoint written before the exact start: its run had none)
            self.nstart = self.start_len
        if len(a) > 11:  # (older checkpoints: no calibration, the option's scale)
            self.scale, self.ncal, self.calibrations = float(a[9]), int(a[10]), int(a[11])

    def reset_totals(self):
        """Totals from here on (after the command line's warm-up evaluation, which does not count
        towards the exact start either)."""
        self.totals = {k: 0 for k in self.totals}
        self.since_row = [0, 0, 0]
        self.nstart = 0
        self.ncal = self.calibrations = 0  # (and the calibration starts from the option's scale)
        self.scale = self.scale0
        self.announce = True

    # ---- hooks of ReducedObjective.evaluate ------------------------------------------------
    def begin(self, obj, with_grad):
        """Before an evaluation: synchronise the level (rank 0's safeguard decides it) and set the
        counts of the solves.  Returns True when the evaluation is to be exact."""
        self.set_state(self.comm.bcast(self.get_state(), root=0))  # rank 0's (resume, safeguard) rules
        self.fallback_reason = None
        self.totals["evaluations"] += 1
        if with_grad:
            self.totals["gradient_evaluations"] += 1
            if self.level > 0:
                self.since_tighten += 1
                if self.since_tighten > self.relax_after:  # (identical on every rank: counted alike)
                    self.level, self.since_tighten = self.level - 1, 0
        if LEVELS[self.level] == "exact":
            self.fallback_reason = "after a line-search failure"
            return True
        if self.nstart < self.start_len:  # the exact start (counted alike on every rank)
            self.nstart += with_grad
            self.fallback_reason = "exact start"
            if self.nstart == self.start_len and self.announce and self.comm.Get_rank() == 0:
                print(f"ocnet: note: the exact start ends with this evaluation ({self.start_len} exact gradient "
                      f"evaluation{'s' * (self.start_len != 1)}, -oneshot_exact_start {self.exact_start:g}); "
                      "one-shot solves from the next",
                      file=sys.stderr, flush=True)
            return True
        ks = self.kmax["state"] if self.level else self.k["state"]
        ka = self.kmax["adjoint"] if self.level else self.k["adjoint"]
        if with_grad and self.refresh and not self.level:
            self.ngrad += 1  # (counted alike on every rank)
            if self.ngrad % self.refresh == 0:
                ka = max(ka, min(2, self.kmax["adjoint"]))
        if obj.mgrit is not None:
            obj.mgrit.measure_rho = True
            obj.state_snes.snes.setTolerances(max_it=ks)
            obj.mgrit.s.max_it = ks
        if obj.adj_mgrit is not None:
            obj.adj_mgrit.measure_rho = True
            obj.adj_mgrit.ksp.setTolerances(max_it=ka)
            obj.adj_mgrit.s.max_it = ka
        return False

    def after_state(self, obj):
        """After the state solve: True when it did not contract (rho >= 1): evaluate exactly."""
        if obj.mgrit is None:
            return False
        rho = _rho(obj.mgrit)
        self._store_rho("state", rho)
        self.totals["state_its"] += obj.mgrit.s.max_it
        self.since_row[0] += obj.mgrit.s.max_it
        if rho >= 1.0:
            self.fallback_reason = f"state MGRIT rho {rho:.3g} >= 1"
            return True
        return False

    def calibration_due(self):
        """Whether this one-shot gradient evaluation is one of -oneshot_calibrate's (every k-th at
        the adaptive level; counted alike on every rank)."""
        if not self.calibrate or self.level:
            return False
        self.ncal += 1
        return self.ncal % self.calibrate == 0

    def _calibrate(self, ratio):
        """Move the error scale towards a measured ratio of true to unscaled estimated error: the
        geometric mean of the scale and the ratio (the ratio scatters by a factor of a few from one
        evaluation to the next), never below -oneshot_error_scale (the calibration only tightens)."""
        self.calibrations += 1
        if ratio > 0 and math.isfinite(ratio):
            self.scale = max(self.scale0, math.sqrt(self.scale * ratio))

    def after_gradient(self, obj, G_data_sq, G_sq, global_sq, calib=None):
        """After a gradient evaluation: the estimate, the fallback test and the next counts.
        ``G_data_sq``/``G_sq``: this rank's per-layer squared norms of the layer gradient before
        and after the regulariser; ``global_sq``: rank 0's squared norm of the global gradient;
        ``calib``: (per-layer, global) squared norms of the difference to the exact gradient at the
        same design (-oneshot_calibrate), or None."""
        comm = self.comm
        parts = comm.allgather((np.asarray(G_data_sq, float), np.asarray(G_sq, float), float(global_sq))
                               + ((np.asarray(calib[0], float), float(calib[1])) if calib is not None else ()))
        data = math.sqrt(float(np.sum(np.concatenate([p[0] for p in parts]))))
        gnorm = math.sqrt(float(np.sum(np.concatenate([p[1] for p in parts]))) + parts[0][2])
        e = {}
        if obj.adj_mgrit is not None:
            self.totals["adjoint_its"] += obj.adj_mgrit.s.max_it
            self.since_row[1] += obj.adj_mgrit.s.max_it
            rho = _rho(obj.adj_mgrit)
            self._store_rho("adjoint", rho)
            if rho >= 1.0:
                self.fallback_reason = f"adjoint MGRIT rho {rho:.3g} >= 1"
                return True
        for w, mg in (("state", obj.mgrit), ("adjoint", obj.adj_mgrit)):
            if mg is None:
                e[w] = 0.0
                continue
            rho = self.rho[w] if not math.isnan(self.rho[w]) else self.rho["state"]
            if math.isnan(rho):
                rho = 0.5
            rho = min(rho, 0.99)
            e[w] = _error(rho, mg.residual, getattr(mg, "unorm", 0.0))
        if calib is not None and gnorm > 0 and e["state"] + e["adjoint"] > 0:  # the true error, measured
            true = math.sqrt(float(np.sum(np.concatenate([p[3] for p in parts]))) + parts[0][4]) / gnorm
            self._calibrate(true / ((e["state"] + e["adjoint"]) * data / gnorm))
        scale = self.scale * data / gnorm if gnorm > 0 else math.inf
        self.estimate = (e["state"] + e["adjoint"]) * scale
        if not self.estimate < 1.0:
            self.fallback_reason = f"estimated gradient error {self.estimate:.3g} x |g| (not a sure descent direction)"
            return True
        if self.level == 0:
            for w, tau in (("state", self.share * self.kappa), ("adjoint", (1 - self.share) * self.kappa)):
                mg = obj.mgrit if w == "state" else obj.adj_mgrit
                if mg is None:
                    continue
                c = e[w] * scale
                rho = self.rho[w] if not math.isnan(self.rho[w]) else self.rho["state"]
                rho = min(max(rho if not math.isnan(rho) else 0.5, 0.05), 0.95)
                if c > tau:  # the cycles the measured rho says the target needs (at most 2 more)
                    step = min(math.ceil(math.log(c / tau) / math.log(1.0 / rho)), 2)
                else:  # one fewer only if the solve had met the target one cycle earlier: the
                    # residual before the last cycle is measured (MGRIT converges exactly after
                    # enough cycles on few layers -- MNIST N = 30 -- so r_k/rho overstates r_{k-1})
                    h, unorm = _residuals(mg), getattr(mg, "unorm", 0.0)
                    before = _error(rho, h[-2], unorm) * scale if len(h) > 1 and unorm > 0 else math.inf
                    step = -1 if before <= tau else 0
                self.k[w] = min(max(self.k[w] + step, self.kmin[w]), self.kmax[w])
        return False

    def _store_rho(self, w, rho):
        """Keep a solve's measured rho for the estimates -- unless it says nothing about the next
        solve: nan (not measured) or below RHO_INFORMATIVE (a cycle that converged to round-off:
        MGRIT is exact after enough cycles; such a rho would make a later one-cycle adjoint look
        exact)."""
        if not math.isnan(rho) and rho >= RHO_INFORMATIVE:
            self.rho[w] = rho

    def fell_back(self, obj, design_failed=False):
        """The evaluation became exact: count it, say so (rate-limited), one more iteration per solve
        next (not the maximum: the next solves start from this evaluation's exact trajectories, so
        their error is the design step's change alone; measured on digits, the maximum after the
        cold first evaluation cost 6 evaluations of 8 to 3 iterations each before the counts were
        back at 2).  ``design_failed``: the exact evaluation is non-finite too (a line search's trial
        point the optimiser rejects): MGRIT's counts were not what failed, and stay (a tester's
        unstable trial points raised them to 5 cycles on a NaN iterate)."""
        self.totals["exact_evaluations"] += 1
        self.since_row[2] += 1
        if self.fallback_reason == "exact start":  # planned, not a sign that the counts are too low
            self.totals["exact_start_evaluations"] += 1
            return
        if not design_failed:
            self.k = {w: min(self.k[w] + 1, self.kmax[w]) for w in self.k}
        n = self.totals["exact_evaluations"] - self.totals["exact_start_evaluations"]  # the summary's count
        # (the command line's warm-up evaluation, before reset_totals, is not the run's: no note)
        if self.announce and self.comm.Get_rank() == 0 and (n <= 3 or n in (10, 100) or n % 1000 == 0):
            print(f"ocnet: note: a one-shot evaluation was replaced by an exact (layer-serial) one: {self.fallback_reason} "
                  f"({n} so far)", file=sys.stderr, flush=True)

    # ---- the safeguard (rank 0's optimiser) ------------------------------------------------
    def tighten(self):
        """A line-search failure: next level.  False when already exact (then the failure stands)."""
        if self.level >= len(LEVELS) - 1:
            return False
        self.level += 1
        self.since_tighten = 0
        self.totals["tightenings"] += 1
        return True

    def note_restart(self, its):
        """One line on stderr (this rank's optimiser: rank 0 in the replicated layout)."""
        if self.comm.Get_rank() == 0:
            print(f"ocnet: note: line search failed at iteration {its}; re-evaluating there with "
                  f"{LEVELS[self.level]} one-shot solves and a fresh quasi-Newton memory", file=sys.stderr,
                  flush=True)

    def row(self):
        """History columns: the estimate of the last gradient evaluation, the MGRIT iterations and
        exact (layer-serial) evaluations of all evaluations since the last row (line searches
        included), the safeguard's level."""
        s, a, e = self.since_row
        self.since_row = [0, 0, 0]
        return {"gradient_error_estimate": self.estimate, "state_mgrit_its_total": s,
                "adjoint_mgrit_its_total": a, "exact_evaluations": e, "oneshot_level": self.level}

    def summary(self):
        out = dict(self.totals, final_counts=dict(self.k), level=LEVELS[self.level])
        if self.calibrate:
            out.update(error_scale=self.scale, calibrations=self.calibrations)
        return out


def layer_sq_norms(G):
    """Per-layer squared norms (local layers in order): summed later in layer order, so the total
    is the same for every rank count."""
    return np.einsum("ij,ij->i", G, G) if G.size else np.zeros(len(G))
