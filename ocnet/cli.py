"""Command line: ``ocnet [PETSc options]`` (also ``python -m ocnet``); runs under mpiexec.

Every knob is a PETSc option; ``-help`` lists ocnet's own ones with defaults; options given but
never used are reported at the end.  Bad input ends every rank with one line and exit status 2.
"""
import os
import sys
import traceback

FRAMEWORK_OPTIONS = [
    ("problem", str, "peaks", "problem plugin: registered name or package.module:Class"),
    ("N", int, 32, "number of layers (time steps)"),
    ("T", float, 1.0, "final time; step size h = T/N"),
    ("seed", int, 0, "seed of the initial parameters"),
    ("run_dir", str, None, "folder for options, history.csv, plots and final parameters"),
    ("load", str, None, "start from parameters saved in a run folder (with -tao_max_it 0: evaluate only)"),
    ("quiet", bool, False, "no per-iteration line on stdout"),
    ("mode", str, "serial", "serial: layer-serial sweeps; exact: MGRIT state and adjoint solved to "
     "-mgrit_rtol; oneshot: -oneshot_state_its / -oneshot_adjoint_its warm-started MGRIT iterations "
     "per evaluation (inexact gradient)", ("serial", "exact", "oneshot")),
    ("oneshot_state_its", int, 2, "state MGRIT iterations per evaluation in -mode oneshot"),
    ("oneshot_adjoint_its", int, 2, "adjoint MGRIT iterations per evaluation in -mode oneshot"),
    ("oneshot_tao", bool, False, "optimise with the paper's one-shot TAO (python type ocnet.oneshot.OneShot: "
     "L-BFGS + Armijo backtracking that re-runs only the state); overrides -tao_type"),
    ("stop_state_residual", float, 0.0, "MGRIT modes: the gradient-norm tests count only while the state "
     "MGRIT residual is below this; stop (reason CONVERGED_USER) when also |g| <= -tao_gatol (0: off)"),
    ("stop_adjoint_residual", float, 0.0, "the same for the adjoint MGRIT residual (0: off)"),
    ("batch_size", int, 0, "mini-batch size, a new batch each iteration (0: all training data)"),
    ("checkpoint_every", int, 0, "write a checkpoint into the run folder every k iterations (one-shot optimiser)"),
    ("resume", str, None, "continue the run in this folder from its last complete checkpoint"),
    ("design_layout", str, "replicated", "optimiser vectors: replicated on every rank (history bitwise "
     "independent of the rank count) or distributed like the layers (O(N/P) memory)",
     ("replicated", "distributed")),
    ("check_adjoint", bool, False, "instead of training: dot-product tests of the plugin's transposed maps "
     "(every MGRIT step size) and a Taylor test of the reduced gradient; exit 0 if all pass, 1 if not"),
]
TAO_DEFAULTS = {"tao_type": "lmvm", "tao_max_it": "300", "tao_gatol": "1e-6"}
# PETSc's VecMDot/VecMAXPY switch to a BLAS gemv when the vectors happen to lie evenly spaced in
# memory, so the optimiser's last bits depended on allocation history (measured: the same
# inputs, different iterates in different processes).  Off, so histories are rank-count free.
VEC_DEFAULTS = {"vec_mdot_use_gemv": "0", "vec_maxpy_use_gemv": "0"}


def framework_options():
    from .options import OptionSet

    opts = OptionSet()
    for name, typ, default, text, *choices in FRAMEWORK_OPTIONS:
        opts.add(name, typ, default, text, *choices)
    return opts


def _say(comm, text, stream=None):
    if comm.Get_rank() == 0:
        print(text, file=stream or sys.stdout, flush=True)


def run(comm):
    from petsc4py import PETSc

    from . import rundir
    from .errors import OcnetError
    from .grid import LayerGrid
    from .objective import ReducedObjective
    from .mgrit import declare_options as mgrit_options
    from .optimize import Trainer, check_tao_type
    from .options import OptionSet
    from .plugins import load_problem_class

    db = PETSc.Options()
    if not db.hasName("options_left"):
        db.setValue("options_left", "0")  # ocnet reports unused options itself, one line each
        db.getString("options_left")
    for k, v in VEC_DEFAULTS.items():
        if not db.hasName(k):
            db.setValue(k, v)
            db.getString(k)  # our default: not a user's typo when a run never reads it
    opts = framework_options()
    want_help = db.hasName("help")
    spec = opts.get("problem", db)
    cls = load_problem_class(spec)
    mgrit_options(opts)
    cls.declare_options(opts)
    if want_help:
        _say(comm, "ocnet: layer-parallel optimal-control training with PETSc\n" + opts.help_text()
             + "\n  (and any -tao_* option of PETSc TAO; defaults: "
             + " ".join(f"-{k} {v}" for k, v in TAO_DEFAULTS.items()) + ")")
        return 0
    values = opts.read(db)
    grid = LayerGrid.from_comm(values["N"], values["T"], comm)
    problem = cls(values, comm)
    if values["check_adjoint"]:  # instead of training (ocnet/adjcheck.py)
        from .adjcheck import check_adjoint
        return check_adjoint(problem, grid, values, db, comm)
    if values["oneshot_tao"]:  # overrides -tao_type (e.g. one from an options file)
        db.setValue("tao_type", "python")
        db.setValue("tao_python_type", "ocnet.oneshot.OneShot")
    for k, v in TAO_DEFAULTS.items():
        if not db.hasName(k):
            db.setValue(k, v)
    check_tao_type(db)
    max_it = OptionSet().add("tao_max_it", int, 300, "").get("tao_max_it", db)
    if max_it < 0:
        raise OcnetError(f"-tao_max_it must be >= 0 (got {max_it})")
    if max_it == 0:  # evaluation only: TAO itself rejects 0 iterations
        db.delValue("tao_max_it")

    state_s, adj_s = mode_settings(values, db, grid)
    objective = ReducedObjective(grid, problem, comm, state_mgrit=state_s, adjoint_mgrit=adj_s,
                                 batch_size=values["batch_size"], seed=values["seed"])
    if values["mgrit_view"]:
        from .mgrit import view_solves
        _say(comm, "ocnet: -mgrit_view: -mode serial builds no MGRIT (layer-serial sweeps; use -mode exact or oneshot)"
             if values["mode"] == "serial" else "\n".join(view_solves(objective.mgrit, objective.adj_mgrit)))
    replicated = values["design_layout"] == "replicated"
    x = objective.design.initial(values["seed"])
    meta = {"problem": spec, "N": grid.N, "T": grid.T, "global_size": objective.design.global_size,
            "options": {k: v for k, v in values.items()
                        if k not in ("run_dir", "load", "design_layout", "quiet", "resume", "checkpoint_every")}}
    if values["load"]:
        rundir.load_params(values["load"], x, meta, comm)
    run_dir = values["run_dir"] or values["resume"]
    for k in ("stop_state_residual", "stop_adjoint_residual"):
        if not values[k] >= 0.0:
            raise OcnetError(f"-{k} must be >= 0 (got {values[k]})")
    if values["checkpoint_every"] < 0:
        raise OcnetError(f"-checkpoint_every must be >= 0 (got {values['checkpoint_every']})")
    if values["checkpoint_every"] and not run_dir:
        raise OcnetError("-checkpoint_every needs -run_dir")
    if values["resume"] and not os.path.isdir(values["resume"]):
        raise OcnetError(f"-resume: no run folder '{values['resume']}'")
    if run_dir:
        rundir.prepare(run_dir, comm)

    def show(row):
        if not values["quiet"]:
            _say(comm, "it {iteration:4d}  J {objective:.6e}  |g| {gradient_norm:.3e}  train {train_accuracy:.3f}  "
                       "val {val_accuracy:.3f}  t {wall_time:.2f}s".format(**row))

    x_opt = objective.design.convert(x, replicated)
    objective.evaluate(x_opt, x_opt.duplicate())  # JIT warm-up, so wall_time measures the solve
    trainer = Trainer(objective, comm, replicated, on_row=show, run_dir=run_dir,
                      checkpoint_every=values["checkpoint_every"], resume=bool(values["resume"]),
                      stop=(values["stop_state_residual"], values["stop_adjoint_residual"]))
    if values["resume"]:
        _say(comm, f"ocnet: resuming {run_dir} at iteration {int(trainer.resume_state()['its'])}")
    reason = trainer.solve(x_opt) if max_it > 0 else trainer.evaluate_only(x_opt)
    x = objective.design.convert(x_opt, False)
    rows = trainer.rows
    last = rows[-1] if rows else {}
    _say(comm, f"ocnet: {problem.name} N={grid.N} ranks={grid.size}: TAO {trainer.tao.getType()} stopped "
               f"after {last.get('iteration', 0)} iterations (reason {reason}); "
               f"objective {last.get('objective', float('nan')):.6e}, val accuracy {last.get('val_accuracy', float('nan')):.4f}")
    if run_dir:
        rundir.write_options(run_dir, comm)
        rundir.write_history(run_dir, rows, comm)
        rundir.plot_history(run_dir, rows, comm)
        rundir.save_params(run_dir, x, meta, comm)
        problem.plot(run_dir, lambda data: objective.forward_outputs(
            x, data, lambda g, uN: problem.predict(g, uN), layer_parallel=False)[0])
        _say(comm, f"ocnet: wrote {run_dir}")
    return 0


def mode_settings(values, db, grid):
    """MGRIT settings of the state and adjoint solves for -mode serial|exact|oneshot."""
    from .errors import OcnetError
    from .mgrit import auto_levels, settings_for

    out = []
    for which, its in (("state", values["oneshot_state_its"]), ("adjoint", values["oneshot_adjoint_its"])):
        st = settings_for(values, db, which)
        if values["mode"] == "serial":
            st.levels = 1
        else:
            if not (db.hasName("mgrit_levels") or db.hasName(f"{which}_mgrit_levels")):
                st.levels = auto_levels(grid.N, st)
            if values["mode"] == "oneshot":
                if its < 1:
                    raise OcnetError(f"-oneshot_{which}_its must be >= 1 (got {its})")
                st.max_it, st.rtol, st.atol = its, 0.0, 0.0
        out.append(st)
    return out


def report_unused(comm):
    """List options given but never read (a typo is never silently ignored)."""
    from petsc4py import PETSc

    db = PETSc.Options()
    unused = [k for k in db.getAll() if not db.used(k)] if hasattr(db, "used") else []
    for k in unused:
        _say(comm, f"ocnet: warning: option -{k} was given but never used", sys.stderr)
    return unused


def _crash(comm):
    """An unexpected error on some rank: show where, then end every rank (never a hang)."""
    sys.stderr.write(f"[rank {comm.Get_rank()}] " + traceback.format_exc())
    sys.stderr.flush()
    if comm.Get_size() > 1:
        comm.Abort(1)
    return 1


def main(argv=None):
    argv = list(sys.argv if argv is None else argv)
    import petsc4py

    petsc4py.init(argv)
    from petsc4py import PETSc

    from .errors import OcnetError

    comm = PETSc.COMM_WORLD.tompi4py()
    try:
        status = run(comm)
    except OcnetError as e:
        _say(comm, f"ocnet: error: {e}", sys.stderr)
        return 2
    except PETSc.Error as e:  # e.g. a TAO option PETSc rejects: collective, report its reason
        if isinstance(e.__cause__, OcnetError):
            _say(comm, f"ocnet: error: {e.__cause__}", sys.stderr)
            return 2
        if e.__cause__ is not None:  # a Python error inside a PETSc callback: a bug, not input
            return _crash(comm)
        lines = [ln.split("] ", 1)[-1] for ln in str(e).splitlines() if ln.strip()]
        _say(comm, f"ocnet: error: PETSc: {lines[-1] if lines else e}", sys.stderr)
        return 2
    except Exception:
        return _crash(comm)
    report_unused(comm)
    return status
