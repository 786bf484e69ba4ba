"""Multigrid reduction in time (MGRIT) over the layer domain: nonlinear FAS V-cycles for the state.

Level l has the points j = 0..N//m_l at fine indices j*m_l (m_l = product of the coarsening
factors below it), step h*m_l, and the plugin's own step with parameters injected from the first
fine layer of each coarse step.  A rank owns the points whose fine index lies in its block
(n0, n1] (rank 0 also point 0); a rank may own none on coarse levels.  Relaxation keeps all
ranks busy: a rank first sends its last point when that is a C-point (F-relaxation does not
change it), relaxes the intervals that start at its own C-points, then receives its left halo
and relaxes the interval that began on the left.  The coarsest level is solved by a sweep that
passes the state rank to rank.  One level is the layer-serial sweep itself.
"""
import math
from dataclasses import dataclass

import numpy as np
from petsc4py import PETSc

from . import rowops
from ..base import jit_clock
from ..base.errors import OcnetError
from ..plugin.problem import accepts

#: a cycle whose residual grew more than this many times blew up (the monitor says so): a warm
#: start's first cycle rises above a residual below the coarse grid's error, but by far less
GREW = 1e3

RELAXATIONS = ("F", "FCF", "FCFCF")
ROUNDOFF = 64 * np.finfo(float).eps  # residual floor relative to |u| over the C-points
#: a stall (the residual less than halved over STALL_CYCLES cycles, rho > 0.79) below this level
#: relative to |u| is the step's own round-off (an implicit step's solve, a stepper with large
#: coefficients amplify rounding beyond 64 eps: a tester's explicit stepper stalled at 2.4 times
#: ROUNDOFF): counted as converged.  A thousand times ROUNDOFF, 1.4e-11 (sqrt(eps) counted a
#: frozen MGRIT iterate at 8e-9 |u|, 5e-11 off in J, as converged)
STALL_FLOOR = 1e3 * ROUNDOFF
STALL_CYCLES = 3
_EVENTS = {}


def stalling(history, cycles=STALL_CYCLES):
    """The last ``cycles`` cycles of a residual ``history`` less than halved it (rho > 0.79 for 3)."""
    return len(history) > cycles and history[-1] > 0.5 * history[-1 - cycles]


def event(name):
    """A PETSc log event (shown by -log_view), created once."""
    if name not in _EVENTS:
        _EVENTS[name] = PETSc.Log.Event(name)
    return _EVENTS[name]


#: Numba compile seconds inside each event (ocnet.base.jit_clock), for phases.json to leave out
#: as wall_time does (a kernel first compiled mid-run: a cold cache on a new node)
JIT_IN = {}


class phase:
    """``with phase(name):`` times a block as the PETSc log event ``name`` (and the Numba compile
    seconds inside it: ``JIT_IN``)."""

    def __init__(self, name):
        self.ev, self.name = event(name), name

    def __enter__(self):
        self.j0 = jit_clock.seconds()
        self.ev.begin()

    def __exit__(self, *exc):
        self.ev.end()
        d = jit_clock.seconds() - self.j0
        if d:
            JIT_IN[self.name] = JIT_IN.get(self.name, 0.0) + d


def logged(name):
    """Log a method as the event ``<self.log_prefix><name>`` (state MGRIT: ``MGRITRelax``, ...;
    the adjoint's: ``AdjMGRITRelax``, ...), so -log_view and runs/bench_modes.py tell them apart."""
    def wrap(fn):
        def inner(self, *a, **k):
            with phase(self.log_prefix + name):
                return fn(self, *a, **k)
        inner.__name__, inner.__doc__ = fn.__name__, fn.__doc__
        return inner
    return wrap


@dataclass
class MGRITSettings:
    """One MGRIT solve's settings (the options ``-mgrit_*``, ``-state_mgrit_*``, ``-adjoint_mgrit_*``;
    ``declare`` lists them):
    ``levels`` (1: the layer-serial sweep), ``cfactor`` (coarsening factor per level, a tuple of
    ints >= 2; the last repeats), ``min_coarse`` (stop coarsening below this many points),
    ``relax`` / ``fine_relax`` (F, FCF or FCFCF; fine_relax '' = relax), ``cweight`` (C-relaxation
    weight in (0, 2]), ``cycle`` (V or F), ``skip_down`` / ``warm_skip`` (no relaxation on the first
    down-cycle of the first / of every solve), ``max_it`` (cycles per solve, >= 1), ``rtol`` /
    ``atol`` (stop when the C-point residual is below rtol x its start or atol; 0 for both: run
    max_it cycles), ``monitor`` (print each cycle).  MGRIT as in Falgout, Friedhoff, Kolev,
    MacLachlan, Schroder, *Parallel time integration with multigrid*, SIAM J. Sci. Comput. 36
    (2014); FAS for the nonlinear state.  Raises OcnetError for a value outside these ranges (the
    options check the same when read)."""
    levels: int = 1
    cfactor: tuple = (4,)
    min_coarse: int = 2
    relax: str = "FCF"
    fine_relax: str = ""
    cweight: float = 1.0
    cycle: str = "V"
    skip_down: bool = False
    warm_skip: bool = False
    max_it: int = 20
    rtol: float = 1e-9
    atol: float = 0.0
    monitor: bool = False

    def __post_init__(self):
        checks = ((isinstance(self.levels, (int, np.integer)) and self.levels >= 1, "levels >= 1"),
                  (len(tuple(self.cfactor)) > 0 and all(int(c) >= 2 for c in self.cfactor), "cfactor entries >= 2"),
                  (self.min_coarse >= 1, "min_coarse >= 1"), (self.relax in RELAXATIONS, f"relax in {RELAXATIONS}"),
                  (self.fine_relax in ("",) + RELAXATIONS, f"fine_relax '' or in {RELAXATIONS}"),
                  (0 < self.cweight <= 2, "0 < cweight <= 2"), (self.cycle in ("V", "F"), "cycle V or F"),
                  (self.max_it >= 1, "max_it >= 1"), (self.rtol >= 0 and self.atol >= 0, "rtol, atol >= 0"))
        bad = [what for ok, what in checks if not ok]
        if bad:
            raise OcnetError(f"MGRITSettings: {', '.join(bad)} (got {self})")

    @classmethod
    def declare(cls, opts, prefix):
        g = f"{prefix}mgrit"
        opts.add(f"{prefix}mgrit_levels", int, cls.levels, "MGRIT levels (1 = layer-serial sweep); not given, -mode exact "
                 "and oneshot coarsen until the coarsest level has at most 8 points", group=g,
                 bounds="[1,inf)")
        opts.add(f"{prefix}mgrit_cfactor", str, "4", "coarsening factor (>= 2), one value or one per level "
                 "(comma-separated)", group=g)
        opts.add(f"{prefix}mgrit_min_coarse", int, cls.min_coarse, "stop coarsening below this many points",
                 group=g, bounds="[2,inf)")
        opts.add(f"{prefix}mgrit_relax", str, cls.relax, "relaxation", choices=RELAXATIONS, group=g)
        opts.add(f"{prefix}mgrit_fine_relax", str, "", "relaxation on the finest level (default: -mgrit_relax)",
                 choices=("",) + RELAXATIONS, group=g)
        opts.add(f"{prefix}mgrit_cweight", float, cls.cweight, "weight of C-relaxation (1 = plain)", group=g,
                 bounds="(0,2]")
        opts.add(f"{prefix}mgrit_cycle", str, cls.cycle, "cycle type", choices=("V", "F"), group=g)
        opts.add(f"{prefix}mgrit_skip_down", bool, False, "skip relaxation on the first down-cycle", group=g)
        opts.add(f"{prefix}mgrit_warm_skip", bool, False, "fixed-cycle (one-shot) solves: no relaxation on the "
                 "first down-cycle of every solve (the warm start's F-points are restricted)", group=g)
        opts.add(f"{prefix}mgrit_max_it", int, cls.max_it, "maximum MGRIT iterations per solve", group=g,
                 bounds="[1,inf)")
        opts.add(f"{prefix}mgrit_rtol", float, cls.rtol, "relative tolerance on the C-point residual", group=g,
                 bounds="[0,1]")
        opts.add(f"{prefix}mgrit_atol", float, cls.atol, "absolute tolerance on the C-point residual", group=g,
                 bounds="[0,inf)")
        opts.add(f"{prefix}mgrit_monitor", bool, False, "print residual norm and convergence factor", group=g)

    @classmethod
    def from_values(cls, values, prefix, flags=None):
        """Settings from option values (ranges are checked when the options are read);
        ``flags``: the option name each value came from, for messages."""
        v = {k[len(prefix) + len("mgrit_"):]: values[k] for k in values if k.startswith(f"{prefix}mgrit_")}
        flag = (flags or {}).get(f"{prefix}mgrit_cfactor", f"{prefix}mgrit_cfactor")
        try:
            cf = tuple(int(c) for c in str(v["cfactor"]).split(","))
        except ValueError:
            raise OcnetError(f"option -{flag}: expected integers, got '{v['cfactor']}'") from None
        if any(c < 2 for c in cf):
            raise OcnetError(f"option -{flag}: coarsening factors must be >= 2 (got {v['cfactor']})")
        return cls(v["levels"], cf, v["min_coarse"], v["relax"], v["fine_relax"], v["cweight"], v["cycle"],
                   v["skip_down"], v["warm_skip"], v["max_it"], v["rtol"], v["atol"], v["monitor"])

    def factor(self, level):
        return self.cfactor[min(level, len(self.cfactor) - 1)]


class Level:
    """Rows r <-> points p0 + r; row 0 is the halo (rank 0: point 0, the fixed initial state).
    Row r > 0 holds the step into point p0 + r: its parameters, cache, forcing and layer index."""

    def __init__(self, grid, m, cf, S, Sc, p, U=None, C=None, alloc=np.zeros):
        self.m, self.cf = m, cf
        self.npoints = grid.N // m + 1
        lo = 0 if grid.first else grid.n0 + 1
        j_lo, j_hi = -(-lo // m), grid.n1 // m
        self.p0 = 0 if grid.first else j_lo - 1
        self.nrows = max(j_hi - self.p0 + 1, 1)
        self.owns = j_hi >= j_lo
        # U, G and the C-point scratch are allocated on first use: a level's G (right-hand side)
        # is read only where it is forced (coarse levels; the adjoint's fine level inside a
        # Krylov PC), and the adjoint KSP's operator level only by a Krylov method (each saves a
        # whole trajectory of memory where it is not used)
        self._alloc, self._S, self._U, self._work = alloc, S, U, None
        self._G = alloc((self.nrows, S)) if m > 1 else None  # coarse levels: forced, allocated now
        self.C = alloc((self.nrows, Sc)) if C is None else C
        self.thetas = np.zeros((self.nrows, p))
        self.forced = m > 1  # G is a right-hand side (coarse levels; the fine level inside a PC)
        rows = np.arange(self.nrows)
        self.ns = (self.p0 + rows - 1) * m  # fine layer index of the step into each row
        is_c = (self.p0 + rows) % cf == 0
        self.c_rows = rows[1:][is_c[1:]]
        f = np.flatnonzero(~is_c[1:]) + 1  # runs of consecutive F rows, as (first, last) pairs
        cut = np.flatnonzero(np.diff(f) > 1)
        self.f_runs = np.stack([np.r_[f[:1], f[cut + 1]], np.r_[f[cut], f[-1:]]], axis=1).astype(np.int64)
        # C-point scratch (``work``), allocated (and touched) once: fresh large temporaries per
        # cycle cost page faults that were measured to slow the C-point steps down twofold
        self.send_buf, self.send_req = np.zeros(S), None  # see MGRIT._send_last
        # True right after an F-relaxation until a C-point changes: a second F-relaxation would
        # recompute bitwise the same F-points, so MGRIT.relax skips it (see there)
        self.f_relaxed = False
        # C-point look-ahead (MGRIT.f_relax): None, or whether the caches were kept when the
        # F-relaxation also stepped into each C-row, Phi(U[c-1]) (+ G[c]), into the next coarser
        # level's G at the C-row's coarse row (``ahead_rows``)
        self.ahead, self.ahead_rows = None, None
        # True from a correction until a C-point changes: the coarser level's points still hold
        # this level's C-points (they were copied from there), so a restriction need not inject
        self.injected = False

    @property
    def f_relaxed(self):
        return self._f_relaxed

    @f_relaxed.setter
    def f_relaxed(self, value):
        self._f_relaxed = value
        if not value:  # C-points changed: the look-ahead values are stale
            self.ahead = None
            self.injected = False

    @property
    def U(self):
        if self._U is None:
            self._U = self._alloc((self.nrows, self._S))
        return self._U

    @property
    def G(self):
        if self._G is None:
            self._G = self._alloc((self.nrows, self._S))
        return self._G

    @property
    def work(self):
        if self._work is None:
            self._work = np.zeros((2, len(self.c_rows), self._S))
        return self._work

    def point(self, r):
        return self.p0 + r

    def is_c(self, r):
        return self.point(r) % self.cf == 0

    def coarse_rows(self, rows, coarse):
        """Rows of the coarse level holding the points of (C-point) ``rows`` of this level."""
        return (self.p0 + rows) // self.cf - coarse.p0


class MGRIT:
    """State solve A(u) = g, A(u)[j] = u[j] - Phi_j(u[j-1]), by FAS MGRIT cycles (Falgout et al.,
    SIAM J. Sci. Comput. 36, 2014; FAS: Brandt's full approximation scheme for the nonlinear step).

    ``MGRIT(grid, problem, comm, settings, state_size, cache_size, traj)``: ``settings`` an
    MGRITSettings, ``state_size`` / ``cache_size`` the problem's S and Sc for the data solved on,
    ``traj`` the ocnet.optim.layout.Trajectory it solves into (its U is the initial guess, a warm
    start, and the result; row 0 of rank 0 must hold u[0], the problem's ``opening``).  Collective
    over ``comm``; ``solve`` returns the iterations run, ``residual`` / ``history`` the C-point
    residual norms."""

    log_prefix = "MGRIT"  # PETSc log events MGRITRelax, MGRITRestrict, ...

    def __init__(self, grid, problem, comm, settings, state_size, cache_size, traj):
        self.grid, self.problem, self.comm, self.s = grid, problem, comm, settings
        p = problem.layer_param_size
        self.levels = []
        for l, (m, cf) in enumerate(hierarchy(grid.N, settings)):
            if l == 0:
                lev = Level(grid, m, cf, state_size, cache_size, p, traj.U, traj.Cfull, alloc=self.alloc)
            else:
                lev = Level(grid, m, cf, state_size, cache_size, p, alloc=self.alloc)
            self.levels.append(lev)
        for lev in self.levels:
            self.link(lev)
        self.extra_levels = []  # levels outside the hierarchy that communicate (flushed too)
        self.history, self.converged = [], False
        self.measure_rho, self.unorm = False, 0.0  # adaptive one-shot: residual before the last fixed cycle too
        self._first = True  # skip_down applies to the very first cycle (cold start) only
        #: the trajectory went non-finite (set by the caller, on every rank alike): the next solve
        #: starts from zeros where it holds inf/nan instead of warm (cycles on a NaN guess only
        #: waste work: a tester's one-shot run spent 41 of 199 cycles on them)
        self.restart = False
        self._ahead = accepts(problem.sweeps, "ahead")  # the C-point look-ahead (f_relax)
        self._minus = accepts(problem.steps, "minus")  # FAS right-hand side in place (restrict)
        # keep_coarse: the coarse levels' last F-relaxations and coarsest sweep keep their step
        # caches, so that after a solve every coarse level holds the states, parameters and
        # caches of its steps at the final iterate (``coarse_final``): the adjoint's coarse
        # linearisation, which AdjointMGRIT.set_parameters then reads instead of recomputing
        self.keep_coarse, self.coarse_final, self._cycled = False, False, False
        self._final_thetas = None  # the fine parameters of the solve that left coarse_final
        self.last_cycle = False  # True during the last cycle of a fixed-cycle (one-shot) solve
        self._fixed = False  # True during a fixed-cycle solve

    @staticmethod
    def alloc(shape):
        """Storage of level arrays (the adjoint stores its reversed rows back to front)."""
        return np.zeros(shape)

    # ---- communication ----------------------------------------------------------------
    def link(self, lev):
        """The level's neighbours: the nearest ranks to the left and right that own points on it
        (None: none).  Halos go between them directly; ranks without points on a coarse level
        take no part in its communication (collective, once per level).  Only messages change:
        each halo is the same state it was when empty ranks forwarded it."""
        owners = self.comm.allgather(bool(lev.owns))
        r = self.grid.rank
        left = [q for q in range(r) if owners[q]]
        right = [q for q in range(r + 1, len(owners)) if owners[q]]
        lev.left = left[-1] if (left and lev.owns) else None
        lev.right = right[0] if (right and lev.owns) else None

    def _tag(self, lev):
        return 300 + (self.levels.index(lev) if lev in self.levels else 99)

    def _send_last(self, lev):
        """Post the last row to the right neighbour from the level's send buffer and return at
        once: waiting here would block until the neighbour reaches its receive (large messages
        are not buffered), which measured ~10% of a 2-rank cycle.  The previous send of the
        level completes first (its buffer is reused); ``flush`` completes the last one."""
        if lev.send_req is not None:
            lev.send_req.Wait()
        lev.send_buf[:] = lev.U[lev.nrows - 1]
        lev.send_req = self.comm.Isend(lev.send_buf, dest=lev.right, tag=self._tag(lev))

    def flush(self):
        """Complete every pending send (end of a solve)."""
        for lev in self.levels + self.extra_levels:
            if lev.send_req is not None:
                lev.send_req.Wait()
                lev.send_req = None

    @logged("Comm")
    def _recv_halo(self, lev):
        self.comm.Recv(lev.U[0], source=lev.left, tag=self._tag(lev))

    @logged("Comm")
    def exchange(self, lev):
        """Halo row 0 <- last point of the nearest left rank owning one."""
        if lev.left is not None:
            self._recv_halo(lev)
        if lev.right is not None:
            self._send_last(lev)

    # ---- the two batched primitives every operation below goes through -----------------
    def _sweeps(self, lev, runs, cache=None, ahead=None):
        """In-place sweeps of the row runs ``runs`` (k x 2) from the row before each (+ forcing).
        ``cache``: whether the steps' caches will be read (default: the finest level's are).
        ``ahead`` (out, out_rows): also the step out of run i's last row into out[out_rows[i]]
        (none where out_rows[i] < 0), the plugin's ``sweeps(ahead=)``."""
        if len(runs):
            kw = {} if ahead is None else {"ahead": ahead}
            self.problem.sweeps(runs, lev.ns, self.grid.h * lev.m, lev.thetas, lev.U, lev.C,
                                lev.G if lev.forced else None, cache=lev.m == 1 if cache is None else cache, **kw)

    def _steps(self, lev, rows, out, out_rows=None, forced=False, cache=None, minus=False):
        """out[out_rows[i]] = Phi(U[r-1]) (+ G[r] if ``forced``), r = rows[i] (default out_rows:
        0, 1, ...): the steps into ``rows``, independently, in one call; ``out`` may be lev.U.
        The steps' caches are kept (the fine level's are the adjoint's linearisation).
        ``minus``: out[out_rows[i]] -= Phi(U[r-1]) (the plugin's ``steps(minus=)``)."""
        if len(rows):
            kw = {"minus": True} if minus else {}
            self.problem.steps(rows, lev.ns, self.grid.h * lev.m, lev.thetas, lev.U, lev.C, out,
                               np.arange(len(rows)) if out_rows is None else out_rows,
                               lev.G if forced else None, cache=lev.m == 1 if cache is None else cache, **kw)

    def _c_values(self, lev, cache=None):
        """(phi, phi_rows): phi[phi_rows[i]] = Phi(U[r-1]) (+ G[r] on forced levels) for the
        level's C-rows r = c_rows[i]: the F-relaxation's look-ahead when it is valid (and kept
        the caches if they are wanted), else computed into the level's scratch."""
        keep = lev.m == 1 if cache is None else cache
        if lev.ahead is not None and (lev.ahead or not keep):
            coarse = self._coarser(lev)
            return coarse.G, lev.coarse_rows(lev.c_rows, coarse)
        self._steps(lev, lev.c_rows, lev.work[0], forced=lev.forced, cache=cache)
        return lev.work[0], np.arange(len(lev.c_rows))

    def _coarser(self, lev):
        """The next coarser level of ``lev`` (None: the coarsest, or a level outside the hierarchy)."""
        for fine, coarse in zip(self.levels, self.levels[1:]):
            if fine is lev:
                return coarse
        return None

    def _lookahead(self, lev):
        """(coarse level, coarse row per F-run or -1) of the look-ahead of ``lev``'s F-relaxation
        (None: the coarsest level, a level outside the hierarchy, or a plugin without it)."""
        coarse = self._coarser(lev) if self._ahead else None
        if coarse is None:
            return None
        if lev.ahead_rows is None:  # static: the C-row after each run, on this level's layout
            nxt = lev.f_runs[:, 1] + 1
            rows = np.full(len(nxt), -1, np.int64)
            ok = nxt < lev.nrows
            rows[ok] = lev.coarse_rows(nxt[ok], coarse)
            lev.ahead_rows = rows
        return coarse

    # ---- relaxation ---------------------------------------------------------------------
    def f_relax(self, lev, cache=None):
        """F-relaxation; where the plugin's sweeps take ``ahead=``, each F-run's sweep also takes
        the step into the C-row after it (the C-point values that the restriction, the residual
        and C-relaxation need next, computed while the run's last state is in cache; bitwise the
        separate steps), into the coarser level's G (``Level.ahead``)."""
        runs = lev.f_runs
        last_c = lev.owns and lev.is_c(lev.nrows - 1)
        has_left, has_right = lev.left is not None, lev.right is not None
        if has_right and last_c:  # F-relaxation does not change it: send before relaxing
            self._send_last(lev)
        leading = len(runs) and runs[0, 0] == 1 and has_left
        coarse = self._lookahead(lev)
        ahead = lambda sl: None if coarse is None else (coarse.G, lev.ahead_rows[sl])
        self._sweeps(lev, runs[1:] if leading else runs, cache, ahead(slice(1 if leading else 0, None)))
        if has_left:
            self._recv_halo(lev)
            if leading:
                self._sweeps(lev, runs[:1], cache, ahead(slice(0, 1)))
            elif coarse is not None and lev.nrows > 1:  # a C-row right after the halo
                one = np.array([1], np.int64)
                self._steps(lev, one, coarse.G, lev.coarse_rows(one, coarse), forced=lev.forced, cache=cache)
        if has_right and not last_c:
            self._send_last(lev)
        lev.f_relaxed = True
        lev.ahead = None if coarse is None else (lev.m == 1 if cache is None else cache)

    def point_residuals(self, lev, out):
        """out[i] = U[r] - Phi(U[r-1]) for the owned rows r in order (the first rank's row 0,
        the initial point: U[0]); the halo is exchanged first.  The space-time operator action."""
        self.exchange(lev)
        rows = np.arange(1, lev.nrows)
        first = 1 if self.grid.first else 0
        if self.grid.first:
            out[0] = lev.U[0]
        phi = np.empty((len(rows), lev.U.shape[1]))
        if len(rows):
            self._steps(lev, rows, phi)
        out[first:] = lev.U[1:] - phi

    def c_relax(self, lev, cache=None):
        # the halo row is valid after the preceding F-relaxation
        rows, w = lev.c_rows, self.s.cweight
        if lev.ahead is not None:  # the F-relaxation's look-ahead holds the new C-point values
            phi, prow = self._c_values(lev, cache)
            if w == 1.0:
                rowops.copy_rows(lev.U, rows, phi, prow)
            else:
                rowops.blend_rows(lev.U, rows, phi, prow, w)
        elif w == 1.0:  # straight into U: the steps read F-rows and write C-rows
            self._steps(lev, rows, lev.U, rows, forced=lev.forced, cache=cache)
        else:
            phi, prow = self._c_values(lev, cache)
            rowops.blend_rows(lev.U, rows, phi, prow, w)
        lev.f_relaxed = False

    @logged("Relax")
    def relax(self, lev):
        kind = self.s.fine_relax if (lev is self.levels[0] and self.s.fine_relax) else self.s.relax
        # pre-relaxation: its caches are all recomputed before a solve ends (by the correction's
        # F-relaxation and the residual), so the plugin need not store them.  Its opening
        # F-relaxation is skipped when the level was F-relaxed since its C-points last changed
        # (the second and later cycles of a solve, and the first after the residual of the
        # guess): it would recompute the same values bitwise (F-points depend only on the
        # C-points, the halo and the parameters), so the iterates do not change.
        if not lev.f_relaxed:
            self.f_relax(lev, cache=False)
        for _ in range(len(kind) // 2):
            self.c_relax(lev, cache=False)
            self.f_relax(lev, cache=False)

    @logged("Residual")
    def residual_norm(self, lev, scale=False):
        """||g - A(u)|| over C-points, summed in point order (rank-count free); with ``scale``
        also ||u|| over the same points and the initial one, u[0] (the adjoint's lambda[N]), for
        the round-off floor of the residual (a trajectory that decays to ~1e-60 at the C-points
        made a residual of 1e-62 look large)."""
        self.exchange(lev)
        sq = np.empty((len(lev.c_rows), 2))
        phi, prow = self._c_values(lev)
        rowops.residual_sumsq(phi, prow, lev.U, lev.c_rows, sq)
        if scale and self.grid.first:  # (first in point order on this solve's grid)
            sq = np.concatenate([[[0.0, float(np.dot(lev.U[0], lev.U[0]))]], sq])
        tot = np.sum(np.concatenate(self.comm.allgather(sq)), axis=0)
        return (float(np.sqrt(tot[0])), float(np.sqrt(tot[1]))) if scale else float(np.sqrt(tot[0]))

    # ---- levels -------------------------------------------------------------------------
    @logged("Setup")
    def set_parameters(self, thetas_local):
        """Per-level step parameters: the plugin's ``coarse_parameters`` (default: injection of
        theta at the first fine layer) of the fine layers each coarse step spans."""
        fine = self.levels[0]
        fine.thetas[1:] = thetas_local[: fine.nrows - 1]
        if len(self.levels) > 1:
            allth = np.concatenate(self.comm.allgather(thetas_local))
            for lev in self.levels[1:]:
                lev.thetas[1:] = coarse_parameters(self.problem, allth, lev.ns[1:], lev.m)

    @logged("Coarse")
    def coarsest_solve(self, lev):
        """The coarsest level by a sweep passed from owning rank to owning rank."""
        lev.f_relaxed = False
        if lev.left is not None:
            self._recv_halo(lev)
        if lev.nrows > 1:
            self._sweeps(lev, np.array([[1, lev.nrows - 1]], np.int64), cache=self._final_cache())
        if lev.right is not None:
            self._send_last(lev)

    @logged("Restrict")
    def restrict(self, fine, coarse):
        """FAS: coarse u <- injected fine C-points; coarse g = g_c + Phi(u_{c-1}) - Phi_H(u_H)."""
        rows = fine.c_rows  # the fine halo is valid after the last F-relaxation
        if not fine.injected:  # (else coarse.U holds them: the correction copied them from there)
            inj = np.r_[0, rows] if self.grid.first else rows
            rowops.copy_rows(coarse.U, fine.coarse_rows(inj, coarse), fine.U, inj)
        coarse.f_relaxed = False
        self.exchange(coarse)
        R = fine.coarse_rows(rows, coarse)
        if fine.ahead is None:  # else the F-relaxation left Phi(u_{c-1}) (+ g_c) in coarse.G[R]
            self._steps(fine, rows, coarse.G, R, forced=fine.forced, cache=False)
        fine.ahead = None  # coarse.G[R] becomes the coarse right-hand side
        if self._minus:  # the coarse steps subtracted in place (bitwise the separate pass)
            self._steps(coarse, R, coarse.G, R, minus=True)
        else:
            self._steps(coarse, R, fine.work[1])
            rowops.sub_rows(coarse.G, R, fine.work[1])

    @logged("Interp")
    def correct(self, fine, coarse):
        rows = fine.c_rows
        rowops.copy_rows(fine.U, rows, coarse.U, fine.coarse_rows(rows, coarse))
        fine.f_relaxed = False
        fine.injected = True  # coarse.U's points are fine's C-points until a C-point changes
        # before the last cycle of a fixed-cycle (one-shot) solve the steps' caches need not be
        # stored: the last cycle's correction rewrites every F-row's, the closing residual every
        # C-row's (bitwise the same iterates; the caches go to a scratch, less memory traffic)
        self.f_relax(fine, cache=self._final_cache())

    def _final_cache(self):
        """The cache flag of a level's last sweep in a cycle: none before the last cycle of a
        fixed-cycle solve; the finest level's (default), and with ``keep_coarse`` every level's."""
        if self._fixed and not self.last_cycle:
            return False
        return True if self.keep_coarse else None

    def cycle(self, l=0, kind="V", skip=False):
        """One V- or F-cycle from level l (F: a V-cycle is repeated from each coarse level up).
        ``skip``: no relaxation on the way down (the first cycle with -mgrit_skip_down)."""
        lev = self.levels[l]
        if l == len(self.levels) - 1:
            self.coarsest_solve(lev)
            return
        if not skip:
            self.relax(lev)
        self.restrict(lev, self.levels[l + 1])
        self.cycle(l + 1, kind, skip)
        if kind == "F" and l + 1 < len(self.levels) - 1:
            self.cycle(l + 1, "V")
        self.correct(lev, self.levels[l + 1])
        self._cycled = True

    def view(self, title):
        """``-mgrit_view``: the hierarchy as built, as text lines on every rank (collective): per
        level its points, spacing m (fine layers per step), step size h*m, coarsening factor,
        relaxation and the points each rank owns, in world-rank order."""
        from mpi4py import MPI

        s, h = self.s, self.grid.h
        owned = [lev.nrows - (0 if self.grid.first else 1) for lev in self.levels]
        per_rank = [c for _, c in sorted(self.comm.allgather((MPI.COMM_WORLD.Get_rank(), owned)))]
        nl = len(self.levels)
        asked = "" if nl == s.levels else \
            f" ({s.levels} requested; a further level would have fewer than -mgrit_min_coarse {s.min_coarse} points)"
        lines = [f"{title}: {nl} level{'s' if nl > 1 else ''}{asked}, {s.cycle}-cycles, max_it {s.max_it}, "
                 f"rtol {s.rtol:g}, atol {s.atol:g}" + (", no relaxation on the first down-cycle" if s.skip_down else "")
                 + (", no relaxation on the first down-cycle of each fixed-cycle solve" if s.warm_skip else "")]
        for l, lev in enumerate(self.levels):
            if l == nl - 1:
                what = "coarsest: sequential sweep across ranks"
            else:
                relax = s.fine_relax if (l == 0 and s.fine_relax) else s.relax
                what = f"cfactor {lev.cf}, {relax}-relaxation" + (
                    f" (C weight {s.cweight:g})" if s.cweight != 1.0 else "")
            lines.append(f"  level {l}: {lev.npoints} points, m {lev.m}, step h*m {h * lev.m:.6g}, {what}; "
                         f"points per rank {' '.join(str(c[l]) for c in per_rank)}")
        return lines

    @property
    def tolerance_set(self):
        """Whether solves stop on a tolerance (exact mode) rather than after fixed cycles."""
        return self.s.rtol > 0.0 or self.s.atol > 0.0

    @property
    def residual(self):
        """The C-point residual norm at the end of the last solve (0 for the one-level sweep, and
        before any solve)."""
        return self.history[-1] if self.history else 0.0

    def solve(self, thetas_local, label="mgrit"):
        """MGRIT iterations on the fine trajectory (its row 0 holds u[0] on rank 0); returns their
        number.  ``thetas_local``: this rank's layer parameters, shape (nlocal, p); ``label``
        names the solve in -mgrit_monitor lines."""
        self.set_parameters(thetas_local)
        return self.run(label)

    def run(self, label="mgrit", on_iteration=None):
        """One level: the serial sweep itself (bitwise); more: MGRIT iterations."""
        if len(self.levels) == 1:
            self.coarsest_solve(self.levels[0])
            self.flush()
            self.history, self.converged = [], True
            return 0
        return self.iterate(label, on_iteration)

    def invalidate(self):
        """Forget that levels are F-relaxed: call after changing U or the parameters from
        outside a solve and before a bare ``cycle`` (``iterate`` does it itself)."""
        for lev in self.levels:
            lev.f_relaxed = False
        self.coarse_final = False

    def iterate(self, label="mgrit", on_iteration=None):
        """Cycles until the C-point residual is below max(atol, rtol*|r0|) or max_it.
        ``on_iteration(k, rnorm)`` is called as each residual is known (PETSc monitors)."""
        was_final = self.coarse_final
        if self.restart:  # (rows 0..: the halo too; the first rank's row 0 is the initial value, just set)
            self.restart = False
            rows = self.levels[0].U[1:] if self.grid.first else self.levels[0].U
            rows[~np.isfinite(rows)] = 0.0
        self.invalidate()  # the trajectory or parameters changed since the last solve
        self._cycled = False
        try:
            its = self._iterate(label, on_iteration)
        finally:
            self.flush()
        self.coarse_final = self.keep_coarse and self._ahead and (self._cycled or was_final and self._unchanged())
        if self.coarse_final and self._cycled:
            self._final_thetas = self.levels[0].thetas.copy()
        return its

    def _unchanged(self):
        """After a solve that ran no cycle (a converged warm start, e.g. the gradient evaluation
        at a line search's accepted point): whether the coarse levels still describe the
        trajectory, i.e. the parameters and u[0] are those of the solve that left them (the
        C-points did not change, the F-points were recomputed from them)."""
        fine = self.levels[0]
        if self._final_thetas is None or not np.array_equal(fine.thetas, self._final_thetas):
            return False
        return not self.grid.first or np.array_equal(fine.U[0], self.levels[1].U[0])

    def _iterate(self, label, on_iteration):
        fine = self.levels[0]
        if self.s.rtol == 0.0 and self.s.atol == 0.0 and not (self.s.skip_down and self._first):
            return self._fixed_cycles(on_iteration, label)
        # F-relax first, so the C-point residual measures the guess (a zero guess of a linear
        # problem would otherwise show a zero C-point residual); cycles end with F-relaxation.
        first = self._first  # (the first solve starts from the problem's guess, later ones warm)
        self.f_relax(fine)
        r0, unorm = self.residual_norm(fine, scale=True)
        self.history = [r0]
        if on_iteration:
            on_iteration(0, r0)
        self._monitor(label, 0)  # (the starting residual, that -mgrit_rtol is relative to)
        # a warm start may already be converged: below ROUNDOFF*|u| no cycle can reduce the
        # residual further, so that counts as converged whatever rtol*r0 asks for
        tol = max(self.s.atol, self.s.rtol * r0, ROUNDOFF * unorm)
        self.converged = False
        for it in range(1, self.s.max_it + 1):
            if self.history[-1] <= tol:
                self.converged = True
                return it - 1
            self.cycle(0, self.s.cycle, skip=self.s.skip_down and it == 1 and self._first)
            self._first = False
            r, unorm = self.residual_norm(fine, scale=True)  # (|u| of this iterate: a cold start's is not)
            self.history.append(r)
            if on_iteration:
                on_iteration(it, self.history[-1])
            self._monitor(label, it, warm=not first)
            if not math.isfinite(self.history[-1]):  # no further cycle can mend it (the caller reports it)
                self.converged = False
                return it
            if self.stalled(unorm):  # (at the step's round-off: more cycles would not reduce it)
                self.converged = True
                if self.s.monitor and self.prints:
                    print(f"  {label} stalled at {self.history[-1]:.3e} = {self.history[-1] / unorm:.2g} |u| "
                          f"(rho ~1 over {STALL_CYCLES} cycles, below {STALL_FLOOR:.1e} |u|, 1000 times the "
                          "round-off floor): the step's round-off, counted as converged", flush=True)
                return it
        self.converged = self.history[-1] <= tol
        return self.s.max_it

    @property
    def prints(self):
        """Whether this rank prints the monitor: the first of the layer grid (the adjoint's comm
        runs backward, so its rank 0 is the last rank: its lines mixed with rank 0's)."""
        grid = getattr(self, "fgrid", self.grid)
        return grid.rank == 0

    def stalled(self, unorm):
        """The last STALL_CYCLES cycles less than halved the residual, which is below
        STALL_FLOOR |u| (the residuals are global norms: every rank decides alike)."""
        return stalling(self.history) and self.history[-1] <= STALL_FLOOR * unorm

    def _monitor(self, label, it, warm=False):
        """-mgrit_monitor: one line for cycle ``it`` (rank 0) from the last two residuals of
        ``history`` (rho nan where the residual before is not known); ``warm``: a warm-started
        solve, whose first rho above 1 the line explains."""
        if not (self.s.monitor and self.prints):
            return
        r, prev = self.history[-1], self.history[-2] if len(self.history) > 1 else float("nan")
        rho = r / prev if prev > 0 else (float("nan") if math.isnan(prev) or math.isnan(r) else 0.0)
        note = ""
        if rho > GREW:  # (tester 43: a 4e10-fold rise was explained as the warm start's)
            note = ("  (blew up: coarse steps h*m too large for the step's stability may cause it: a smaller "
                    "cfactor, fewer levels or FCF relaxation; see docs/user/mgrit.md)")
        elif it == 1 and rho > 1 and warm:
            note = ("  (first cycle of a warm start: its residual was below the coarse grid's "
                    "error; see docs/user/mgrit.md)")
        # (rho "-": no residual before this one was measured -- the start of a solve, or the
        # first cycle of a fixed-cycle solve, whose warm start is not measured)
        shown = "-" if math.isnan(prev) else f"{rho:.3g}"
        print(f"  {label} it {it:3d}  |r| {r:.6e}  rho {shown}{note}", flush=True)

    def _fixed_cycles(self, on_iteration, label="mgrit"):
        """A fixed number of cycles (one-shot mode): the residual is measured once, at the end
        (with -mgrit_monitor after every cycle, which leaves the iterates as they are).
        The iterates are those of ``_iterate``: its opening F-relaxation only prepares the
        residual of the guess, and the first cycle's F-relaxation would recompute the same values."""
        fine = self.levels[0]
        before = float("nan")
        monitor = self.s.monitor
        self.history = [float("nan")]
        for k in range(self.s.max_it):
            self.last_cycle, self._fixed = k == self.s.max_it - 1, True
            if self.measure_rho and self.last_cycle and k > 0 and not monitor:  # adaptive one-shot: rho of the last cycle
                before = self.residual_norm(fine)
                if not math.isfinite(before):  # (measured: the iterate went non-finite; nan marks "not measured")
                    before = math.inf
            try:  # warm_skip: the first cycle restricts the warm start's F-points unrelaxed
                self.cycle(0, self.s.cycle, skip=self.s.warm_skip and k == 0)
            finally:
                self.last_cycle = self._fixed = False
            if monitor and k < self.s.max_it - 1:
                self.history.append(self.residual_norm(fine))
                self._monitor(label, k + 1)
        r, unorm = self.residual_norm(fine, scale=True)
        if monitor:
            self.history.append(r)
            self._monitor(label, self.s.max_it)
        else:
            self.history = [float("nan"), r] if math.isnan(before) else [float("nan"), before, r]
        self.unorm = unorm
        self._first = False
        self.converged = r <= ROUNDOFF * unorm
        if on_iteration:
            on_iteration(self.s.max_it, r)
        return self.s.max_it


def hierarchy(N, settings):
    """[(m_l, cf_l)] of the levels built for N steps: level l has spacing m_l (fine steps per
    point) and coarsens by cf_l; coarsening stops at ``settings.levels`` levels or before a level
    would have fewer than ``min_coarse`` points."""
    out, m = [], 1
    for l in range(settings.levels):
        cf = settings.factor(l)
        out.append((m, cf))
        if l == settings.levels - 1 or (N // (m * cf)) + 1 < settings.min_coarse:
            break
        m *= cf
    return out


def coarse_parameters(problem, allth, starts, m):
    """Parameters of the coarse steps whose first fine layers are ``starts`` (m layers each)."""
    if not len(starts):
        return allth[:0]
    return problem.coarse_parameters(allth[starts[:, None] + np.arange(m)])


def settings_for(values, db, which):
    """MGRIT settings of one solve: -{which}_mgrit_X overrides -mgrit_X."""
    merged, flags = {}, {}
    for k, v in values.items():
        if k.startswith("mgrit_"):
            pk = f"{which}_{k}"
            given = pk in values and db.hasName(pk)  # (-state_mgrit_view is not an option)
            merged[k], flags[k] = (values[pk], pk) if given else (v, k)
    return MGRITSettings.from_values(merged, "", flags)


def declare_options(opts):
    MGRITSettings.declare(opts, "")
    opts.add("mgrit_view", bool, False, "print the MGRIT hierarchies of the state and adjoint solves as built "
             "(levels, points, coarsening factors, step sizes h*m, relaxation, points per rank)", group="mgrit")
    MGRITSettings.declare(opts, "state_")
    MGRITSettings.declare(opts, "adjoint_")


def view_solves(state, adjoint, note="", its_range=None):
    """``-mgrit_view`` lines of the state and adjoint solvers (None: a one-level layer-serial sweep);
    ``its_range`` {"state": (lo, hi), "adjoint": (lo, hi)}: adaptive one-shot's bounds on the
    iterations per evaluation, shown beside max_it (the count it starts from)."""
    lines = [f"ocnet: MGRIT hierarchies{': ' + note if note else ''}"]
    for which, title, solver in (("state", "state MGRIT (FAS, SNES prefix state_; validation solves alike)", state),
                                 ("adjoint", "adjoint MGRIT (linear, backward in layers; KSP prefix adjoint_)",
                                  adjoint)):
        view = solver.view(title) if solver is not None else \
            [f"{title.split(' (')[0]}: 1 level, the layer-serial sweep"]
        if solver is not None and its_range and which in its_range:
            lo, hi = its_range[which]
            view[0] = view[0].replace(f"max_it {solver.s.max_it},", f"max_it {solver.s.max_it} (adaptive one-shot: "
                                      f"the start; {lo}..{hi} per evaluation, -oneshot_{which}_its_min/max),", 1)
        lines += view
    return lines


def auto_levels(N, settings, coarsest=8):
    """Levels that coarsen the N-step grid until it has at most ``coarsest`` points."""
    levels, n = 1, N
    while n + 1 > coarsest and n // settings.factor(levels - 1) >= 1:
        n //= settings.factor(levels - 1)
        levels += 1
    return levels
