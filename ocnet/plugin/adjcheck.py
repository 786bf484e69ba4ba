"""``ocnet -check_adjoint``: dot-product tests of a plugin's transposed maps and a Taylor test of
the reduced gradient, run instead of training, on any number of ranks.

A transposed map is tested against central differences of its forward map, at the states of a
layer-serial forward solve of a generic design (the initial one plus 10 % noise, so no activation
sits exactly on a kink):

    <mu, (Phi(u + e du) - Phi(u - e du)) / 2e>   vs   <(dPhi/du)^T mu, du>

(and likewise in theta, g, whose directions are scaled up until they change the output by about
its size: ``_resolvable``), as the relative difference minimised over the relative steps ``EPS``
(the quotient is exact to O(e^2) plus round-off O(eps/e); a wrong transpose is off by O(1)).
Steps are tested at the fine step size h and at every coarse h*m of the MGRIT hierarchies that
the run's ``-mode`` builds from the options (``-mode exact``'s for ``-mode serial``), with the
plugin's ``coarse_parameters``.  Batched forms
the plugin overrides are tested too: the transposed ones (``sweep_adjoint``, ``parameter_gradient``,
``sweeps_adjoint``, ``steps_adjoint``) by the same dot-product test and their forcing term ``F``
row by row against the same form unforced, the forward ones (with ``F``) against the loop over
``step`` that the contract defines.
Outputs the contract overwrites are pre-filled with noise and outputs it accumulates into start
from noise that is subtracted after, so '=' and '+=' mix-ups fail too.

The Taylor test (layer-serial solves, so exact): r(e) = |J(x + e d) - J(x) - e <grad J, d>| must
fall as e^2 (order 2); a wrong gradient gives order 1.  Every rank tests its own layers; rank 0
prints one PASS/FAIL line per check.  Exit status 0 if all pass, 1 otherwise.
"""
import numpy as np

from .problem import accepts, ControlProblem, defining_class

EPS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)  # difference steps, relative to the rms of the point:
# the smallest step past round-off also steps over no ReLU kink unless one lies within it
DOT_TOL = 1e-6  # dot-product tests: relative difference
SAME_TOL = 1e-10  # batched forms and forcing terms against the step-level loop (round-off only)
MIN_ORDER = 1.8  # Taylor test: median observed order
SAMPLES = 3  # steps tested per rank and step size
BLOCK = 6  # steps per rank in the tests of batched forms
HALVINGS = 7  # Taylor test: e = e0, e0/2, ..., e0/2^HALVINGS


def overrides(problem, name):
    """True if the plugin replaces the contract's default ``name`` (in its class, or on the
    instance: forms generated from kernels, ocnet.plugin.kernels)."""
    if name in vars(problem):
        return getattr(vars(problem)[name], "__func__", None) is not getattr(ControlProblem, name)
    return getattr(type(problem), name) is not getattr(ControlProblem, name)


def origin(problem, name):
    """Where the plugin's method ``name`` comes from, for FAIL lines: the class whose body defines
    it, or the kernels it was generated from (ocnet.plugin.kernels.use_kernels)."""
    bound = vars(problem).get(name)
    if bound is not None:
        gen = getattr(problem, "_generated_forms", None)
        if gen is not None and getattr(bound, "__self__", None) is gen:
            # the kernel the form runs: the transposed forms (and the gradient) the adjoint kernel
            # (a FAIL line named both kernels for every form, tester 43)
            adjoint = "adjoint" in name or name == "parameter_gradient"
            return f"the kernel {gen.kernels[adjoint].py_func.__qualname__} (generated forms)"
        if getattr(bound, "__func__", None) is getattr(ControlProblem, name, None):
            return "ControlProblem (the generic loop)"
        return "an instance attribute"
    klass = defining_class(type(problem), name)
    if klass is None:
        return "?"
    # an alias in a class body (step = Parent.step): the class that wrote the function
    wrote = next(k for k in reversed(type(problem).__mro__) if k.__dict__.get(name) is klass.__dict__[name])
    return klass.__qualname__ if wrote is klass else f"{wrote.__qualname__} (via {klass.__qualname__})"


def _rms(a):
    r = float(np.sqrt(np.mean(np.square(a)))) if np.size(a) else 0.0
    return r if r > 0 else 1.0


def _resolvable(d, quotient, out):
    """Direction ``d`` scaled up (never down, at most 1e8-fold) until the map's change along it,
    ``quotient(d)`` (a difference quotient), has about the rms of its output ``out``: a direction
    relative to parameters near 0 (zero-initialised controls, small global parameters) changed the
    output by less than the quotient's round-off, and a wrong transpose passed within it."""
    target, k = _rms(out), 1.0
    for trial in (1.0, 1e2, 1e4, 1e6, 1e8):  # (a change below the output's rounding reads as 0)
        change = float(np.sqrt(np.mean(np.square(quotient(trial * d)))))
        if not np.isfinite(change):
            break
        k = trial
        if change >= 0.1 * target:
            k = min(k * target / change, 1e8) if change < target else k
            break
    return k * d


def _rel(a, b):
    m = max(abs(a), abs(b))
    return 0.0 if m == 0 else abs(a - b) / m


def _dot_error(fd, exact, scale=None):
    """min over EPS of the relative difference of fd(e) (a difference quotient) and ``exact``.
    ``scale``: |mu| . |Phi| of a quotient mu . (Phi(+e) - Phi(-e)) / 2e, whose rounding error is
    then about ROUNDING * scale / e: returns (error, that floor relative to |exact| at the step of
    the error) -- a map whose output is large against its change (an unstable step's states of
    1e8, a linear dependence on theta) cannot be tested below it."""
    errs = [(_rel(fd(e), exact), e) for e in EPS]
    err, e = min(errs)
    if scale is None:
        return err
    return err, (ROUNDING * scale / e / abs(exact) if exact else np.inf)


#: a rounding floor (relative) from which a dot-product test decides nothing: a wrong transpose is
#: typically off by O(0.1-1), so a component tested only to this is reported as not tested (FAIL)
UNTESTED = 0.1
#: rounding of one difference quotient, in units of |mu| . |Phi| / e (10 ulp: a step's own rounding
#: is a few ulp of its output)
ROUNDING = 10 * np.finfo(float).eps


def _worst(errors):
    """The largest error, NaN if any is NaN (Python's max would let a NaN pass unseen)."""
    errors = np.asarray(errors, float)
    return float(np.nan if np.isnan(errors).any() else errors.max())


def _same(a, b):
    """Relative max-norm difference of two arrays (0 when both are 0)."""
    m = np.max(np.abs(b)) if np.size(b) else 0.0
    d = np.max(np.abs(a - b)) if np.size(b) else 0.0
    return 0.0 if d == 0 else (d / m if m > 0 else np.inf)


class Block:
    """Independent steps of one step size: step i is Phi_{ns[i]}(U[i]; TH[i], h).

    Fine level: consecutive layers of this rank, U[i] the forward states; coarse levels: the
    coarse steps starting on this rank (layers j*m), U[i] the fine state at layer j*m, TH[i] the
    plugin's ``coarse_parameters`` of the m layers the step spans.  U has k+1 rows (as the
    trajectories MGRIT hands to the batched forms); the last is u after the block, or 0."""

    def __init__(self, pb, h, ns, TH, U, Sc, rng):
        self.pb, self.h, self.ns, self.TH, self.U, self.Sc, self.rng = pb, h, ns, TH, U, Sc, rng
        self.k, self.S, self.p = len(ns), U.shape[1], TH.shape[1]

    def phi(self, i, u, th):
        out = np.empty(self.S)
        self.pb.step(int(self.ns[i]), self.h, th, u, out, np.zeros(self.Sc))
        return out

    def tangent(self, i, du, dth, e, u=None):
        """(Phi(u + e du, th + e dth) - Phi(u - e du, th - e dth)) / 2e at U[i] (or ``u``)."""
        u = self.U[i] if u is None else u
        th = self.TH[i]
        return (self.phi(i, u + e * du, th + e * dth) - self.phi(i, u - e * du, th - e * dth)) / (2 * e)

    def du(self, i):
        return self.rng.standard_normal(self.S) * _rms(self.U[i])

    def dth(self, i):
        """A random theta direction at step i, scaled up (never down) until it changes Phi by
        about the rms of Phi per unit step: relative to a theta near 0 (zero-initialised controls)
        its change lay below the quotient's round-off, and a wrong transpose passed within it."""
        d = self.rng.standard_normal(self.p) * _rms(self.TH[i])
        return _resolvable(d, lambda d: self.tangent(i, np.zeros(self.S), d, 1e-4),
                           self.phi(i, self.U[i], self.TH[i]))

    def noise(self, *shape):
        return self.rng.standard_normal(shape)

    def adjoint_arrays(self):
        """(ns, TH, U, C) in the transposed forms' row convention (row k: the step taken at U[k]);
        the caches C[k] computed by the plugin's ``steps``, as adjoint MGRIT does."""
        k, pb = self.k, self.pb
        th_b = np.vstack([np.zeros((1, self.p)), self.TH])
        ns_b = np.r_[0, self.ns].astype(np.int64)
        C_b = np.zeros((k + 1, self.Sc))
        pb.steps(np.arange(1, k + 1), ns_b, self.h, th_b, self.U, C_b, np.empty((k, self.S)), np.arange(k))
        return self.ns, self.TH, self.U, C_b[1:]


# ---- step-level maps ------------------------------------------------------------------------
def check_step(b):
    """step_adjoint against differences of step, in u and in theta, at up to SAMPLES steps."""
    pb, eu, et = b.pb, [], []
    for i in sorted(set(np.linspace(0, b.k - 1, min(SAMPLES, b.k)).astype(int))):
        n, u, th = int(b.ns[i]), b.U[i], b.TH[i]
        C, out = np.zeros(b.Sc), np.empty(b.S)
        pb.step(n, b.h, th, u, out, C)
        mu, lam, g0 = b.noise(b.S), b.noise(b.S), b.noise(b.p)
        gth = g0.copy()
        pb.step_adjoint(n, b.h, th, u, C, mu, lam, gth)
        gth -= g0
        du, dth = b.du(i), b.dth(i)
        scale = float(np.abs(mu) @ np.abs(out))
        eu.append(_dot_error(lambda e: mu @ b.tangent(i, du, 0 * dth, e), lam @ du, scale))
        if b.p:
            et.append(_dot_error(lambda e: mu @ b.tangent(i, 0 * du, dth, e), gth @ dth, scale))
    return {"(dPhi/du)^T": _limited(eu), **({"(dPhi/dtheta)^T": _limited(et)} if et else {})}


def _limited(pairs):
    """The (error, rounding floor) pair of the worst error (a NaN first, as ``_worst``)."""
    return max(pairs, key=lambda p: (np.isnan(p[0]), p[0]))


def check_opening(pb, g, data, S, rng):
    def E(x):
        out = np.empty(S)
        pb.opening(x, data, out)
        return out

    mu, g0 = rng.standard_normal(S), rng.standard_normal(g.size)
    gg = g0.copy()
    pb.opening_adjoint(g, data, mu, gg)
    gg -= g0
    E0 = E(g)
    dg = _resolvable(rng.standard_normal(g.size) * _rms(g), lambda d: (E(g + 1e-4 * d) - E(g - 1e-4 * d)) / 2e-4,
                     E0)
    return {"(dE/dg)^T": _dot_error(lambda e: mu @ (E(g + e * dg) - E(g - e * dg)) / (2 * e), gg @ dg,
                                    float(np.abs(mu) @ np.abs(E0)))}


def check_terminal(pb, g, data, uN, rng):
    G = pb.global_param_size

    def L(u, x):
        return float(pb.terminal(x, data, u, np.empty(u.size), np.zeros(G)))

    lam, g0 = rng.standard_normal(uN.size), rng.standard_normal(G)
    gg = g0.copy()
    pb.terminal(g, data, uN, lam, gg)
    gg -= g0
    du = rng.standard_normal(uN.size) * _rms(uN)
    out = {"dL/du[N]": _dot_error(lambda e: (L(uN + e * du, g) - L(uN - e * du, g)) / (2 * e), lam @ du)}
    if G:
        dg = rng.standard_normal(G) * _rms(g)
        out["dL/dg"] = _dot_error(lambda e: (L(uN, g + e * dg) - L(uN, g - e * dg)) / (2 * e), gg @ dg)
    return out


def check_layer_regularization(pb, h, n0, N, thetas, rng):
    def R(th):
        return float(np.sum(pb.layer_regularization(h, n0, N, th, None, None, np.zeros_like(th))))

    grad = np.zeros_like(thetas)
    pb.layer_regularization(h, n0, N, thetas, None, None, grad)
    d = rng.standard_normal(thetas.shape) * _rms(thetas)
    return {"gradient": _dot_error(lambda e: (R(thetas + e * d) - R(thetas - e * d)) / (2 * e), np.sum(grad * d))}


def check_global_regularization(pb, g, rng):
    def R(x):
        return float(pb.global_regularization(x, np.zeros_like(x)))

    grad = np.zeros_like(g)
    pb.global_regularization(g, grad)
    d = rng.standard_normal(g.size) * _rms(g)
    return {"gradient": _dot_error(lambda e: (R(g + e * d) - R(g - e * d)) / (2 * e), grad @ d)}


# ---- batched forms --------------------------------------------------------------------------
def _runs(k, first):
    """Two runs with a gap when there is room (exercises several runs per call), else one."""
    return np.array([[first, first], [first + 2, first + k - 1]] if k >= 4 else [[first, first + k - 1]], np.int64)


def _forward_reference(b, runs, U, F):
    """The contract's sweeps: U[r] = Phi_{ns[r]}(U[r-1]; th[r]) (+ F[r]), rows = points stepped into."""
    for a, z in runs:
        for r in range(a, z + 1):
            b.pb.step(int(b.ns[r - 1]), b.h, b.TH[r - 1], U[r - 1], U[r], np.zeros(b.Sc))
            if F is not None:
                U[r] += F[r]


def check_sweep(b):
    """sweep (fine level) against the loop over step, with and without forcing."""
    k, out = b.k, {}
    for label, F in (("plain", None), ("forcing", b.noise(k, b.S))):
        U, Ur = np.zeros((k + 1, b.S)), np.zeros((k + 1, b.S))
        U[0] = Ur[0] = b.U[0]
        b.pb.sweep(int(b.ns[0]), b.h, b.TH, U, np.zeros((k, b.Sc)), F)
        _forward_reference(b, [(1, k)], Ur, None if F is None else np.vstack([np.zeros((1, b.S)), F]))
        out[label] = _same(U[1:], Ur[1:])
    return out


def _forward_arrays(b):
    ns = np.r_[0, b.ns].astype(np.int64)
    th = np.vstack([np.zeros((1, b.p)), b.TH])
    return ns, th, b.U.copy()  # row r-1: the state step r starts from


def check_sweeps(b):
    """sweeps against the loop over step (two runs, from the block's own states), +- forcing."""
    ns, th, U0 = _forward_arrays(b)
    runs, out = _runs(b.k, 1), {}
    for label, F in (("plain", None), ("forcing", b.noise(b.k + 1, b.S))):
        U, Ur = U0.copy(), U0.copy()
        b.pb.sweeps(runs, ns, b.h, th, U, np.zeros((b.k + 1, b.Sc)), F, cache=True)
        _forward_reference(b, runs, Ur, F)
        rows = np.concatenate([np.arange(a, z + 1) for a, z in runs])
        out[label] = _same(U[rows], Ur[rows])
    if not accepts(b.pb.sweeps, "ahead") or b.k < 2:  # optional extension (MGRIT's C-point look-ahead)
        return out
    # ahead=(A, arows): also the step out of each run's last row z into A[arows[i]] (runs that end
    # before the last row; row z+1 itself untouched), in reversed order
    runs = np.array([[1, 1], [3, b.k - 1]] if b.k >= 4 else [[1, b.k - 1]], np.int64)
    for label, F in (("ahead=", None), ("ahead= forcing", b.noise(b.k + 1, b.S))):
        U, A = U0.copy(), b.noise(len(runs), b.S)
        arows = np.arange(len(runs), dtype=np.int64)[::-1].copy()
        b.pb.sweeps(runs, ns, b.h, th, U, np.zeros((b.k + 1, b.Sc)), F, cache=True, ahead=(A, arows))
        ref = b.noise(len(runs), b.S)
        b.pb.steps(runs[arows >= 0, 1] + 1, ns, b.h, th, U, np.zeros((b.k + 1, b.Sc)), ref, arows[arows >= 0], F,
                   cache=True)
        after = runs[:, 1] + 1
        out[label] = max(_same(A[arows[arows >= 0]], ref[arows[arows >= 0]]),
                         _same(U[after[after <= b.k]], U0[after[after <= b.k]]))
    return out


def check_steps(b):
    """steps (independent steps into a separate output) against step, +- forcing."""
    ns, th, U = _forward_arrays(b)
    rows = np.arange(1, b.k + 1, 2)
    out = {}
    for label, F in (("plain", None), ("forcing", b.noise(b.k + 1, b.S))):
        o = b.noise(len(rows), b.S)
        b.pb.steps(rows, ns, b.h, th, U, np.zeros((b.k + 1, b.Sc)), o, np.arange(len(rows))[::-1].copy(), F,
                   cache=True)
        ref = np.array([b.phi(r - 1, U[r - 1], th[r]) + (0 if F is None else F[r]) for r in rows])
        out[label] = _same(o[::-1], ref)
    if accepts(b.pb.steps, "minus"):  # optional extension (MGRIT's FAS restriction in place)
        o = b.noise(len(rows), b.S)
        before = o.copy()
        b.pb.steps(rows, ns, b.h, th, U, np.zeros((b.k + 1, b.Sc)), o, np.arange(len(rows))[::-1].copy(),
                   cache=False, minus=True)
        ref = np.array([b.phi(r - 1, U[r - 1], th[r]) for r in rows])
        out["minus="] = _same(before[::-1] - o[::-1], ref)
    return out


def _forcing_error(LF, F, rows, one):
    """Forced transposed runs: each row must be the unforced single-row map of the row after it,
    plus F (``one(i, lam_next)``: the same form on row i alone), so forcing is checked against the
    form itself, not against step_adjoint."""
    ref = np.array([one(i, LF[i + 1]) + F[i] for i in rows])
    return _same(LF[rows], ref)


def check_sweep_adjoint(b):
    """sweep_adjoint (fine level): dot-product test of the block's map (u[0], theta) -> u[k]
    (states and caches from the plugin's sweep), and its forcing against step_adjoint."""
    pb, k, n0 = b.pb, b.k, int(b.ns[0])
    U, C = np.zeros((k + 1, b.S)), np.zeros((k, b.Sc))
    U[0] = b.U[0]
    pb.sweep(n0, b.h, b.TH, U, C)
    mu = b.noise(b.S)
    Lam = b.noise(k + 1, b.S)
    Lam[k] = mu
    G0 = b.noise(k, b.p)
    G = G0.copy()
    pb.sweep_adjoint(n0, b.h, b.TH, U, C, Lam, G)
    G -= G0
    du, dTH = b.du(0), np.array([b.dth(i) for i in range(k)]).reshape(k, b.p)

    def fd(e):
        t = du
        for i in range(k):
            t = b.tangent(i, t, dTH[i], e, u=U[i])
        return mu @ t

    out = {"dot": _dot_error(fd, Lam[0] @ du + np.sum(G * dTH))}
    F = b.noise(k, b.S)
    LF = b.noise(k + 1, b.S)
    LF[k] = mu
    pb.sweep_adjoint(n0, b.h, b.TH, U, C, LF, np.zeros((k, b.p)), F)

    def one(i, lam_next):  # the same form on the single layer i, unforced
        L = np.vstack([b.noise(1, b.S), lam_next[None]])
        pb.sweep_adjoint(n0 + i, b.h, b.TH[i:i + 1], U[i:i + 2], C[i:i + 1], L, np.zeros((1, b.p)))
        return L[0]

    out["forcing"] = _forcing_error(LF, F, range(k), one)
    return out


def check_parameter_gradient(b):
    """parameter_gradient: G[k] += (dPhi_k/dtheta)^T Lam[k+1] with the adjoint given everywhere."""
    pb, k, n0 = b.pb, b.k, int(b.ns[0])
    U, C = np.zeros((k + 1, b.S)), np.zeros((k, b.Sc))
    U[0] = b.U[0]
    pb.sweep(n0, b.h, b.TH, U, C)
    Lam = b.noise(k + 1, b.S)
    G0 = b.noise(k, b.p)
    G = G0.copy()
    pb.parameter_gradient(n0, b.h, b.TH, U, C, Lam, G)
    G -= G0
    dTH = np.array([b.dth(i) for i in range(k)]).reshape(k, b.p)
    fd = lambda e, rows=range(k): sum(Lam[i + 1] @ b.tangent(i, 0 * U[i], dTH[i], e, u=U[i]) for i in rows)  # noqa
    out = {"dot": _dot_error(fd, np.sum(G * dTH))}
    if not accepts(pb.parameter_gradient, "rows"):  # optional extension (one-shot gradient fusion)
        return out
    rows = np.arange(0, k, 2, dtype=np.int64)  # rows=: only those layers, the others untouched
    G = G0.copy()
    pb.parameter_gradient(n0, b.h, b.TH, U, C, Lam, G, rows=rows)
    G -= G0
    rest = np.setdiff1d(np.arange(k), rows)
    out["rows="] = max(_dot_error(lambda e: fd(e, rows), np.sum(G[rows] * dTH[rows])),
                       float(np.abs(G[rest]).max()) if len(rest) else 0.0)
    return out


def check_sweeps_adjoint(b):
    """sweeps_adjoint: dot-product test of each run's chain of transposed steps (linearised at
    the block's own states, as on MGRIT's coarse levels), and its forcing against step_adjoint."""
    pb, k = b.pb, b.k
    ns, TH, U, C = b.adjoint_arrays()
    runs = _runs(k, 0)
    Lam = b.noise(k + 1, b.S)
    mus = {z: b.noise(b.S) for _, z in runs}
    for z, mu in mus.items():
        Lam[z + 1] = mu
    pb.sweeps_adjoint(runs, ns, b.h, TH, U, C, Lam)
    dus = {a: b.du(a) for a, _ in runs}

    def fd(e):
        tot = 0.0
        for a, z in runs:
            t = dus[a]
            for i in range(a, z + 1):
                t = b.tangent(i, t, np.zeros(b.p), e)
            tot += mus[z] @ t
        return tot

    out = {"dot": _dot_error(fd, sum(Lam[a] @ dus[a] for a, _ in runs))}
    F = b.noise(k, b.S)
    LF = b.noise(k + 1, b.S)
    for z, mu in mus.items():
        LF[z + 1] = mu
    pb.sweeps_adjoint(runs, ns, b.h, TH, U, C, LF, F)

    def one(i, lam_next):  # the same form on the single row i, unforced
        L = b.noise(k + 1, b.S)
        L[i + 1] = lam_next
        pb.sweeps_adjoint(np.array([[i, i]], np.int64), ns, b.h, TH, U, C, L)
        return L[i]

    rows = np.concatenate([np.arange(a, z + 1) for a, z in runs])
    out["forcing"] = _forcing_error(LF, F, rows, one)
    # grad=: also grad[k] += (dPhi_k/dtheta)^T Lam[k+1] along the runs (the one-shot gradient)
    if not accepts(pb.sweeps_adjoint, "grad"):  # optional extension
        return out
    L2 = b.noise(k + 1, b.S)
    for z, mu in mus.items():
        L2[z + 1] = mu
    G0 = b.noise(k, b.p)
    G = G0.copy()
    pb.sweeps_adjoint(runs, ns, b.h, TH, U, C, L2, grad=G)
    G -= G0
    dTH = np.array([b.dth(i) for i in range(k)]).reshape(k, b.p)
    fd = lambda e: sum(L2[i + 1] @ b.tangent(i, np.zeros(b.S), dTH[i], e) for i in rows)  # noqa: E731
    out["grad="] = _dot_error(fd, np.sum(G[rows] * dTH[rows]))
    if not accepts(pb.sweeps_adjoint, "ahead") or runs[-1, 0] < 1:  # optional extension
        return out
    # ahead=(A, arows): also the transposed step k = a-1 before each run into A[arows[i]] (Lam[a-1]
    # untouched; with grad= its gradient too): the first run starts at row 0 and has none (-1)
    arows = np.r_[-1, np.arange(len(runs) - 1)][: len(runs)].astype(np.int64)
    before = runs[arows >= 0, 0] - 1
    for label, F in (("ahead=", None), ("ahead= forcing", b.noise(k, b.S))):
        L3, A = L2.copy(), b.noise(len(runs), b.S)
        L3[before] = b.noise(len(before), b.S)
        keep = L3[before].copy()
        G3 = np.zeros((k, b.p))
        pb.sweeps_adjoint(runs, ns, b.h, TH, U, C, L3, F, grad=G3, ahead=(A, arows))
        ref = b.noise(len(runs), b.S)
        pb.steps_adjoint(before, ns, b.h, TH, U, C, L3, ref, arows[arows >= 0], F)
        rows3 = np.r_[rows, before]
        fd = lambda e: sum(L3[i + 1] @ b.tangent(i, np.zeros(b.S), dTH[i], e) for i in rows3)  # noqa: E731
        out[label] = max(_same(A[arows[arows >= 0]], ref[arows[arows >= 0]]), _same(L3[before], keep),
                         _dot_error(fd, np.sum(G3[rows3] * dTH[rows3])))
    return out


def check_steps_adjoint(b):
    """steps_adjoint: independent transposed steps into a separate output, +- forcing."""
    pb, k = b.pb, b.k
    ns, TH, U, C = b.adjoint_arrays()
    rows = np.arange(0, k, 2)
    orows = np.arange(len(rows))[::-1].copy()
    Lam = b.noise(k + 1, b.S)
    o = b.noise(len(rows), b.S)
    pb.steps_adjoint(rows, ns, b.h, TH, U, C, Lam, o, orows)
    dus = [b.du(r) for r in rows]
    fd = lambda e: sum(Lam[r + 1] @ b.tangent(r, dus[i], np.zeros(b.p), e) for i, r in enumerate(rows))  # noqa: E731
    out = {"dot": _dot_error(fd, sum(o[orows[i]] @ dus[i] for i in range(len(rows))))}
    F = b.noise(k, b.S)
    o2 = b.noise(len(rows), b.S)
    pb.steps_adjoint(rows, ns, b.h, TH, U, C, Lam, o2, orows, F)
    out["forcing"] = _same(o2[orows] - o[orows], F[rows])  # independent steps: F is added once
    if accepts(pb.steps_adjoint, "minus"):  # optional extension (MGRIT's FAS restriction in place)
        o3 = b.noise(len(rows), b.S)
        before = o3.copy()
        pb.steps_adjoint(rows, ns, b.h, TH, U, C, Lam, o3, orows, minus=True)
        out["minus="] = _same(before - o3, o)
    return out


FINE_FORMS = (("sweep", check_sweep), ("sweep_adjoint", check_sweep_adjoint),
              ("parameter_gradient", check_parameter_gradient))
ALL_LEVEL_FORMS = (("sweeps", check_sweeps), ("steps", check_steps), ("sweeps_adjoint", check_sweeps_adjoint),
                   ("steps_adjoint", check_steps_adjoint))


# ---- Taylor test ----------------------------------------------------------------------------
def taylor(obj, x, rng):
    """(orders, remainders, e0) of the reduced gradient at x along a random direction.  Its Vecs
    are destroyed here, collectively: left to Python's garbage collection they ended in PETSc's
    delayed-destruction lists unlike on every rank, and PETSc's finalisation then hung (2 ranks,
    no coarse level)."""
    g = x.duplicate()
    J0 = obj.evaluate(x, g)
    d = x.duplicate()
    d.setArray(rng.standard_normal(d.getLocalSize()))
    slope = g.dot(d)
    e0 = 1e-2 * _rms_vec(x)
    rem, floor = [], []
    for k in range(HALVINGS + 1):
        e = e0 / 2**k
        xe = x.copy()
        xe.axpy(e, d)
        Je = obj.evaluate(xe)
        xe.destroy()
        rem.append(abs(Je - J0 - e * slope))
        floor.append(1e3 * np.finfo(float).eps * max(abs(J0), abs(Je), abs(e * slope)))
    rem, floor = np.array(rem), np.array(floor)
    valid = (rem[:-1] > floor[:-1]) & (rem[1:] > floor[1:])
    orders = np.log2(rem[:-1] / np.where(rem[1:] > 0, rem[1:], np.nan))
    g.destroy()
    d.destroy()
    return orders, valid, rem, floor, e0


def _rms_vec(x):
    n = x.getSize()
    r = x.norm() / np.sqrt(n) if n else 0.0
    return r if r > 0 else 1.0


# ---- driver ---------------------------------------------------------------------------------
def tested_mode(values):
    """The mode whose MGRIT hierarchies are tested: the run's -mode, exact's for -mode serial."""
    return values["mode"] if values["mode"] in ("exact", "oneshot") else "exact"


def hierarchy_objective(problem, grid, values, db, comm):
    """The reduced objective with the MGRIT hierarchies that ``tested_mode`` builds from the options
    (e.g. one-shot's coarsening factor 8, where exact mode's default is 4)."""
    from ..optim.modes import mode_settings
    from ..optim.objective import ReducedObjective

    st, ad = mode_settings(dict(values, mode=tested_mode(values)), db, grid)
    return ReducedObjective(grid, problem, comm, state_mgrit=st, adjoint_mgrit=ad)


def _blocks(pb, grid, obj, x, hier, rng, comm):
    """(label, Block or None, fine?) for the fine step size and each coarse h*m of the hierarchy."""
    from ..mgrit.solver import coarse_parameters

    data = pb.datasets["train"]
    Sc = pb.cache_size(data)
    g, thetas = obj.design.split(obj.design.local(x))
    U = obj.state.U  # row k: u[n0 + k]
    k = min(grid.nlocal, BLOCK)
    out = [(f"h={grid.h:.6g} (fine)", Block(pb, grid.h, grid.n0 + np.arange(k), thetas[:k], U[:k + 1], Sc, rng),
            True)]
    ms = sorted({lev.m for solver in (hier.mgrit, hier.adj_mgrit) if solver is not None
                 for lev in solver.levels if lev.m > 1})
    allth = np.concatenate(comm.allgather(thetas)) if ms else None
    for m in ms:
        starts = np.arange(-(-grid.n0 // m) * m, grid.n1, m)
        starts = starts[starts + m <= grid.N][:BLOCK]
        blk = None
        if len(starts):
            blk = Block(pb, grid.h * m, starts, coarse_parameters(pb, allth, starts, m),
                        np.vstack([U[starts - grid.n0], np.zeros((1, U.shape[1]))]), Sc, rng)
        out.append((f"h*m={grid.h * m:.6g} (coarse, m={m})", blk, False))
    return out


#: framework options that select training, not the maps: given with -check_adjoint, a warning
IGNORED = ("run_dir", "load", "batch_size", "oneshot_tao", "oneshot_state_its", "oneshot_adjoint_its",
           "stop_state_residual", "stop_adjoint_residual", "checkpoint_every", "checkpoint_seconds", "resume",
           "design_layout")


def check_adjoint(problem, grid, values, db, comm, out=print):
    """Run every check; rank 0 prints one PASS/FAIL line each.  Returns the exit status (0/1)."""
    import sys

    from ..base.errors import NumericalFailure
    from ..optim.objective import ReducedObjective

    rank, pb = comm.Get_rank(), problem
    for name in IGNORED:
        if db.hasName(name) and rank == 0:
            print(f"ocnet: warning: -{name} is ignored by -check_adjoint (it tests the maps at a generic design "
                  "on the full training data)", file=sys.stderr, flush=True)
    seed = values["seed"]
    rng = np.random.default_rng([seed, 99, rank])
    obj = ReducedObjective(grid, pb, comm)  # layer-serial: exact state, adjoint and gradient
    x = obj.design.initial(seed)
    noise = x.duplicate()
    noise.setArray(np.random.default_rng([seed, 98, rank]).standard_normal(noise.getLocalSize()))
    x.axpy(0.1 * _rms_vec(x), noise)  # a generic point
    obj.evaluate(x)  # forward states at x: the linearisation points
    hier = hierarchy_objective(pb, grid, values, db, comm)
    if values.get("mgrit_view"):
        from ..mgrit.solver import view_solves
        lines = view_solves(hier.mgrit, hier.adj_mgrit,
                            f"the hierarchy -check_adjoint tests (that of -mode {tested_mode(values)})")
        if rank == 0:
            out("\n".join(lines))

    data = pb.datasets["train"]
    g, thetas = obj.design.split(obj.design.local(x))
    g_last = obj.solver.share_global(g)
    results = []  # (name, {component: error} or None on ranks without data, tolerance)

    def add(name, run, fn, *args, tol=DOT_TOL, source=None):
        """Run a (local) check on the ranks where ``run``; an exception in the plugin is a FAIL.
        ``source``: where the tested method comes from, named on a FAIL line."""
        res = None
        if run:
            try:
                res = fn(*args)
            except Exception as e:  # noqa: BLE001 -- reported as the check's failure, run continues
                res = {f"raised {type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}": np.inf}
        results.append((name, res, tol, source))

    step_source = f"step_adjoint from {origin(pb, 'step_adjoint')}, step from {origin(pb, 'step')}"
    for label, blk, fine in _blocks(pb, grid, obj, x, hier, rng, comm):
        add(f"step {label}", blk is not None, check_step, blk, source=step_source)
        for name, fn in (FINE_FORMS if fine else ()) + ALL_LEVEL_FORMS:
            if overrides(pb, name):
                add(f"{name} {label}", blk is not None, fn, blk,
                    tol=SAME_TOL if name in ("sweep", "sweeps", "steps") else DOT_TOL,
                    source=f"{name} from {origin(pb, name)}")
    G = pb.global_param_size
    if G:
        add("opening", grid.first, check_opening, pb, g, data, obj.state.U.shape[1], rng)
    add("terminal", grid.last, check_terminal, pb, g_last, data, obj.state.U[-1].copy(), rng)
    if overrides(pb, "layer_regularization") and pb.layer_param_size:
        add("layer_regularization", True, check_layer_regularization, pb, grid.h, grid.n0, grid.N, thetas, rng)
    if overrides(pb, "global_regularization") and G:
        add("global_regularization", grid.first, check_global_regularization, pb, g, rng)
    try:  # a non-finite gradient stops the objective on every rank alike: that test fails
        orders, valid, rem, floor, e0 = taylor(obj, x, rng)
        broken = None
    except NumericalFailure as e:
        broken = str(e)

    gathered = comm.gather(results, root=0)
    status = 0
    if rank == 0:
        out(f"ocnet: -check_adjoint {pb.name} N={grid.N} ranks={grid.size}: dot-product tests (relative difference; "
            f"tolerance {DOT_TOL:g}; forward forms vs the step loop and forcing terms: {SAME_TOL:g}) at a generic design")
        failed = rounded = 0
        for i, (name, _, tol, source) in enumerate(results):
            comps, floors = {}, {}
            for per_rank in gathered:
                for c, v in (per_rank[i][1] or {}).items():
                    v, fl = v if isinstance(v, tuple) else (v, 0.0)  # (error, its rounding floor)
                    if not (v <= comps.get(c, 0.0)):
                        floors[c] = fl
                    comps[c] = _worst([comps.get(c, 0.0), v])
            # a difference above the tolerance but within its rounding floor decides nothing: the
            # line says so instead of blaming the plugin (a NaN fails); a floor of UNTESTED or more
            # cannot tell a wrong transpose (off by O(1)) from round-off: not a pass
            limited = {c for c, v in comps.items() if v > tol and v <= floors.get(c, 0.0)}
            untested = {c for c in limited if floors[c] >= UNTESTED}
            ok = all(v <= tol or (c in limited and c not in untested) for c, v in comps.items())
            failed += not ok
            rounded += bool(ok and limited)
            text = ", ".join(c if c.startswith("raised") else f"{c} {v:.1e}" + (
                f" (not tested: the round-off of its difference quotient is {floors[c]:.1e}, as large as a wrong "
                "transpose's error; its output is large against its change: test where the states are of "
                "moderate size)" if c in untested else
                f" (within the round-off of the difference quotient, {floors[c]:.1e}: its output is large against "
                "its change, so this component cannot be tested closer)" if c in limited else "")
                for c, v in comps.items())
            out(f"{'PASS' if ok else 'FAIL'}  {name}: {text}" + ("" if ok or source is None else f"  [{source}]"))
        steps = f", e = {e0:.1e} / 2^k, k = 0..{HALVINGS}" if not broken else ""
        if broken:
            ok, note = False, broken
        elif len(orders[valid]) >= 2:
            good = orders[valid]
            ok = bool(np.median(good) >= MIN_ORDER)
            left = len(orders) - len(good)
            note = (f"observed orders {' '.join(f'{o:.2f}' for o in good)} "
                    f"(median {np.median(good):.2f}, need >= {MIN_ORDER}"
                    + (f"; {left} of {len(orders)} left out: their remainders are at round-off" if left else "") + ")")
        else:  # the remainder is at round-off already: J is linear along d and the slope matches
            ok = bool(np.all(rem <= 10 * floor))
            note = f"remainders {' '.join(f'{r:.1e}' for r in rem)} at round-off" if ok else \
                f"remainders {' '.join(f'{r:.1e}' for r in rem)} do not decay"
        failed += not ok
        out(f"{'PASS' if ok else 'FAIL'}  Taylor test of the reduced gradient (layer-serial{steps}): {note}")
        n = len(results) + 1
        weak = f" ({rounded} of them only to the round-off of a difference quotient)" if rounded else ""
        out(f"ocnet: -check_adjoint: {f'{failed} of {n} checks FAILED' if failed else f'all {n} checks passed'}{weak}")
        status = 1 if failed else 0
    return comm.bcast(status, root=0)
