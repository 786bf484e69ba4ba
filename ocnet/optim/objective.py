"""The reduced objective J(x) and its gradient by the discrete adjoint, over distributed layers.

Sums across ranks are formed in one fixed order on rank 0 (layer by layer), so the objective is
the same number for every rank count given the same design.
"""
import math
import numbers
import sys

import numpy as np
from mpi4py import MPI

from ..base.errors import NumericalFailure, OcnetError
from ..base.grid import block_bounds
from .adaptive import layer_sq_norms
from .layout import Design, Trajectory
from ..mgrit.solver import RELAXATIONS, STALL_CYCLES, phase, stalling
from ..mgrit.serial import LayerSerial
from ..plugin.problem import MARKER, problem_of_user

TAG_HALO_L, TAG_HALO_R, TAG_LOSS = 21, 22, 23
#: an exact-mode solve whose residual rose this many times above its start blew up: replaced by the
#: layer-serial solve like a diverged one (a warm start's first cycle may rise a little above it)
BLOWUP = 1e3
#: a fixed-count one-shot solve whose final residual is above this fraction of its iterate's norm
#: is far from converged (warm-started solves of a contracting MGRIT stay far below it): reported
#: at the end of a run, and a validation solve's metrics come from the layer-serial sweep instead
FAR = 0.1


def contract_advice(mg, prefix):
    """The settings that may make a diverging MGRIT solve contract, leaving out those it already
    has at their most robust: a smaller coarsening factor, the next stronger relaxation, fewer
    levels (e.g. 'a smaller -state_mgrit_cfactor (now 8), -state_mgrit_relax FCF (now F)')."""
    s, nlev = mg.s, len(mg.levels)
    out = []
    if nlev > 1 and max(s.cfactor) > 2:
        out.append(f"a smaller -{prefix}mgrit_cfactor (now {','.join(map(str, s.cfactor))})")
    if s.relax != RELAXATIONS[-1]:
        out.append(f"-{prefix}mgrit_relax {RELAXATIONS[RELAXATIONS.index(s.relax) + 1]} (now {s.relax})")
    if nlev > 2:
        out.append(f"fewer levels (-{prefix}mgrit_levels, now {nlev})")
    if not out:
        return (f"two levels, factor 2 and {RELAXATIONS[-1]} relaxation, its most robust settings, are in use: "
                "-mode serial, or a smaller step (-T, -N)")
    return ", ".join(out[:-1]) + (" or " if len(out) > 1 else "") + out[-1] + " may make it contract"


def is_number(v):
    """Whether a ``metrics`` value is one real number (a history column): Python and numpy
    integers, floats and bools; not strings, arrays or complex numbers."""
    return isinstance(v, (numbers.Real, np.bool_)) and not isinstance(v, str)


def metric_columns(where, metrics, skip=("state_residual",)):
    """The numeric entries of a ``metrics`` result as columns ``<where>_<name>`` (history rows,
    final_exact); ``skip``: names left out (the validation solve's residual is not the problem's)."""
    return {f"{where}_{k}": float(v) for k, v in metrics.items() if k not in skip and is_number(v)}


class ReducedObjective:
    """The reduced objective J(x) of a plugin problem over the layers, and its gradient: the state
    solve (layer-serial sweep or MGRIT), the terminal loss and regularisation, the adjoint solve
    and the parameter gradient (``evaluate``); the training metrics and validation solves
    (``metrics``, ``forward_outputs``).  The command line builds one per run (ocnet.run.cli)."""

    def __init__(self, grid, problem, comm, solver=None, state_mgrit=None, adjoint_mgrit=None,
                 batch_size=0, seed=0, unconverged="warn"):
        """``grid``: ocnet.base.grid.LayerGrid (N, T, this rank's layers); ``problem``: a
        ControlProblem instance with a "train" dataset; ``comm``: mpi4py communicator of the grid.
        ``solver``: the layer-serial solver (default ocnet.mgrit.serial.LayerSerial).
        ``state_mgrit`` / ``adjoint_mgrit``: MGRITSettings of the state and adjoint solves (None:
        layer-serial sweeps, as -mode serial; with tolerances: -mode exact; with rtol = atol = 0 and
        max_it k: one-shot's k cycles); ``batch_size``: mini-batches of that many samples (0: full
        data; the plugin needs data_size and subset), drawn from (``seed``, iteration);
        ``unconverged``: 'warn' or 'stop' for an exact solve that misses its tolerance.  The design
        layout is ``self.design`` (ocnet.optim.layout.Design: ``create_vec``, ``initial``, ``split``).
        Raises OcnetError for a problem without training data or bad mini-batch settings."""
        self._lam_checked = False  # (terminal's lamN checked at the first gradient: evaluate)
        if not callable(getattr(comm, "allgather", None)):  # (petsc4py's Comm failed later, tester 44)
            raise OcnetError(f"ReducedObjective: comm must be an mpi4py communicator (e.g. "
                             f"PETSc.COMM_WORLD.tompi4py()), not {type(comm).__module__}.{type(comm).__name__}")
        self.grid, self.problem, self.comm = grid, problem, comm
        self.design = Design(grid, problem, comm)
        self.solver = solver or LayerSerial(grid, problem, comm)
        if not isinstance(getattr(problem, "datasets", None), dict) or "train" not in problem.datasets:
            raise OcnetError(f"problem '{getattr(problem, 'name', type(problem).__name__)}' has no \"train\" dataset "
                             "(problem.datasets['train']: required of every plugin, docs/plugins/contract.md)")
        self.full = self.data = problem.datasets["train"]
        self.batch_size, self.seed = batch_size, seed
        if batch_size:
            n = problem.data_size(self.full)
            if not callable(getattr(problem, "subset", None)) or problem.subset(self.full, np.arange(1)) is None:
                raise OcnetError(f"-batch_size: problem '{problem.name}' has no mini-batches")
            if not 0 < batch_size <= n:
                raise OcnetError(f"-batch_size {batch_size}: must be between 1 and the {n} training samples")
            self.next_batch(0)
        self.state = self._trajectory(self.data)
        self.adj = self._trajectory(self.data, cache=False)  # adjoints need no step caches
        self.mgrit = None
        if state_mgrit is not None and state_mgrit.levels > 1:
            from ..mgrit.solver import MGRIT
            from ..mgrit.state_snes import StateSNES
            self.mgrit = MGRIT(grid, problem, comm, state_mgrit, self.state.state_size,
                               problem.cache_size(self.data), self.state)
            self.state_snes = StateSNES(self.mgrit, self.state, problem, comm)
        self.adj_mgrit = None
        if adjoint_mgrit is not None and adjoint_mgrit.levels > 1:
            from ..mgrit.adjoint import AdjointKSP
            self.adj_mgrit = AdjointKSP(grid, problem, comm, adjoint_mgrit, self.state,
                                        problem.cache_size(self.data), adj=self.adj)
            if self.mgrit is not None:  # the adjoint's coarse linearisation from the state's levels
                self.mgrit.keep_coarse = True
                self.adj_mgrit.state_mgrit = self.mgrit
        self.state_residual = float("nan")
        self.adjoint_residual = float("nan")
        self.state_its = self.adjoint_its = float("nan")  # MGRIT iterations of the last solves
        self.unconverged = unconverged  # 'warn' or 'stop': exact solves that miss their tolerance
        self.unconverged_count = 0
        self.unconverged_by = {}  # the same by solve: "state", "adjoint", "<dataset> state"
        self._pending_warning = None  # a non-finite solve's warning, said once the layer-serial one is finite
        self._unconverged_said = False  # an unconverged-solve warning was printed (the first one said is)
        self.serial_fallbacks = 0  # exact-mode solves replaced by the layer-serial solve (diverged)
        self.val_serial_fallbacks = 0  # one-shot validation solves far from converged, replaced alike
        self._evaluated = None  # (local design, data, global parameters) of the last state solve
        self._evaluations = {}  # id(data) -> (data, Trajectory, MGRIT or None), allocated once
        #: the last evaluation was layer-serial in an MGRIT mode (adaptive one-shot's exact start or
        #: fallback): validation at its design is layer-serial too (forward_outputs)
        self.last_exact = False
        #: the evaluation is a line search's trial point (set by the Trainer for one evaluation):
        #: a non-finite result there is +inf to the optimiser (a rejected step), not a stop
        self.trial = False
        self.rejected_trials = 0  # such trial points so far
        self.nonfinite_trial = None  # the failure of the last evaluation when it was such a point
        # MGRIT iterations and solves so far: state, adjoint, evaluation data (phases.json)
        self.mgrit_counts = {"state": [0, 0], "adjoint": [0, 0], "val": [0, 0]}
        self.adapt = None  # adaptive one-shot controller (ocnet.optim.adaptive), set by the command line

    def _count(self, which, its):
        c = self.mgrit_counts[which]
        c[0] += its
        c[1] += 1

    def next_batch(self, iteration):
        """Draw the mini-batch of an optimisation iteration (seeded by (seed, iteration))."""
        if not self.batch_size:
            return
        n = self.problem.data_size(self.full)
        idx = np.sort(np.random.default_rng([self.seed, 7, iteration]).permutation(n)[: self.batch_size])
        self.data = self.problem.subset(self.full, idx)

    def _trajectory(self, data, cache=True):
        return Trajectory(self.grid, self.problem.state_size(data), self.problem.cache_size(data) if cache else 0,
                          self.comm)

    def _theta_halos(self, thetas):
        """theta[n0-1] and theta[n1] from the neighbours (None at the ends of the grid)."""
        gr, comm, p = self.grid, self.comm, self.design.p
        prev = nxt = None
        left, right = gr.rank - 1, gr.rank + 1
        if not gr.first:
            prev = np.empty(p)
        if not gr.last:
            nxt = np.empty(p)
        reqs = []
        if not gr.first:
            reqs += [comm.Irecv(prev, source=left, tag=TAG_HALO_R), comm.Isend(np.ascontiguousarray(thetas[0]), dest=left, tag=TAG_HALO_L)]
        if not gr.last:
            reqs += [comm.Irecv(nxt, source=right, tag=TAG_HALO_L), comm.Isend(np.ascontiguousarray(thetas[-1]), dest=right, tag=TAG_HALO_R)]
        MPI.Request.Waitall(reqs)
        return prev, nxt

    def _assemble(self, loss, greg, layer_values, gterm, grad_g, want_grad):
        """Objective on every rank (fixed summation order); terminal gradient onto rank 0."""
        gr, comm = self.grid, self.comm
        if gr.size > 1 and gr.last:
            comm.Send(np.array([loss]), dest=0, tag=TAG_LOSS)
            if want_grad:
                comm.Send(gterm, dest=0, tag=TAG_LOSS + 1)
        if gr.size > 1 and gr.first:
            buf = np.empty(1)
            comm.Recv(buf, source=gr.size - 1, tag=TAG_LOSS)
            loss = buf[0]
            if want_grad:
                gterm = np.empty_like(grad_g)
                comm.Recv(gterm, source=gr.size - 1, tag=TAG_LOSS + 1)
        if gr.first and grad_g is not None:
            grad_g += gterm
        values = comm.gather(layer_values, root=0)
        J = data = None
        if gr.first:
            J, data = float(loss + greg + np.sum(np.concatenate(values))), float(loss)
        J, self.last_loss = comm.bcast((J, data), root=0)  # (last_loss: the data term of J)
        return J

    def evaluate(self, x, grad=None):
        """J(x) (a float, the same on every rank); with ``grad`` also the gradient written into it.
        Collective.  ``x``, ``grad``: PETSc Vecs of a design layout (``design.create_vec``: replicated,
        size G + N p on every rank, or distributed like the layers).  Exact (the discrete adjoint of
        the computed J) in serial and exact mode; in one-shot mode the inexact J and gradient of the
        MGRIT iterates.  Raises OcnetError for a Vec of another size, NumericalFailure (an
        OcnetError) when J or the gradient is not finite at x."""
        self.design.check(x, "evaluate: x")
        if grad is not None:
            self.design.check(grad, "evaluate: grad")
        self.last_exact = False
        if self.adapt is not None and self.adapt.begin(self, grad is not None):
            return self._exact(x, grad)  # (adaptive one-shot: ocnet.optim.adaptive)
        gr, pb = self.grid, self.problem
        g, thetas = self.design.split(self.design.local(x))
        g_last = self.solver.share_global(g)
        with phase("OcnetState"):
            if self.mgrit is None:
                self.solver.forward(g, thetas, self.data, self.state)
            else:  # layer-parallel state solve; warm-started from the previous trajectory
                if gr.first:
                    pb.opening(g, self.data, self.state.U[0])
                self.state_its = self.state_snes.solve(thetas)
                self._count("state", self.state_its)
                self.state_residual = self.mgrit.residual
                if self._check_converged(self.mgrit, "state"):
                    return self._exact(x, grad)
                if self.adapt is not None and self.adapt.after_state(self):
                    return self._exact(x, grad)
        self._evaluated = (self.design.local(x).copy(), self.data, g_last)
        loss, gterm = 0.0, None
        if gr.last:
            gterm = np.zeros(pb.global_param_size)
            lamN = self.adj.U[-1] if grad is not None else np.empty(self.state.U.shape[1])
            first = grad is not None and not self._lam_checked
            if first:  # (a terminal that returns its loss and writes nothing: a zero gradient, "converged")
                lamN.fill(MARKER)
            loss = pb.terminal(g_last, self.data, self.state.U[-1], lamN, gterm)
            if first:
                self._lam_checked = True
                if lamN.size and (lamN == MARKER).all():
                    raise OcnetError(f"problem '{pb.name}': terminal wrote nothing into lamN, the loss's gradient "
                                     "with respect to the final state: write it in place, lamN[:] = ... (CONTRACT.md)")
            if np.ndim(loss) != 0:
                raise OcnetError(f"problem '{pb.name}': terminal returned shape {np.shape(loss)}, expected a "
                                 "float (the loss of this batch)")
            if not is_number(loss if not isinstance(loss, np.ndarray) else loss[()]):
                raise OcnetError(f"problem '{pb.name}': terminal returned {type(loss).__name__} {loss!r:.40}, "
                                 "expected a float (the loss of this batch)")
        prev, nxt = self._theta_halos(thetas)
        if grad is None:
            G = np.zeros_like(thetas)
            grad_g = None
        else:
            ga = np.zeros(self.design.local_size)
            grad_g, G = self.design.split(ga)
            if self.adj_mgrit is None:  # (the serial sweep forms the gradient as it goes)
                with phase("OcnetAdjoint"):
                    self.solver.adjoint(g, thetas, self.data, self.state, self.adj, G, grad_g)
            else:  # layer-parallel adjoint, then one local block sweep for the gradient
                with phase("OcnetAdjoint"):
                    self.adjoint_its = self.adj_mgrit.solve_adjoint(thetas, self.state, self.adj,
                                                                    self.adj.U[-1].copy(), grad=G)
                self._count("adjoint", self.adjoint_its)
                self.adjoint_residual = self.adj_mgrit.residual
                if self._check_converged(self.adj_mgrit, "adjoint"):
                    return self._exact(x, grad)
                with phase("OcnetGradient"):
                    self.solver.adjoint(g, thetas, self.data, self.state, self.adj, G, grad_g, chained=False,
                                        rows=self.adj_mgrit.unformed())
        gdata = None if self.adapt is None or grad is None else layer_sq_norms(G)
        with phase("OcnetGradient"):
            layer_values = pb.layer_regularization(gr.h, gr.n0, gr.N, thetas, prev, nxt, G)
            greg = pb.global_regularization(g, grad_g if grad_g is not None else np.zeros_like(g)) if gr.first else 0.0
            J = self._assemble(loss, greg, layer_values, gterm, grad_g, grad is not None)
        finite = np.isfinite(J)
        if grad is not None:
            finite = self.comm.allreduce(bool(finite and np.isfinite(ga).all()), op=MPI.LAND)
        if not finite and self.adapt is not None and self.mgrit is not None:
            # adaptive one-shot: a non-finite MGRIT evaluation is evaluated exactly (the exact
            # evaluation decides whether the design itself is non-finite)
            self.adapt.fallback_reason = (f"its gradient went non-finite (J = {J:.4g})" if np.isfinite(J) else
                                          f"it went non-finite (J = {J})")
            return self._exact(x, grad)
        if not finite:  # J is the same on every rank and the flag is reduced: collective
            self._restart_solves(self.mgrit, self.adj_mgrit)
            where = self._nonfinite(J, thetas, g, grad is not None, G, grad_g)
            # (MGRIT evaluations: the advice rests on a layer-serial solve at this design, run
            # when the failure is raised -- a rejected trial point costs no extra sweep)
            failure = (where, J, (None if g is None else g.copy(), thetas.copy(), self.data)
                       if self.mgrit is not None else None)
            if not self.trial:
                raise self.nonfinite_failure(failure)
            # a line search's trial point: +inf to the optimiser, which shrinks the step; a line
            # search that fails on such a point stops the run with this failure (Trainer.solve)
            self.rejected_trials += 1
            self.nonfinite_trial = failure
            if grad is not None:
                grad.zeroEntries()
            return math.inf
        self.nonfinite_trial = None
        calib = self._calibration(x, ga) if gdata is not None and self.adapt.calibration_due() else None
        if gdata is not None and self.adapt.after_gradient(
                self, gdata, layer_sq_norms(G), float(grad_g @ grad_g) if gr.first else 0.0, calib):
            return self._exact(x, grad)
        if grad is not None:
            self.design.put_local(grad, ga)
        return J

    def _calibration(self, x, ga):
        """-oneshot_calibrate: the exact (layer-serial) gradient at ``x`` beside the one-shot one
        ``ga`` (this rank's local array): (per-layer squared norms of the difference, rank 0's
        squared norm of its global part), summed later in layer order (rank-count free).  The
        one-shot trajectories, which the next solves warm-start from, are restored afterwards;
        a non-finite exact gradient gives None.  The MGRIT hierarchies are not touched (the serial
        sweeps write the fine trajectories only), so with an unchanged error scale the run goes on
        bitwise as without the calibration."""
        keep = self._warm_rows()
        saved = self.adapt, self.mgrit, self.adj_mgrit, self._evaluated, self.trial
        self.adapt = self.mgrit = self.adj_mgrit = None
        exact = x.duplicate()
        try:
            J = self.evaluate(x, exact)  # (its solves count in OcnetState/OcnetAdjoint of -log_phases)
        except NumericalFailure:  # (the design is non-finite: the one-shot decision stands)
            J = math.nan
        finally:
            self.adapt, self.mgrit, self.adj_mgrit, self._evaluated, self.trial = saved
            for a, rows, b in keep:
                a[rows] = b
        d = ga - self.design.local(exact)
        exact.destroy()
        if not math.isfinite(J):  # (the same on every rank)
            return None
        dg, dth = self.design.split(d)
        return layer_sq_norms(dth), float(dg @ dg) if self.grid.first else 0.0

    def _warm_rows(self):
        """[(array, rows, copy)] of what the next one-shot solves read of the trajectories the
        calibration's layer-serial sweeps overwrite: with plain MGRIT (the state's SNES of type
        python, the adjoint's KSP Richardson with the MGRIT PC, no -mgrit_warm_skip) a warm-started
        fixed-cycle solve reads only its fine level's C-points and first and last rows (its first
        F-relaxation recomputes the F-points and their caches from them: test_adaptive's
        calibration test checks that the run stays bitwise), an eighth of the trajectories at
        cfactor 8; otherwise every row, and the step caches (on MNIST's 30 layers, 2 ranks, the
        whole copies took a rank past 12 GB and the OOM killer ended the run)."""
        whole = slice(None)
        plain = (not self.mgrit.s.warm_skip and not self.adj_mgrit.s.warm_skip
                 and self.state_snes.snes.getType() == "python" and self.adj_mgrit.ksp.getType() == "richardson"
                 and self.adj_mgrit.ksp.getPC().getType() == "python")
        out = []
        for mg in (self.mgrit, self.adj_mgrit):
            lev = mg.levels[0]
            rows = np.unique(np.r_[0, lev.c_rows, lev.nrows - 1]) if plain else whole
            out.append((lev.U, rows, lev.U[rows].copy()))
        if not plain:
            out.append((self.state.Cfull, whole, self.state.Cfull.copy()))
        return out

    @staticmethod
    def _restart_solves(*solvers):
        """The trajectories went non-finite: the next solve of each of ``solvers`` (None: none)
        starts from zeros where they are (MGRIT.restart).  Collective decisions only."""
        for mg in solvers:
            if mg is not None:
                mg.restart = True

    def _exact(self, x, grad):
        """The evaluation with layer-serial sweeps (adaptive one-shot's fallback, and exact mode's for a
        diverged solve); the MGRIT solves are warm-started from its exact trajectories afterwards."""
        adapt, saved = self.adapt, (self.mgrit, self.adj_mgrit)
        self.adapt = self.mgrit = self.adj_mgrit = None
        try:
            J = self.evaluate(x, grad)
            if not math.isfinite(J):  # (a rejected trial point: the next MGRIT solves start cold there)
                self._restart_solves(*saved)
            if self._pending_warning and math.isfinite(J):
                print(self._pending_warning, file=sys.stderr, flush=True)
                self._unconverged_said = True
        finally:
            self._pending_warning = None
            self.adapt, (self.mgrit, self.adj_mgrit) = adapt, saved
            if self.mgrit is not None:  # the trajectory was overwritten: its coarse levels are stale
                self.mgrit.invalidate()
        self.state_its, self.state_residual = 0, 0.0
        if grad is not None:
            self.adjoint_its, self.adjoint_residual = 0, 0.0
        if adapt is not None:
            adapt.fell_back(self, design_failed=not math.isfinite(J))
        else:
            self.serial_fallbacks += 1
        self.last_exact = True
        return J

    def _check_converged(self, mg, what):
        """An exact-mode (tolerance) solve that ended above its tolerance: warn (the 1st, 10th,
        100th, ... time) or stop, per -unconverged.  True when the solve diverged or went
        non-finite under ``warn``: the caller replaces it by the layer-serial solve (its result
        is no approximation of the solution).  ``converged`` comes from a reduction, so every rank
        decides alike."""
        if not mg.tolerance_set or mg.converged:
            return False
        self.unconverged_count += 1
        self.unconverged_by[what] = self.unconverged_by.get(what, 0) + 1
        n = self.unconverged_count
        prefix = {"state": "state_", "adjoint": "adjoint_"}.get(what.split()[-1], "state_")
        its = max(len(mg.history) - 1, 0)
        r0 = mg.history[0] if mg.history else float("nan")
        replace = True
        peak = max((r for r in mg.history[1:] if np.isfinite(r)), default=float("nan"))
        tolerance = f"-{prefix}mgrit_rtol {mg.s.rtol:g} of its starting residual {r0:.3e}, -{prefix}mgrit_atol {mg.s.atol:g}"
        if not np.isfinite(mg.residual):  # (the solve stopped at its first non-finite residual)
            text = f"{what} MGRIT went non-finite (residual {mg.residual}) in iteration {its}"
            advice = f"its coarse steps (h*m) may be unstable: {contract_advice(mg, prefix)}"
        elif np.isfinite(r0) and mg.residual > r0:
            text = (f"{what} MGRIT diverged: its residual grew from {r0:.3e} to {mg.residual:.3e} in {its} "
                    f"iterations (tolerance {tolerance})")
            advice = f"{contract_advice(mg, prefix)}; more iterations would not"
        elif np.isfinite(r0) and peak > BLOWUP * r0 and mg.residual > r0 / BLOWUP:
            # blew up, then came down without converging (a stall near rho = 1): the iterate went
            # through values far from the solution, and its end is no approximation of it either
            # (one that came down BLOWUP-fold below its start is: its residual says how close)
            text = (f"{what} MGRIT blew up: its residual rose from {r0:.3e} to {peak:.3e} and ended at "
                    f"{mg.residual:.3e} after {its} iteration{'' if its == 1 else 's'} (tolerance {tolerance})")
            advice = f"{contract_advice(mg, prefix)}; more iterations would not"
        else:
            text = (f"{what} MGRIT stopped after {its} iteration{'' if its == 1 else 's'} with residual {mg.residual:.3e}, "
                    f"above its tolerance ({tolerance})")
            h = mg.history
            k = min(STALL_CYCLES, len(h) - 1)
            if k >= 2 and stalling(h, k):  # a stall: more iterations would not help
                text += f", stalled (rho {(h[-1] / h[-1 - k]) ** (1 / k):.2g} over the last {k} iterations)"
                advice = (f"a stall is often the step's own round-off level: -{prefix}mgrit_atol {2 * mg.residual:.0e} "
                          f"accepts it; else {contract_advice(mg, prefix)}")
            else:
                advice = f"raise -{prefix}mgrit_max_it"
            replace = False
        if self.unconverged == "stop":
            raise NumericalFailure(f"{text}; {advice}, or use -unconverged warn")
        # the first one said (one at a rejected non-finite trial point is not: its layer-serial solve
        # is non-finite too, so the model failed there, tester 43), then the 10th, 100th, 1000th, ...
        if self.comm.Get_rank() == 0 and (not self._unconverged_said or n in (10, 100) or n % 1000 == 0):
            used = "; the layer-serial solve replaces it" if replace else ""
            line = (f"ocnet: warning: {text}{used} ({n} unconverged solve{'s' * (n > 1)} so far; "
                    f"{advice}, or -unconverged stop to make this an error)")
            if np.isfinite(mg.residual):
                print(line, file=sys.stderr, flush=True)
                self._unconverged_said = True
            else:  # (said once the layer-serial solve is finite: else the model, not MGRIT, failed)
                self._pending_warning = line
        return replace

    def _nonfinite(self, J, thetas, g, with_adjoint, G=None, grad_g=None):
        """Collective: the text (every rank) saying what went non-finite and where
        (``nonfinite_failure`` adds the advice)."""
        gr = self.grid

        def first_bad(rows, offset, last=False):  # first (last) layer index with a non-finite entry, or None
            bad = np.flatnonzero(~np.isfinite(rows).all(axis=1)) if rows.size else []
            return int(bad[-1 if last else 0]) + offset if len(bad) else None

        mine = {"design": first_bad(thetas, gr.n0),
                "global": g is not None and not np.isfinite(g).all(),
                "state": first_bad(self.state.U[0 if gr.first else 1:], gr.n0 + (0 if gr.first else 1)),
                # (the adjoint runs from layer N down: where it went non-finite is its highest bad layer)
                "adjoint": first_bad(self.adj.U[0 if gr.first else 1:], gr.n0 + (0 if gr.first else 1), last=True)
                if with_adjoint else None,
                # (the gradient of the layer and global parameters, formed from state and adjoint)
                "gradient": first_bad(G, gr.n0) if with_adjoint and G is not None else None,
                "gradient_global": grad_g is not None and not np.isfinite(grad_g).all()}
        last = self.state.U[-1]
        mine["uN"] = float(np.abs(last).max()) if gr.last and last.size and np.isfinite(last).all() else None
        allr = self.comm.allgather(mine)
        where = []
        uN = next((r["uN"] for r in allr if r["uN"] is not None), None)
        if not np.isfinite(J) and uN is not None and all(r["state"] is None for r in allr):
            # a finite state whose loss overflows (its adjoint then starts non-finite at layer N)
            where.append(f"the terminal loss, of a finite final state (max |u[N]| = {uN:.3g})")
        if any(r["global"] for r in allr):
            where.append("the design's global (opening/terminal) parameters")
        if any(r["gradient_global"] for r in allr):
            where.append("the gradient of the global (opening/terminal) parameters")
        for key, what in (("design", "the design's layer parameters"), ("state", "the state"),
                          ("adjoint", "the adjoint"), ("gradient", "the gradient of the layer parameters")):
            hits = [(r[key], rank) for rank, r in enumerate(allr) if r[key] is not None]
            if hits:
                n, rank = max(hits) if key == "adjoint" else min(hits)
                lo, hi = block_bounds(gr.N, gr.size, rank)
                where.append(f"{what} from layer {n}{' down' if key == 'adjoint' else ''} "
                             f"(rank {rank}, layers {lo}..{hi - 1})")
        what = "objective" if not np.isfinite(J) else "gradient"
        return f"non-finite {what} (J = {J}): " + ("; ".join(where) if where else "non-finite in the objective's terms only")

    def nonfinite_failure(self, failure, accepted_residual=None):
        """Collective: the NumericalFailure of a non-finite evaluation (``failure``: what
        ``evaluate`` kept of it: the text saying where, J, and for an MGRIT evaluation its design
        and data; ``accepted_residual``: the state residual at the line search's starting point).
        An MGRIT evaluation's advice rests on the layer-serial forward solve at the same design: a
        finite terminal loss there means that the MGRIT iterate diverged, not the model."""
        where, J, design = failure
        model = "try a smaller step (-T, -N), smaller initial weights or a stronger regularisation" + (
            "; or a wrong gradient of the plugin sent the line search there: -check_adjoint tests it"
            if problem_of_user(self.problem) else "")
        if design is None or np.isfinite(J):  # (a non-finite gradient of a finite J: the adjoint's)
            return NumericalFailure(f"{where}; {model}" + (
                "; MGRIT's coarse levels step with h*m (m fine layers per coarse step): "
                f"{contract_advice(self.mgrit, '')}" if design is not None else ""))
        fixed = self.adapt is None and self.adj_mgrit is not None and not self.mgrit.tolerance_set
        adaptive = "the adaptive one-shot default (-oneshot_adapt 1)"
        if self._serial_finite(*design):
            return NumericalFailure(
                f"{where}; the layer-serial solve at this design is finite: the MGRIT iteration diverged, not the "
                f"model: {contract_advice(self.mgrit, '')}"
                + (f"; {adaptive} falls back to exact solves where it does not" if fixed else ""))
        inexact = ""
        if fixed and accepted_residual is not None and np.isfinite(accepted_residual):
            inexact = (f"; the step came from a one-shot gradient of fixed counts, with state residual "
                       f"{accepted_residual:.3g} at the last accepted point: {adaptive} tightens its solves")
        return NumericalFailure(f"{where}; the layer-serial solve at this design is non-finite too (the model, not "
                                f"MGRIT): {model}{inexact}")

    def _serial_finite(self, g, thetas, data):
        """Collective: whether the layer-serial forward solve at (g, thetas) on ``data`` has a
        finite final state and terminal loss (the same answer on every rank)."""
        gr, pb = self.grid, self.problem
        g_last = self.solver.share_global(g)
        uN = self.solver.forward_last(g, thetas, data)
        ok = True
        if gr.last:
            with np.errstate(all="ignore"):
                ok = bool(np.isfinite(uN).all())
                if ok:
                    loss = pb.terminal(g_last, data, uN, np.empty_like(uN), np.zeros(pb.global_param_size))
                    ok = bool(np.isfinite(loss))
        return bool(self.comm.bcast(ok, root=self.comm.Get_size() - 1))

    def evaluation(self, data, create=True):
        """(Trajectory, MGRIT) of an evaluation dataset's layer-parallel solves (MGRIT modes),
        allocated on first use (``create=False``: None until then): each solve is warm-started
        from the dataset's previous one, with the state solve's settings.  (Layer-serial
        evaluations keep no trajectory: ``forward_last``.)"""
        entry = self._evaluations.get(id(data))
        if entry is None or entry[0] is not data:
            if not create:
                return None
            from ..mgrit.solver import MGRIT
            traj = self._trajectory(data)
            mg = MGRIT(self.grid, self.problem, self.comm, self.mgrit.s, traj.state_size,
                       self.problem.cache_size(data), traj)
            entry = self._evaluations[id(data)] = [data, traj, mg]
        return entry[1], entry[2]

    def forward_outputs(self, x, data, fn, layer_parallel=True, label="evaluation"):
        """Forward solve on ``data``: (fn(g, uN) of the last rank on rank 0, None elsewhere;
        the MGRIT residual on every rank, nan for the layer-serial sweep).  In the MGRIT modes
        the solve is MGRIT unless ``layer_parallel`` is false."""
        gr = self.grid
        g, thetas = self.design.split(self.design.local(x))
        g_last = self.solver.share_global(g)
        residual = float("nan")
        if not (layer_parallel and self.mgrit is not None):  # layer-serial: no trajectory kept
            uN = self.solver.forward_last(g, thetas, data)
        elif self.last_exact:  # as the objective's exact evaluation at x: layer-serial, into the
            traj, mg = self.evaluation(data)  # trajectory the next MGRIT solve warm-starts from
            self.solver.forward(g, thetas, data, traj)
            mg.invalidate()  # (its coarse levels are stale)
            uN = traj.U[-1]
        else:  # as the state solve in evaluate: u[0] on rank 0 first, then warm-started MGRIT
            traj, mg = self.evaluation(data)
            if gr.first:
                self.problem.opening(g, data, traj.U[0])
            self._count("val", mg.solve(thetas, label=f"{label} state mgrit"))
            residual = mg.residual
            if not math.isfinite(residual):  # (a global norm: every rank alike)
                mg.restart = True
            far = not mg.tolerance_set and not residual <= FAR * mg.unorm  # (fixed counts; nan: far)
            if far or self._check_converged(mg, f"{label} state"):  # (diverged: replaced by the serial sweep)
                self.solver.forward(g, thetas, data, traj)
                if self._pending_warning:
                    print(self._pending_warning, file=sys.stderr, flush=True)
                    self._pending_warning = None
                    self._unconverged_said = True
                mg.invalidate()
                if far:  # (tester 39: fixed one-shot's validation rmse 5.0 at residual 50, serial's 0.71)
                    self.val_serial_fallbacks += 1
                    if self.val_serial_fallbacks == 1 and gr.first:
                        print(f"ocnet: note: the one-shot {label} MGRIT solve ended far from converged (residual "
                              f"{residual:.3g} = {residual / mg.unorm if mg.unorm else math.inf:.3g} |u|, {mg.s.max_it} "
                              "cycles): its metrics come from the layer-serial sweep, as will those of any later such "
                              "solve (summary.json: val_serial_fallbacks)", file=sys.stderr, flush=True)
                else:
                    self.serial_fallbacks += 1
                residual = 0.0
            uN = traj.U[-1]
        return self._to_first(fn(g_last, uN) if gr.last else None), residual

    def _to_first(self, out):
        """A value of the last rank on rank 0 (None elsewhere)."""
        gr, comm = self.grid, self.comm
        if gr.size > 1:
            if gr.last:
                comm.send(out, dest=0, tag=TAG_LOSS + 2)
            elif gr.first:
                out = comm.recv(source=gr.size - 1, tag=TAG_LOSS + 2)
        return out if gr.first else None

    def _state_at(self, x, data):
        """True (on every rank) when the last state solve was at design ``x`` on ``data``."""
        ev = self._evaluated
        same = ev is not None and ev[1] is data and np.array_equal(ev[0], self.design.local(x))
        return bool(self.comm.allreduce(int(same), op=MPI.MIN))

    def metrics(self, x, name, layer_parallel=True):
        """The problem's metrics on dataset ``name`` (every rank), with the forward solve's
        ``state_residual``; {} when the problem has no such dataset."""
        data = self.problem.datasets.get(name)
        if data is None:
            return {}
        if name == "train" and self._state_at(x, data):
            # the objective's own state solve was at x on these data (the usual case after a
            # TAO iteration): no second forward solve; in one-shot mode this is its inexact state
            g_last = self._evaluated[2]
            out = self._to_first(self.problem.metrics(g_last, data, self.state.U[-1]) if self.grid.last else None)
            residual = self.state_residual
        else:
            out, residual = self.forward_outputs(x, data, lambda g, uN: self.problem.metrics(g, data, uN),
                                                 layer_parallel, label=name)
        out = self.comm.bcast(out, root=0)
        if not isinstance(out, dict):
            raise OcnetError(f"problem '{self.problem.name}': metrics returned {type(out).__name__}, expected a dict "
                             "{name: number}")
        return dict(out, state_residual=residual)

    def exact_evaluation(self, x):
        """Objective and metrics at ``x`` with layer-serial (exact) forward solves on the full
        training data: what an inexact (one-shot, mini-batch) run's numbers stand for."""
        saved = self.mgrit, self.data, self.state
        # the state trajectory itself when it fits the full data (its one-shot iterate is not
        # needed any more, and a later MGRIT solve starts by invalidating its levels); a
        # temporary one when it was sized for mini-batches
        traj = self.state if self.state.state_size == self.problem.state_size(self.full) else self._trajectory(self.full)
        adapt, self.adapt = self.adapt, None  # (not a one-shot evaluation: no controller, no totals)
        self.mgrit, self.data, self.state = None, self.full, traj
        try:
            J = self.evaluate(x)
            out = {"objective": J}
            for name in ("train", "val"):  # (accuracy and the problem's other numeric metrics)
                out.update(metric_columns(name, self.metrics(x, name, layer_parallel=False)))
        finally:
            self.mgrit, self.data, self.state = saved
            self.adapt = adapt
            self._evaluated = None
            if self.mgrit is not None:  # the trajectory was overwritten: its coarse levels are stale
                self.mgrit.invalidate()
        return out
