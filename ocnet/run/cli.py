"""Command line: ``ocnet [PETSc options]`` (also ``python -m ocnet``); runs under mpiexec.

Every knob is a PETSc option; ``-help`` lists ocnet's own ones with defaults; options given but
never used are reported at the end.  Bad input ends every rank with one line and exit status 2.
"""
import errno
import math
import os
import re
import shlex
import sys
import time
import traceback

from ..base.options import closest_name, path
from .argv import argument_error, option_source, options_file_error, petsc_argv

FRAMEWORK_OPTIONS = [  # name, type, default, help, and keywords of OptionSet.add (choices, bounds)
    ("problem", str, "peaks", "problem plugin: registered name or package.module:Class", {}),
    ("N", int, 32, "number of layers (time steps)", {"bounds": "[1,inf)"}),
    ("T", float, 1.0, "final time; step size h = T/N", {"bounds": "(0,inf)"}),
    ("seed", int, 0, "seed of the initial parameters", {"bounds": "[0,inf)"}),
    ("run_dir", str, None, "folder for options, history.csv, plots and final parameters (new or empty)", {}),
    ("run_dir_plots", bool, True, "draw the run folder's figures (training.png and the problem's own; matplotlib, "
     "about a second); 0: data files only", {}),
    ("predictions", bool, False, "write the model's output per sample (the problem's predict, e.g. class labels) "
     "on each dataset at the final parameters to predictions_<set>.csv in -run_dir", {}),
    ("run_dir_overwrite", bool, False, "replace the contents of an existing ocnet run folder -run_dir", {}),
    ("load", path, None, "start from parameters saved in a run folder (with -tao_max_it 0: evaluate only)", {}),
    ("load_resample", bool, False, "with -load and another -N than the saved model's: its layer parameters "
     "resampled to this -N, piecewise constant in t (refine a trained control or network in depth)", {}),
    ("quiet", bool, False, "no per-iteration line on stdout", {}),
    ("dry_run", bool, False, "check the options, the data, the problem and the optimiser's settings, then stop: "
     "nothing is computed and no run folder is touched (e.g. before submitting a batch job)", {}),
    ("mode", str, "serial", "serial: layer-serial sweeps; exact: MGRIT state and adjoint solved to "
     "-mgrit_rtol; oneshot: a few warm-started MGRIT iterations per evaluation (inexact gradient; counts "
     "adaptive unless -oneshot_adapt 0 or -oneshot_state_its / -oneshot_adjoint_its are given; unless given or "
     "set by the problem's defaults, -mgrit_relax F -mgrit_cfactor 8)",
     {"choices": ("serial", "exact", "oneshot")}),
    ("oneshot_state_its", int, 2, "state MGRIT iterations per evaluation in -mode oneshot; given: fixed counts "
     "(-oneshot_adapt 0) unless -oneshot_adapt 1 is given too, then the adaptive start", {"bounds": "[1,inf)"}),
    ("oneshot_adjoint_its", int, 1, "adjoint MGRIT iterations per evaluation in -mode oneshot (as "
     "-oneshot_state_its)", {"bounds": "[1,inf)"}),
    ("oneshot_tao", bool, False, "optimise with the paper's one-shot TAO (python type ocnet.optim.oneshot.OneShot: "
     "L-BFGS + Armijo backtracking that re-runs only the state); overrides -tao_type", {}),
    ("unconverged", str, "warn", "-mode exact: an MGRIT solve that ends at -mgrit_max_it above its tolerance "
     "warns (rate-limited) or stops the run; with warn, a solve that diverged or went non-finite is replaced by "
     "the layer-serial solve", {"choices": ("warn", "stop")}),
    ("stop_state_residual", float, 0.0, "MGRIT modes: the gradient-norm tests count only while the state "
     "MGRIT residual is below this; stop (reason CONVERGED_USER) when also |g| <= -tao_gatol (0: off)",
     {"bounds": "[0,inf)"}),
    ("stop_adjoint_residual", float, 0.0, "the same for the adjoint MGRIT residual (0: off)", {"bounds": "[0,inf)"}),
    ("batch_size", int, 0, "mini-batch size, a new batch each iteration (0: all training data)", {"bounds": "[0,inf)"}),
    ("checkpoint", bool, True, "with a run folder: save checkpoints for -resume (0: none during the run or at its "
     "end, a signal still saves one: benchmarks and scaling studies, where saves take time and disk)", {}),
    ("checkpoint_every", int, 0, "also save a checkpoint and the parameters every k iterations (0: by time only)",
     {"bounds": "[0,inf)"}),
    ("checkpoint_seconds", float, 60.0, "with a run folder: save a checkpoint and the parameters after the first "
     "iteration that ends this many seconds after the last save (0: after every iteration); a killed run "
     "loses at most this much work", {"bounds": "[0,inf)"}),
    ("resume", str, None, "continue the run in this folder from its last complete checkpoint (any optimiser; "
     "a folder stopped before its first save starts again from the beginning)", {}),
    ("log_phases", bool, False, "write RUN/phases.json: time per solver phase from PETSc log events "
     "(ocnet/perfmodel/phases.py; needs -run_dir)", {}),
    ("design_layout", str, "replicated", "optimiser vectors: replicated on every rank (history bitwise "
     "independent of the rank count) or distributed like the layers (O(N/P) memory; histories then depend "
     "on the rank count in the last bits)",
     {"choices": ("replicated", "distributed")}),
    ("check_adjoint", bool, False, "instead of training: dot-product tests of the plugin's transposed maps "
     "(every MGRIT step size) and a Taylor test of the reduced gradient; exit 0 if all pass, 1 if not", {}),
]
TAO_DEFAULTS = {"tao_type": "lmvm", "tao_max_it": "300", "tao_gatol": "1e-6"}
# PETSc's VecMDot/VecMAXPY switch to a BLAS gemv when the vectors happen to lie evenly spaced in
# memory, so the optimiser's last bits depended on allocation history (measured: the same
# inputs, different iterates in different processes).  Off, so histories are rank-count free.
VEC_DEFAULTS = {"vec_mdot_use_gemv": "0", "vec_maxpy_use_gemv": "0"}


def framework_options():
    """An OptionSet of ocnet's own options (the framework's, adaptive one-shot's and the one-shot
    TAO's; MGRIT's: ocnet.mgrit.solver.declare_options; a problem's: its ``declare_options``).
    ``{o.name: o.default for o in opts.options}`` is a values dict of the defaults."""
    from ..base.options import OptionSet

    opts = OptionSet()
    for name, typ, default, text, kw in FRAMEWORK_OPTIONS:
        opts.add(name, typ, default, text, **kw)
    from ..optim import adaptive, oneshot
    adaptive.declare_options(opts)
    oneshot.declare_options(opts)
    return opts


def option_values(cls, **given):
    """The ``values`` dict the command line builds for problem class ``cls``, for in-process use
    (``cls(values, comm)``, ``LayerGrid.from_comm(values["N"], values["T"], comm)``): every
    option's default (ocnet's, MGRIT's, the problem's declared options, then its
    ``option_defaults``), then ``given`` (name=value, e.g. ``N=64, gamma_tik=1e-3``), each checked
    as on the command line.  Reads no PETSc options.  Raises OcnetError for a name that is not an
    option (with the closest one) or a value of the wrong type or out of range."""
    from ..base.errors import OcnetError

    opts, _ = problem_options(cls)
    apply_option_defaults(cls, opts)  # (the declared defaults only: no options database)
    declared = {o.name: o for o in opts.options}
    values = {k: o.default for k, o in declared.items()}
    for k, v in given.items():
        if k not in declared:
            close = closest_name(k, list(declared))
            raise OcnetError(f"option_values: '{k}' is not an option of problem '{cls.name}' or of ocnet"
                             + (f" (did you mean {close}?)" if close else "")
                             + ("; TAO's options are PETSc's: PETSc.Options().setValue(name, value) before the Trainer"
                                if k.startswith("tao_") else ""))
        if declared[k].type is int and isinstance(v, float) and v.is_integer():  # (a numpy float sweep's 16.0:
            v = int(v)                                                       # refused before, tester 44)
        values[k] = declared[k].parse(option_text(v))
    return values


def problem_options(cls, opts=None):
    """(OptionSet, names): ocnet's options (``opts``, default framework_options()), MGRIT's and
    those problem class ``cls`` declares, in one set (an OcnetError for a name declared twice), and
    the names of the problem's own."""
    from ..base.options import OptionSet
    from ..mgrit.solver import declare_options as mgrit_options

    opts = framework_options() if opts is None else opts
    mgrit_options(opts)
    popts = OptionSet()
    cls.declare_options(popts)
    return opts.extend(popts), [o.name for o in popts.options]


def option_text(value):
    """A value as given on a command line (a tuple or list: comma-separated)."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def option_default_texts(cls):
    """A problem's ``option_defaults`` as {name: value as given on a command line}."""
    return {k: option_text(v) for k, v in getattr(cls, "option_defaults", {}).items()}


def apply_option_defaults(cls, opts, db=None):
    """A problem's ``option_defaults``: each becomes the declared default (shown by -help) and,
    where the user did not give the option, its value in the options database ``db`` (None: none,
    as for option_values), so that code that asks whether an option was given (-mode oneshot's
    MGRIT defaults, automatic levels) treats it as the problem's choice.  Returns the names applied
    to ``db`` (their -mode warnings are not the user's)."""
    from ..base.errors import OcnetError
    applied = []
    declared = {o.name: o for o in opts.options}
    for k, text in option_default_texts(cls).items():
        if k not in declared and not k.startswith("tao_"):
            close = closest_name(k, list(declared))
            raise OcnetError(f"problem '{cls.name}': option_defaults names -{k}, which is not an option"
                             + (f" (did you mean -{close}?)" if close else ""))
        if k in declared:
            declared[k].default = declared[k].parse(text)
        if db is not None and not db.hasName(k):
            db.setValue(k, text)
            if k in declared:  # the problem's default: not a user's typo when a run never reads it
                db.getString(k)
            else:  # (a TAO option: PETSc's own, unread only when misspelt or of another TAO type)
                FROM_DEFAULTS[k] = cls.name
            applied.append(k)
    return applied


#: TAO options set by a problem's option_defaults: {name: problem}; unused ones are reported as its
FROM_DEFAULTS = {}


def _given(k):
    """How the unused-option warnings name option ``k``: '-k', or for one set by the problem's
    option_defaults '-k (option_defaults of problem NAME)'."""
    return f"-{k}" + (f" (option_defaults of problem '{FROM_DEFAULTS[k]}')" if k in FROM_DEFAULTS else "")


def _quiet(db):
    """Whether -quiet is on in options database ``db`` (given as a flag or true; -quiet 0 is off;
    a value that is no boolean counts as off here: reading the options reports it, one line)."""
    from petsc4py import PETSc
    try:
        return db.hasName("quiet") and db.getBool("quiet", True)
    except PETSc.Error:
        return False


def _say(comm, text, stream=None):
    if comm.Get_rank() == 0:
        print(text, file=stream or sys.stdout, flush=True)


#: what write_failure needs of the run going on in this process (filled by run())
_FAILURE = {}


def run_summary(reason, trainer, **more):
    """summary.json's fields every ending has (None where not known): reason, iterations (the last
    history row's), ranks, mode, wall_time (of that row), final_row (that row's objective,
    gradient norm and ``train_*``/``val_*`` metrics; non-finite values None), jit_time, warmup_time
    (the starting evaluation before row 0, with the compiles of the kernels it runs), machine; then
    ``more``."""
    from . import rundir
    rows = trainer.rows if trainer is not None else []
    last = rows[-1] if rows else {}
    final = {k: float(v) if rundir.finite(v) else None for k, v in last.items()
             if k in ("objective", "gradient_norm") or (k.startswith(("train_", "val_")) and not k.endswith("_residual"))}\
        if rows else None
    saves = trainer.save_stats if trainer is not None and trainer.save_stats["saves"] else None
    its = int(last["iteration"]) if rows else None
    start = {"from_iteration": trainer.resume_its if trainer is not None else None,  # (None: stopped before)
             "iterations": its, "ranks": _FAILURE["ranks"], "reason": reason}
    return {"reason": reason, "iterations": its, "ranks": _FAILURE["ranks"],
            "mode": _FAILURE["mode"], "wall_time": last.get("wall_time"), "final_row": final,
            "jit_time": trainer.jit_time() if trainer is not None and trainer.t0 is not None else None,
            "warmup_time": _FAILURE.get("warmup_time"),
            "machine": rundir.machine(), **rundir.provenance(), **({"checkpoints": saves} if saves else {}),
            "starts": _FAILURE.get("starts", []) + [start], **more}


def write_failure(status, text):
    """The reporting rank, when the run fails (exit status 1 or 2 after its folder was set up): summary.json
    says so -- reason FAILED, the error line, the last history row and where the last checkpoint
    is -- unless this start wrote it already (e.g. DIVERGED_NAN, which keeps the parameters)."""
    from . import rundir
    run_dir, trainer = _FAILURE.get("run_dir"), _FAILURE.get("trainer")
    if not run_dir or not text:
        return
    path = os.path.join(run_dir, "summary.json")
    if os.path.abspath(path) in rundir.WRITTEN:
        return
    errors = [ln for ln in text.splitlines() if ln.startswith("ocnet: error: ")] or text.strip().splitlines()[-1:]
    saved = None if trainer is None else trainer.saved_its
    rows = trainer is not None and trainer.rows
    # exit status 3: went non-finite (or an exact solve did not converge) before any history row,
    # e.g. at the starting point; later failures of that kind are DIVERGED_NAN with the last row's design
    err = errors[-1].removeprefix("ocnet: error: ")
    reason = "DIVERGED_NAN" if status == 3 and non_finite(err) else "FAILED"
    note = ("the run failed; history.csv holds its rows" if rows else
            "the run failed before its first history row (at the starting point): no history, no parameters")
    if rows:
        note += (f"; the checkpoint of iteration {saved} is kept: after fixing the cause, -resume continues from it"
                 if saved is not None else "; no checkpoint was saved by this start" + (
                     " (-checkpoint 0: checkpoints off)" if trainer is not None and trainer.checkpoint_seconds is None
                     else " (-checkpoint_every, -checkpoint_seconds)"))
    rundir.write_json(path, run_summary(reason, trainer, exit_status=int(status), error=err, note=note))


def non_finite(text):
    """True when an error text (of a NumericalFailure or PETSc) says the run went non-finite."""
    return "non-finite" in text or "infinity or NaN" in text


def run(comm):
    from petsc4py import PETSc

    from . import rundir
    from ..base import jit_clock, signals
    from ..optim.objective import contract_advice
    from ..base.errors import NumericalFailure, OcnetError
    from ..base.grid import LayerGrid
    from ..optim.objective import ReducedObjective
    from ..optim.modes import inactive_options, mode_settings
    from ..optim.optimize import Trainer, accepted_stops, check_tao_type
    from ..base.reasons import reason_name
    from ..base.options import OptionSet
    from ..plugin.loader import canonical_name, load_problem_class
    from ..plugin.problem import check_required, check_writes, guard_forms, problem_of_user

    _FAILURE.clear()
    FROM_DEFAULTS.clear()
    db = PETSc.Options()
    own = set()  # options ocnet sets for itself (not written to options.txt)
    if not db.hasName("options_left"):
        db.setValue("options_left", "0")  # ocnet reports unused options itself, one line each
        db.getString("options_left")
        own.add("options_left")
    for k, v in VEC_DEFAULTS.items():
        if not db.hasName(k):
            db.setValue(k, v)
            db.getString(k)  # our default: not a user's typo when a run never reads it
            own.add(k)
    if comm.Get_size() > 1:  # (MPMD, `mpiexec -n 1 ocnet A : -n 1 ocnet B`: a segmentation fault or a hang)
        every = comm.allgather(sorted(db.getAll().items()))
        first = next((r for r, o in enumerate(every) if o != every[0]), None)
        if first is not None:
            raise OcnetError(f"the ranks were given different options (rank {first}'s differ from rank 0's): every "
                             "rank of a run takes the same command line")
    for key, value in db.getAll().items():  # PETSc opens a view's file only at the end (-log_view): a
        # folder that cannot be written cost the profile, with a PETSc error block and exit status 1
        if (key.endswith("view") or key.endswith("monitor")) and value and ":" in value:
            fname = value.split(":")[1]
            folder = os.path.dirname(os.path.abspath(fname)) if fname else ""
            if fname and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
                db.delValue(key)  # (PETSc's finalisation would try it: its error block)
                raise OcnetError(f"-{key} {value}: cannot write '{fname}' (no writable folder '{folder}')")
    opts = framework_options()
    want_help = db.hasName("help")
    source = db.getString("load", "") if db.hasName("load") else ""
    loaded = rundir.saved_meta(source, comm) if source else {}  # -load's params.json
    from_load = rundir.load_model_options(db, loaded)  # (before the problem is chosen: it is one of them)
    # -resume: its options.txt, read once (None: none; without -resume: None, all options are written)
    recorded = rundir.recorded_options(db.getString("resume", ""), comm) if db.hasName("resume") else None
    if db.hasName("resume") and source and (recorded or {}).get("load") != source:
        raise OcnetError(f"-load with -resume: a resumed run continues from its checkpoint, not from '{source}'; to "
                         f"start from its parameters, start a new run: -load {source} -run_dir NEW")
    if db.hasName("resume"):  # the run's own options (its options.txt) where the command line gives none
        from_run = rundir.resume_options(db, recorded)
        if from_run and not _quiet(db):
            _say(comm, f"ocnet: note: -resume: taken from its options.txt (the run's recorded options, the defaults "
                       f"it ran with included): {' '.join(from_run)}", sys.stderr)
    if from_load and not _quiet(db):
        _say(comm, f"ocnet: note: -load: the saved model's options: {' '.join(from_load)}", sys.stderr)
    spec = opts.get("problem", db)
    as_registered = canonical_name(spec)
    if as_registered != spec:  # (-problem Peaks: recorded and compared as registered)
        spec = as_registered
        db.setValue("problem", spec)
    cls = load_problem_class(spec)
    PROBLEM[:] = [spec]
    opts, plugin_keys = problem_options(cls, opts)
    problem_given = apply_option_defaults(cls, opts, db)
    if db.hasName("resume") and not want_help:  # (a run from before a change of ocnet's defaults)
        ours = {o.name for o in opts.options} - set(plugin_keys) - set(problem_given)  # (ocnet's and MGRIT's)
        kept = rundir.keep_changed_defaults(db.getString("resume"), opts, ours, db, recorded, comm)
        if kept and not _quiet(db):
            _say(comm, f"ocnet: note: -resume: the run's own value of {', '.join(kept)}: ocnet's default changed "
                       "since the run started; the run continues as it started", sys.stderr)
    DECLARED[:] = [o.name for o in opts.options]
    if want_help:
        _say(comm, "ocnet: layer-parallel optimal-control training with PETSc\n" + opts.help_text()
             + "\n  (and any -tao_* option of PETSc TAO; defaults: "
             + " ".join([f"-{k} {db.getString(k) if k in problem_given else v}" for k, v in TAO_DEFAULTS.items()]
                        + [f"-{k} {db.getString(k)}" for k in problem_given  # (the problem's other TAO ones)
                           if k.startswith("tao_") and k not in TAO_DEFAULTS])
             + ")\n  (PETSc's own start-up options: ocnet -help petsc)")
        return 0
    values = opts.read(db)  # (file options become absolute in the database too: OptionSet.get)
    grid = LayerGrid.from_comm(values["N"], values["T"], comm)
    try:
        problem = cls(values, comm)
    except OcnetError as e:  # a data option -load does not take over: name the saved run's (tester 42)
        if values["resume"] and re.match(r"-\w+_file: no file '", str(e)):  # (moved: a user's scratch purged)
            raise OcnetError(f"{e}: the run was started on that file; a resumed run continues on its own data: "
                             "restore it there, or leave a symbolic link at that path to where it is now "
                             "(docs/user/data.md)") from None
        saved = (loaded or {}).get("options", {})
        hint = [f"-{k} {saved[k]}" for k in getattr(cls, "data_options", ()) if saved.get(k) not in (None, "", False)
                and not db.hasName(k) and re.search(rf"-{re.escape(k)}\b", str(e))]
        if hint:
            raise OcnetError(f"{e} (the loaded run's: {', '.join(hint)}; -load does not take data options over)") \
                from None
        # training data given that differ from the loaded model's (the error blamed the new samples
        # whose features did fit the model: tester 48)
        other = [f"-{k} {saved[k]} (now {values.get(k)})" for k in getattr(cls, "data_options", ())
                 if "train" in k and db.hasName(k) and saved.get(k) not in (None, "", False)
                 and str(saved[k]) != str(values.get(k))]
        if not other:
            raise
        raise OcnetError(f"{e} (the loaded model was trained with {', '.join(other)})") from None
    check_required(problem)
    # batched forms inherited from a class with another step never run (ocnet/plugin/problem.py)
    guard_forms(problem, say=lambda line: _say(comm, line, sys.stderr))
    from ..plugin.kernels import check_kernel_bounds
    check_kernel_bounds(problem, grid.h)  # (a kernel writing past its arrays: one line, not a crash later)
    check_writes(problem, grid.h)  # (a step returning its state instead of writing it: one line)
    if values["load"]:  # the loaded model's own state (e.g. its input standardisation), before data are used
        state = loaded.get("model_state")  # ({} or None for folders saved before it existed)
        if state:
            problem.set_model_state(state)
    if values["check_adjoint"]:  # instead of training (ocnet/plugin/adjcheck.py)
        for k in problem_given:  # (no TAO reads the problem's TAO defaults here: not the user's to hear of)
            if k.startswith("tao_"):
                db.getString(k)
        tao = sorted(k for k in db.getAll() if k.startswith("tao_") and k not in problem_given)
        if tao:  # (a training options file given to the check: one note, not a warning per option)
            for k in tao:
                db.getString(k)
            _say(comm, f"ocnet: note: -check_adjoint runs no optimiser: {', '.join('-' + k for k in tao)} "
                       f"{'has' if len(tao) == 1 else 'have'} no effect", sys.stderr)
        from ..plugin.adjcheck import check_adjoint
        return check_adjoint(problem, grid, values, db, comm)
    if values["oneshot_tao"]:  # overrides -tao_type (e.g. one from an options file): said when one was given
        given = db.getString("tao_type") if db.hasName("tao_type") else "python"
        if given != "python":
            _say(comm, f"ocnet: warning: -tao_type {given} has no effect with -oneshot_tao (the one-shot TAO, "
                       "ocnet.optim.oneshot.OneShot, is the optimiser): leave out one of them", sys.stderr)
        db.setValue("tao_type", "python")
        db.setValue("tao_python_type", "ocnet.optim.oneshot.OneShot")
    elif not (db.hasName("tao_python_type") and db.getString("tao_python_type") == "ocnet.optim.oneshot.OneShot"):
        from ..optim.oneshot import OPTIONS
        for k in (o[0] for o in OPTIONS if db.hasName(o[0])):  # (declared: read, so not reported as unused)
            _say(comm, f"ocnet: warning: -{k} has no effect without -oneshot_tao (an option of the one-shot TAO)",
                 sys.stderr)
    for k, v in TAO_DEFAULTS.items():
        if not db.hasName(k):
            db.setValue(k, v)
    for line in check_tao_type(db):
        _say(comm, f"ocnet: warning: {line}", sys.stderr)
    max_it = OptionSet().add("tao_max_it", int, 300, "", bounds="[0,inf)").get("tao_max_it", db)
    if max_it == 0:  # evaluation only: TAO itself rejects 0 iterations (options.txt still says 0)
        db.delValue("tao_max_it")

    state_s, adj_s = mode_settings(values, db, grid)
    for line in inactive_options(values, db, grid, (state_s, adj_s)):
        if not any(line.startswith(f"-{k} ") for k in problem_given):  # the problem's defaults, not the user's
            _say(comm, f"ocnet: warning: {line}", sys.stderr)
    objective = ReducedObjective(grid, problem, comm, state_mgrit=state_s, adjoint_mgrit=adj_s,
                                 batch_size=values["batch_size"], seed=values["seed"],
                                 unconverged=values["unconverged"])
    from ..optim import adaptive
    objective.adapt = adaptive.create(values, db, comm, lambda line: _say(comm, f"ocnet: warning: {line}", sys.stderr))
    if values["mgrit_view"]:
        from ..mgrit.solver import view_solves
        _say(comm, "ocnet: -mgrit_view: -mode serial builds no MGRIT (layer-serial sweeps; use -mode exact or oneshot)"
             if values["mode"] == "serial" else "\n".join(view_solves(
                 objective.mgrit, objective.adj_mgrit, its_range=None if objective.adapt is None else {
                     w: (values[f"oneshot_{w}_its_min"], values[f"oneshot_{w}_its_max"]) for w in ("state", "adjoint")})))
    replicated = values["design_layout"] == "replicated"
    x = objective.design.initial(values["seed"])
    meta = {"problem": spec, "model": problem.name,
            "shapes": [int(problem.layer_param_size), int(problem.global_param_size)],
            "N": grid.N, "T": grid.T, "global_size": objective.design.global_size,
            "tao_type": db.getString("tao_type"),  # -resume continues with the same optimiser
            "ranks": grid.size, "model_options": sorted(plugin_keys),
            "data_options": sorted(getattr(cls, "data_options", ())),
            "training_options": sorted(set(problem.regularization_options or ()) | set(problem.training_options)),
            "split_options": sorted(problem.split_options),  # (this run's: a plugin may set it per run)
            "options": {k: v for k, v in values.items() if k not in RUN_CONTROL},
            "model_state": problem.model_state(),
            # (-resume: the same data files; hashed only where a run folder keeps them)
            "data_files": rundir.data_fingerprints(opts, values, comm) if values["run_dir"] or values["resume"] else {}}
    if values["load"]:
        rundir.load_params(values["load"], x, meta, comm, resample=values["load_resample"])
    elif values["load_resample"]:
        raise OcnetError("-load_resample needs -load (the saved model to resample)")
    run_dir = values["run_dir"] or values["resume"]
    _FAILURE.update(ranks=grid.size, mode=values["mode"])
    if values["checkpoint_every"] and not run_dir:
        raise OcnetError("-checkpoint_every needs -run_dir")
    if values["checkpoint_every"] and not values["checkpoint"]:
        raise OcnetError("-checkpoint_every with -checkpoint 0: give one of them")
    if values["predictions"] and not run_dir:
        raise OcnetError("-predictions needs -run_dir (the files go there)")
    if not run_dir:  # (tester 40: ignored silently)
        for k in ("run_dir_overwrite", "run_dir_plots", "checkpoint", "checkpoint_seconds"):
            if db.hasName(k) and k not in problem_given:
                _say(comm, f"ocnet: warning: -{k} has no effect without -run_dir (no run folder is written)", sys.stderr)
    if values["load"] and db.hasName("seed") and not values["batch_size"] and "seed" not in problem_given \
            and values["seed"] != (loaded.get("options") or {}).get("seed"):  # (the loaded run's own seed: its
        # options file replayed to evaluate it, docs/getting-started.md)
        _say(comm, f"ocnet: warning: -seed has no effect with -load (the parameters come from {values['load']}; "
                   "-seed draws initial parameters and mini-batches)", sys.stderr)
    if values["resume"] and values["run_dir"] and \
            os.path.abspath(values["run_dir"]) != os.path.abspath(values["resume"]):
        raise OcnetError("-resume continues in its own folder: drop -run_dir (or give the same folder)")
    if values["dry_run"]:  # all that needs no computation is checked: stop before the run folder
        Trainer(objective, comm, replicated).tao.destroy()  # (TAO's own options: -tao_ls_type, ...)
        if values["resume"]:  # (read-only: what -resume would refuse)
            rundir.lock(values["resume"], comm, "-resume", probe=True)
            if not rundir.check_resume(values["resume"], meta, comm, recorded):  # (tester 39: it said nothing)
                _say(comm, f"ocnet: dry run: {values['resume']} holds no checkpoint yet: -resume would start the run "
                           "from the beginning")
        elif run_dir:
            if os.path.isdir(run_dir):
                rundir.lock(run_dir, comm, "-run_dir", probe=True)
            rundir.check_target(run_dir, comm, overwrite=values["run_dir_overwrite"])
        _say(comm, f"ocnet: dry run: options, data and problem '{problem.name}' (N={grid.N}, {grid.size} "
             f"rank{'s' if grid.size > 1 else ''}, -mode {values['mode']}) check out; nothing computed or written")
        return 0
    resume = bool(values["resume"])
    if resume:
        rundir.lock(values["resume"], comm, "-resume")
        _FAILURE["starts"] = rundir.earlier_starts(values["resume"], comm)
        # (TAO reads its options first: a -tao_* name it did not read is a misspelling, reported as
        # one, not a changed setting)
        Trainer(objective, comm, replicated).tao.destroy()
        resume = rundir.check_resume(values["resume"], meta, comm, recorded)
        from ..optim import checkpoint
        done = checkpoint.saved_meta(values["resume"], comm, "iteration") if resume else None
        if isinstance(done, int) and max_it <= done and rundir.finished_at(values["resume"], done, comm):
            # a finished run with no iterations left: nothing to do, the folder is left as it is (one
            # stopped in its final outputs goes on below: they are written)
            Trainer(objective, comm, replicated).tao.destroy()  # (TAO reads its options: not reported as unused)
            _say(comm, f"ocnet: note: -resume: the run is at iteration {done}, -tao_max_it {max_it}: no iterations "
                       "left (give a larger -tao_max_it to continue); nothing was run or changed", sys.stderr)
            return 0
        if not resume:  # an ocnet run folder stopped before its first save: start again there
            _say(comm, f"ocnet: {run_dir} holds no checkpoint yet: starting the run from the beginning")
            rundir.prepare(run_dir, comm, overwrite=True)
            recorded = None  # (options.txt becomes this run's, whole: it kept the first start's values, tester 51)
    elif run_dir:
        rundir.lock(run_dir, comm, "-run_dir")  # (an existing folder: before its contents are looked at)
        rundir.prepare(run_dir, comm, overwrite=values["run_dir_overwrite"])
        rundir.lock(run_dir, comm, "-run_dir")  # (a new one)
    if run_dir:
        _FAILURE["run_dir"] = run_dir
        def write_options():
            rundir.write_options(run_dir, comm, skip=own, extra={"tao_max_it": "0"} if max_it == 0 else {},
                                 recorded=recorded)
        if not values["resume"]:  # (a resumed run's: once this start is set up, a bad option is not kept)
            write_options()
        signals.on_early_stop(lambda: rundir.write_json(
            os.path.join(run_dir, "summary.json"),
            run_summary("INTERRUPTED", None, exit_status=signals.INTERRUPTED_STATUS,
                        note="stopped by a signal before the first iteration of this start; -resume continues")))

    def show(row):
        if not values["quiet"]:
            name = rundir.headline_metric([row])
            metric = ("  train {train_accuracy:.3f}  val {val_accuracy:.3f}".format(**row) if name == "accuracy" else
                      f"  train {name} {row.get('train_' + name, math.nan):.4g}  val {name} {row.get('val_' + name, math.nan):.4g}"
                      if name else "")
            metric = metric.replace("  val nan", "").replace(f"  val {name} nan", "")  # (e.g. unlabelled data)
            _say(comm, "it {iteration:4d}  J {objective:.6e}  |g| {gradient_norm:.3e}".format(**row) + metric
                 + "  t {wall_time:.2f}s".format(**row))

    early = []

    def on_row(row):
        show(row)
        if not early:  # this start's first row (after -resume too)
            early.append(row)
            report_misspelt(comm)
            if row["iteration"] == 0 and not values["load"]:  # (drawn starting weights only)
                report_regularization(comm, problem, row["objective"], getattr(objective, "last_loss", None))

    x_opt = objective.design.convert(x, replicated)
    signals.test_hook("warmup")
    t_warm = time.perf_counter()
    objective.evaluate(x_opt, x_opt.duplicate())  # JIT warm-up, so wall_time measures the solve
    _FAILURE["warmup_time"] = comm.bcast(time.perf_counter() - t_warm, root=0)  # (its compiles included)
    if objective.adapt is not None:
        objective.adapt.reset_totals()
    trainer = Trainer(objective, comm, replicated, on_row=on_row, run_dir=run_dir,
                      checkpoint_every=values["checkpoint_every"], resume=resume,
                      checkpoint_seconds=values["checkpoint_seconds"] if values["checkpoint"] else None,
                      stop=(values["stop_state_residual"], values["stop_adjoint_residual"]), meta=meta,
                      files=rundir)
    _FAILURE["trainer"] = trainer
    if run_dir and values["resume"]:
        write_options()
    if run_dir and comm.Get_rank() == 0:  # (a start killed by SIGKILL or a node failure leaves this, not an
        # earlier start's ending, which a job script would take as the run's)
        rundir.write_json(os.path.join(run_dir, "summary.json"), run_summary(
            "RUNNING", trainer, note="this start is running, or was killed without a chance to write its end "
            "(SIGKILL, a node failure): history.csv and the checkpoint say how far it got; -resume continues"),
            record=False)
    if values["log_phases"]:  # events from here on: the solve, not the warm-up
        from ..perfmodel import phases
        if not run_dir:
            raise OcnetError("-log_phases needs -run_dir")
        phases.start()
        objective.mgrit_counts = {k: [0, 0] for k in objective.mgrit_counts}
    t_solve, cpu_solve = time.perf_counter(), time.process_time()
    jit_solve, jit_cpu = jit_clock.seconds(), jit_clock.cpu_seconds()
    if resume:
        fresh = "" if trainer.oneshot is not None else (  # (the one-shot TAO resumes bitwise)
            f" (TAO {trainer.tao.getType()} starts its own memory afresh at the saved design: from here the history "
            "differs from an uninterrupted run's; docs/hpc/long-runs.md)")
        _say(comm, f"ocnet: resuming {run_dir} at iteration {trainer.resume_its}{fresh}")
    signals.set_phase("run")  # from here a signal stops every rank at the next iteration's end
    try:
        code = trainer.solve(x_opt) if max_it > 0 else trainer.evaluate_only(x_opt)
    except signals.Interrupted as e:  # collective: every rank raised it at the same safe point
        signals.set_phase("final")
        last = trainer.rows[-1]["iteration"] if trainer.rows else None
        if run_dir:  # the parameters and checkpoint of the last row were saved at the safe point
            summary = run_summary("INTERRUPTED", trainer, exit_status=signals.INTERRUPTED_STATUS,
                                  signal=signal_name(e.signum),
                                  note="stopped by a signal; params.petsc holds the last history row's design; "
                                       "continue with -resume")
            # (the figure last: a launcher's SIGKILL while it is drawn, seconds on a loaded machine, leaves
            # the summary of the stop written; a tester's run under load was killed in its save)
            rundir.write_all(run_dir, comm, trainer.rows, None, meta, summary, plot=False)
            _say(comm, f"ocnet: {e} after iteration {last}: saved {run_dir} (continue with -resume {run_dir})",
                 sys.stderr)
            if values["run_dir_plots"]:
                rundir.plot_history(run_dir, trainer.rows, comm)
        else:
            _say(comm, f"ocnet: {e} after iteration {last} (no -run_dir: nothing saved)", sys.stderr)
        return signals.INTERRUPTED_STATUS
    except NumericalFailure as e:
        if run_dir and trainer.last_good is not None:  # collective: every rank raised it
            x = objective.design.convert(trainer.last_good, False)
            last = trainer.rows[-1]["iteration"]
            summary = run_summary("DIVERGED_NAN" if non_finite(str(e)) else "FAILED", trainer, exit_status=3,
                                  error=str(e),
                                  note=f"the run failed after iteration {last}; params.petsc holds that "
                                       "iteration's design")
            signals.set_phase("final")
            rundir.write_all(run_dir, comm, trainer.rows, x, meta, summary, plot=values["run_dir_plots"])
            _say(comm, f"ocnet: kept the parameters of iteration {last} in {run_dir}", sys.stderr)
        raise
    trainer.finish(x_opt)
    signals.set_phase("final")  # a signal now waits for the final outputs (they end the run anyway)
    t_solve, cpu_solve = time.perf_counter() - t_solve, time.process_time() - cpu_solve
    jit_solve, jit_cpu = jit_clock.seconds() - jit_solve, jit_clock.cpu_seconds() - jit_cpu
    if values["log_phases"]:
        # (this start's iterations: after -resume the evaluations and times are this start's too)
        done = int(trainer.rows[-1]["iteration"]) - trainer.resume_its if trainer.rows else 0
        phases.write(run_dir, comm, done, comm.bcast(trainer.evaluations, root=0), t_solve,
                     objective.mgrit_counts, cpu_solve, jit_solve, jit_cpu)
    reason = reason_name(code)
    x = objective.design.convert(x_opt, False)
    rows = trainer.rows
    last = rows[-1] if rows else {}
    its = last.get("iteration", 0)
    ran = (f"TAO {trainer.tao.getType()} stopped after {its} iteration{'' if its == 1 else 's'} ({reason})"
           if its or int(code) else "evaluated the starting parameters (-tao_max_it 0)")
    name = rundir.headline_metric(rows)  # accuracy, or a problem's other metric (e.g. rmse)
    where = "val" if rundir.finite(last.get(f"val_{name}")) else "train"  # (a problem without validation data)
    val = last.get(f"{where}_{name}", math.nan)
    _say(comm, f"ocnet: {problem.name} N={grid.N} ranks={grid.size}: {ran}; "
               f"objective {last.get('objective', float('nan')):.6e}"
               + (f", {where} {name} {val:.4f}" if name == "accuracy" and rundir.finite(val) else
                  f", {where} {name} {val:.6g}" if name and rundir.finite(val) else ""))
    if max_it == 0:  # (TAO's reason is ITERATING: it did not run)
        reason = "EVALUATED"
    summary = run_summary(reason, trainer, reason_code=int(code))
    summary["iterations"] = int(last.get("iteration", 0))
    if values["mode"] == "oneshot" or values["batch_size"]:  # the history holds inexact numbers
        final = objective.exact_evaluation(x_opt)
        summary["final_exact"] = final
        _say(comm, "ocnet: at the final parameters, exact (layer-serial) forward solve on all training data: "
                   + ", ".join(f"{k} {v:.6g}" for k, v in final.items()))
    if objective.adapt is not None:
        summary["adaptive_oneshot"] = totals = objective.adapt.summary()
        fallbacks = totals["exact_evaluations"] - totals["exact_start_evaluations"]
        rest = totals["evaluations"] - totals["exact_start_evaluations"]
        if rest >= 4 and fallbacks >= rest / 2:  # one-shot in name only: tell, with what to change
            after = " after the exact start" if totals["exact_start_evaluations"] else ""
            _say(comm, f"ocnet: note: {fallbacks} of the {rest} one-shot evaluations{after} were exact "
                       "(layer-serial fallbacks: MGRIT did not contract, or the gradient error estimate reached |g|), "
                       "so this run cost more than -mode serial would; -mgrit_view and -mgrit_monitor show the "
                       f"solves, and {contract_advice(objective.mgrit, '').replace('make it contract', 'make them contract')}"
                       " (docs/user/mgrit.md)", sys.stderr)
        if rest == 0 and totals["evaluations"] and max_it > 0 and objective.adapt.start_len < adaptive.ALL:
            # the run converged inside its exact start: its history is layer-serial's, not one-shot's
            _say(comm, f"ocnet: note: all {totals['evaluations']} evaluations were in adaptive one-shot's exact start "
                       f"(the first {objective.adapt.start_len} gradient evaluations: -oneshot_exact_start "
                       f"{objective.adapt.exact_start:g} of the run's first -tao_max_it"
                       + (f" {max_it}" if not values["resume"] else ", fixed at its start") + "), so no one-shot MGRIT "
                       "solve ran; "
                       "-oneshot_exact_start 0 tries one-shot from the first iteration", sys.stderr)
    restarts = trainer.line_search_restarts()  # (collective)
    if restarts is not None:
        summary["line_search_restarts"] = restarts
    first = rows[0].get("objective", math.nan) if rows else math.nan
    if math.isfinite(first) and not last.get("objective", first) <= first:  # (nan: not finite either)
        _say(comm, f"ocnet: warning: the objective rose from {first:.6g} (iteration {rows[0]['iteration']}) to "
                   f"{last['objective']:.6g}: the run did not train ({reason} is TAO's stop reason)", sys.stderr)
    false_stop = None
    if values["mode"] == "oneshot" and objective.adapt is None:
        far = fixed_counts_far(objective)
        J, Jx = last.get("objective", math.nan), summary["final_exact"]["objective"]
        if far and int(code) > 0 and not abs(J - Jx) <= 0.5 * abs(Jx):
            # TAO's convergence test passed on evaluations of diverged solves (tester 39: J 3.6e95
            # and a relative gradient of 6e-31 against 1.87 exact: CONVERGED_GRTOL at iteration 0)
            false_stop = (f"TAO's {reason} was judged on fixed one-shot evaluations whose MGRIT solves diverged "
                          f"({far}): the objective it saw, {J:.4g}, is not the exact {Jx:.6g} at the final "
                          "parameters; adaptive one-shot (the default: no -oneshot_state_its / -oneshot_adjoint_its) "
                          f"falls back to exact solves there; {contract_advice(objective.mgrit, '')}")
            summary.update(reason="FAILED", tao_reason=reason, exit_status=NumericalFailure.status, error=false_stop)
            summary["starts"][-1]["reason"] = "FAILED"
        elif far:
            _say(comm, f"ocnet: warning: the fixed one-shot counts' last MGRIT solves are far from converged ({far}): "
                       "more iterations per solve (-oneshot_state_its, -oneshot_adjoint_its); "
                       f"{contract_advice(objective.mgrit, '')} faster; or adaptive one-shot (the default) measures "
                       "it and falls back to exact solves", sys.stderr)
    g0, g1 = (rows[0].get("gradient_norm"), last.get("gradient_norm")) if rows else (None, None)
    if reason == "DIVERGED_LS_FAILURE" and problem_of_user(problem) and not values["batch_size"] \
            and rundir.finite(g0) and rundir.finite(g1) and g1 > FAR_FROM_STATIONARY * g0:
        # (a plugin's wrong transpose: a direction that does not descend, long before a minimum)
        _say(comm, f"ocnet: note: the line search failed at iteration {its} with |g| still {g1 / g0:.2g} of its "
                   "starting value: an error in the plugin's gradient (step_adjoint, opening_adjoint, terminal's lamN) "
                   "is one cause; -check_adjoint tests it (docs/plugins/checker.md)", sys.stderr)
    if values["mode"] == "oneshot" and objective.adapt is None and reason == "DIVERGED_LS_FAILURE":
        _say(comm, "ocnet: note: the fixed one-shot counts ended on a line-search failure, where the inexact "
                   "gradient may be what failed; adaptive one-shot (the default: no -oneshot_state_its / "
                   "-oneshot_adjoint_its, or -oneshot_adapt 1) tightens the solves there instead of stopping",
             sys.stderr)
    if objective.rejected_trials:  # (the same count on every rank)
        summary["rejected_trial_points"] = objective.rejected_trials
        _say(comm, f"ocnet: note: {objective.rejected_trials} line-search trial point"
                   f"{'s' if objective.rejected_trials > 1 else ''} went non-finite (J = inf to the optimiser: the "
                   "step was shrunk)", sys.stderr)
    if objective.val_serial_fallbacks:
        summary["val_serial_fallbacks"] = objective.val_serial_fallbacks
    if objective.unconverged_count:
        summary["unconverged_solves"] = objective.unconverged_count
        summary["unconverged_by_solve"] = dict(objective.unconverged_by)
        by = ", ".join(f"{k} {n}" for k, n in objective.unconverged_by.items())
        if objective.serial_fallbacks:
            summary["serial_fallbacks"] = objective.serial_fallbacks
            by += (f"; {objective.serial_fallbacks} that diverged, blew up or went non-finite replaced by the layer-serial "
                   "solve")
        _say(comm, f"ocnet: warning: {objective.unconverged_count} exact-mode MGRIT solves ended above their "
                   f"tolerance ({by}; history.csv: state_mgrit_its, adjoint_mgrit_its, and the residuals "
                   "state_residual, adjoint_residual, val_state_residual)", sys.stderr)
    if run_dir:
        def more():  # (before summary.json: a run killed in them is resumed to write them)
            signals.test_hook("plot")
            # the problem's predict at x on some data (layer-serial; rank 0's result, None elsewhere)
            predict = lambda data: objective.forward_outputs(x, data, problem.predict, layer_parallel=False)[0]  # noqa: E731
            if values["run_dir_plots"]:
                problem.plot(run_dir, predict)
            if values["predictions"]:
                both = lambda g, uN: (problem.predict(g, uN), problem.prediction_columns(g, uN))  # noqa: E731
                write_predictions(run_dir, problem, lambda data: objective.forward_outputs(
                    x, data, both, layer_parallel=False)[0], comm)
        rundir.write_all(run_dir, comm, rows, x, meta, summary, plot=values["run_dir_plots"], more=more)
        _say(comm, f"ocnet: wrote {run_dir}")
    if false_stop:
        raise NumericalFailure(false_stop)
    if code < 0 and code not in accepted_stops():
        raise NumericalFailure(f"TAO stopped with {reason}")
    return 0


#: options that control a run but do not define it (not compared on -load/-resume)
RUN_CONTROL = ("run_dir", "run_dir_plots", "predictions", "run_dir_overwrite", "load", "design_layout", "quiet", "dry_run",
               "resume", "checkpoint", "checkpoint_every", "checkpoint_seconds", "log_phases", "mgrit_view",
               "check_adjoint")


def write_predictions(run_dir, problem, outputs, comm):
    """predictions_<set>.csv per dataset, one row per sample: ``outputs(data)`` is the problem's
    (predict, prediction_columns) at the final parameters on rank 0 (collective)."""
    import numpy as np

    from ..plugin.problem import ControlProblem, defining_class
    if defining_class(type(problem), "predict") in (None, ControlProblem):  # (the same on every rank)
        _say(comm, f"ocnet: warning: -predictions: problem '{problem.name}' defines no predict: nothing written",
             sys.stderr)
        return
    for name, data in problem.datasets.items():
        out = outputs(data)
        if comm.Get_rank() != 0:
            continue
        out, more = out
        if out is None:
            _say(comm, f"ocnet: warning: -predictions: problem '{problem.name}': predict returned None on '{name}': "
                 "nothing written for it", sys.stderr)
            continue
        out = np.asarray(out)
        rows = out.reshape(len(out), -1) if out.ndim else out.reshape(1, 1)
        n = problem.data_size(data)
        if n and len(rows) != n:  # (a problem with mini-batches knows its sample count)
            _say(comm, f"ocnet: warning: -predictions: problem '{problem.name}': predict returned {len(rows)} rows "
                 f"for the {n} samples of '{name}': nothing written for it", sys.stderr)
            continue
        path = os.path.join(run_dir, f"predictions_{name}.csv")
        names = ["prediction"] if rows.shape[1] == 1 else [f"output_{j}" for j in range(rows.shape[1])]
        columns = [("sample", np.arange(len(rows)))]
        columns += _columns(problem, "sample_columns", problem.sample_columns(data), name, len(rows),
                            ["sample"] + names, comm)
        columns += [(k, rows[:, j]) for j, k in enumerate(names)]
        columns += _columns(problem, "prediction_columns", more, name, len(rows), [k for k, _ in columns], comm)
        with open(path + ".tmp", "w") as f:
            f.write(",".join(k for k, _ in columns) + "\n")
            text = [[str(int(v)) if np.issubdtype(c.dtype, np.integer) else repr(float(v)) for v in c]
                    for _, c in columns]
            f.writelines(",".join(r) + "\n" for r in zip(*text))
        os.replace(path + ".tmp", path)


def _columns(problem, method, cols, name, n, taken, comm):
    """The problem's ``sample_columns(data)`` or ``prediction_columns(g, uN)`` (``method``) as
    [(name, 1-D array of n numbers)]; a column that is not one number per sample, or whose name is
    taken, is left out with one warning."""
    import numpy as np
    out = []
    for k, v in (cols or {}).items():
        v = np.asarray(v)
        if str(k) in taken or "," in str(k) or v.shape != (n,) or not (np.issubdtype(v.dtype, np.number) or
                                                                        v.dtype == bool):
            _say(comm, f"ocnet: warning: -predictions: problem '{problem.name}': {method} column {k!r} of "
                 f"'{name}' is not one number per sample ({n}) under a new name: left out", sys.stderr)
            continue
        out.append((str(k), v.astype(np.int64) if v.dtype == bool else v))
        taken = taken + [str(k)]
    return out


def signal_name(signum):
    import signal
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _unused_options():
    """{unread option: the closest name that was declared or read, or None} (the same on every rank)."""
    from petsc4py import PETSc

    db = PETSc.Options()
    if db.hasName("help") or not hasattr(db, "used"):  # -help reads nothing: the options given with it are not typos
        return {}
    given = db.getAll()
    known = sorted(set(DECLARED) | set(TAO_NAMES) | {k for k in given if db.used(k)})
    # (a TAO option spelt right that TAO did not read, e.g. -tao_ls_type with a type without a line
    # search, is no misspelling of another: no hint)
    return {k: None if k in TAO_NAMES else closest_name(k, [n for n in known if n != k])
            for k in given if not db.used(k)}


#: PETSc TAO's options that a user's misspelling is most likely of (from PETSc 3.26's -help for
#: lmvm, bncg, owlqn): spelling hints only -- -tao_monitr was reported at the run's end with no
#: hint, as TAO never read -tao_monitor, which was not given (tester 39)
TAO_NAMES = ("tao_type", "tao_max_it", "tao_max_funcs", "tao_gatol", "tao_grtol", "tao_gttol", "tao_fmin",
             "tao_steptol", "tao_monitor", "tao_monitor_solution", "tao_monitor_gradient", "tao_monitor_step",
             "tao_converged_reason", "tao_view", "tao_ls_type", "tao_ls_monitor", "tao_ls_max_funcs", "tao_ls_ftol",
             "tao_ls_gtol", "tao_ls_rtol", "tao_ls_stepinit", "tao_ls_stepmax", "tao_ls_stepmin",
             "tao_lmvm_mat_lmvm_hist_size", "tao_lmvm_recycle", "tao_owlqn_lambda", "tao_bncg_type")


def _of_other_problems(names):
    """{option: [registered problems that declare it]} for those of ``names`` that this run's
    problem does not declare (e.g. -ntrain given to -problem classify: an option of peaks)."""
    from ..base.options import OptionSet
    from ..plugin.loader import registered

    out = {}
    if not names:
        return out
    for name, ep in sorted(registered().items()):
        if PROBLEM and name == PROBLEM[0]:
            continue
        try:
            opts = OptionSet()
            ep.load().declare_options(opts)
        except Exception:  # noqa: B902 - a hint only: a problem that does not load is not this run's
            continue
        for o in opts.options:
            if o.name in names:
                out.setdefault(o.name, []).append(name)
    return out


def _other_problem_hint(k, others):
    where = others.get(k)
    if not where:
        return ""
    return (f" (an option of -problem {', '.join(where)}; this run's problem is "
            f"{PROBLEM[0] if PROBLEM else '?'})")


def fixed_counts_far(objective):
    """'state residual 597 (48 x |u|), ...' for the last fixed-count solves whose residual is
    above FAR times the norm of their iterate (or not finite); '' when none is."""
    from ..optim.objective import FAR  # (PETSc is imported after petsc4py.init reads the command line)
    out = []
    for which, mg in (("state", objective.mgrit), ("adjoint", objective.adj_mgrit)):
        unorm = getattr(mg, "unorm", None)
        if mg is None or not mg.history or not unorm:
            continue
        r = mg.history[-1]
        if not r <= FAR * unorm:
            out.append(f"{which} residual {r:.3g} ({r / unorm:.3g} x |{'u' if which == 'state' else 'lambda'}|)")
    return "; ".join(out)


def report_unused(comm):
    """List options given but never read (a typo is never silently ignored), with the closest
    option name that was declared or read, or the registered problems that declare it."""
    unused = _unused_options()
    others = _of_other_problems([k for k, close in unused.items() if not close])
    for k, close in unused.items():
        _say(comm, f"ocnet: warning: option {_given(k)} was given but never used{_unused_why(k, close, others)}",
             sys.stderr)
    return list(unused)


def _unused_why(k, close, others):
    """Why option ``k`` (unused) is unused, as ' (...)', or '' (a foreign framework's name, a
    misspelling of ``close``, another problem's option, an unknown name in ocnet's prefixes)."""
    if k in FOREIGN:
        return f" ({FOREIGN[k]})"
    if close:
        return f" (did you mean -{close}?)"
    if k in others:
        return _other_problem_hint(k, others)
    if k.startswith(_OWN_PREFIXES):
        return " (no ocnet option has this name: -help lists them)"
    return ""


_EPOCHS = ("ocnet counts optimisation iterations: -tao_max_it; with -batch_size B an epoch is (training samples) / B "
           "of them")
_LR = "TAO's line search chooses each step, there is no learning rate: -tao_type, -tao_ls_type"
_CPU = "ocnet runs on CPUs, in parallel over MPI ranks: mpiexec -n P"
_CF = "MGRIT's coarsening factor: -mgrit_cfactor (one value, or one per level)"
_LEVELS = "-mgrit_levels (not given: coarsened to at most 8 points)"
_TOL = "exact mode's MGRIT tolerances: -mgrit_rtol, -mgrit_atol; the optimiser's: -tao_gatol, -tao_grtol"
_MAXIT = "MGRIT iterations per solve: -mgrit_max_it; optimisation iterations: -tao_max_it"
_RELAX = "-mgrit_relax F|FCF|FCFCF (every level), -mgrit_fine_relax (the finest)"
_STEPS = "-N (layers = time steps) and -T (the final time; h = T / N)"
#: other frameworks' option names (PyTorch, Keras, PyMGRIT, XBraid habits) and what ocnet has
#: instead: reported at iteration 0 with the hint (a tester's -epochs 50 -lr 0.1 trained with
#: neither and said so only at the end; another's -cf 4 -max_levels 3 likewise)
FOREIGN = {"cf": _CF, "coarsening_factor": _CF, "max_levels": _LEVELS, "nlevels": _LEVELS, "tol": _TOL,
           "max_iter": _MAXIT, "maxiter": _MAXIT, "relax_scheme": _RELAX, "nrelax": _RELAX,
           "cycle_type": "-mgrit_cycle V|F", "fmg": "-mgrit_cycle F", "nt": _STEPS, "t_stop": _STEPS, "tstop": _STEPS,
           "epochs": _EPOCHS, "epoch": _EPOCHS, "num_epochs": _EPOCHS, "max_epochs": _EPOCHS, "lr": _LR,
           "learning_rate": _LR, "device": _CPU, "gpu": _CPU, "use_gpu": _CPU, "cuda": _CPU,
           "vec_type": _CPU + "; PETSc's GPU vectors are not used",
           "optimizer": "the optimiser is PETSc TAO's: -tao_type (lmvm, cg, bncg, ...) or -oneshot_tao",
           "momentum": "TAO's quasi-Newton and CG methods have none: -tao_type",
           "weight_decay": "the weights' Tikhonov regularisation: -gamma_tik (layers), -gamma_class (classifier)"}


#: prefixes of ocnet's own options, all read before the first iteration: an unread one is reported
#: there even without a close match (-mgrit_nu went unnoticed until the end of the run)
_OWN_PREFIXES = ("mgrit_", "state_mgrit_", "adjoint_mgrit_", "oneshot_")
#: options PETSc reads only when a solve or the program ends (never reported early)
_READ_LATE = ("_view", "_converged_reason", "log_", "options_", "memory_", "malloc", "objects_", "info")


#: the share of the starting objective above which the regularisation is said to dominate it
REG_DOMINATES = 0.75


#: a line-search failure with |g| above this fraction of its starting value: far from a stationary
#: point, where round-off does not end line searches, but a wrong gradient does (problem_of_user)
FAR_FROM_STATIONARY = 1e-3


def report_regularization(comm, problem, J, loss):
    """For the ResNet family (a problem with -init_layer) with a smoothness weight, at drawn (not
    loaded: the caller) starting weights: one note when the regularisation is most
    (REG_DOMINATES) of the objective at the starting parameters, where the optimiser works on it
    before the data term: the smoothness term of independently drawn layers grows like N^3 (a
    tester's N = 64 ReLU network stayed at 47.5 %; docs/user/resnets.md measures the remedies)."""
    smooth = (getattr(problem, "layer_weights", None) or (0.0, 0.0))[1]
    if "init_layer" not in problem.values or not smooth > 0 or loss is None or not (J > 0 and math.isfinite(J)) \
            or J - loss < REG_DOMINATES * J:
        return
    names = ", ".join(f"-{n}" for n in (problem.regularization_options or ()))
    _say(comm, f"ocnet: note: at the starting parameters the regularisation is {J - loss:.4g} of the objective "
         f"{J:.4g} ({100 * (J - loss) / J:.1f} %; the smoothness term of independently drawn layers grows "
         f"like N^3 at a fixed -T): the optimiser works on it before the data term; deep networks may train better "
         f"with a smaller -init_layer or regularisation ({names}): docs/user/resnets.md", sys.stderr)


def report_misspelt(comm):
    """At the first iteration (every object has read its options by then): the options not read
    that look like a misspelling of one that was (e.g. -tao_max_itt for -tao_max_it), so that a
    long run does not go on for hours without it unnoticed (the end of the run lists it again)."""
    unused = _unused_options()
    others = _of_other_problems([k for k, close in unused.items() if not close])
    for k, close in unused.items():
        if any(t in k for t in _READ_LATE):
            continue
        why = _unused_why(k, close, others)
        if why:  # (the others are listed at the end: an option of PETSc's may still be read)
            _say(comm, f"ocnet: warning: option {_given(k)} was given but is not used{why}; the run goes on "
                       "without it", sys.stderr)


def misspelt_in(text):
    """For an error line that names an option (``-train_file``): ' (given: -train_flie; a
    misspelling?)' when an option given but never read is close to it, else ''.  (The run ends
    before the unused options are reported.)"""
    try:
        close = [(k, c) for k, c in _unused_options().items() if c and re.search(rf"-{re.escape(c)}\b", text)]
    except Exception:  # noqa: B902 - a hint only: PETSc may not be initialised
        return ""
    return "".join(f" (given: -{k}; a misspelling of -{c}?)" for k, c in close)


#: the options this run declared (framework, MGRIT and the problem's): report_unused's spelling hints
DECLARED = []
#: this run's -problem (as given): report_unused names the other problems an option belongs to
PROBLEM = []


#: main() ran in this process (PETSc reads a process's options once, at its initialisation)
_STARTED = []


def _options_unread(argv):
    """Where PETSc is initialised already and its options differ from ``argv``'s (petsc4py.PETSc
    imported without ``petsc4py.init(argv)``: PETSc then read no command line at all; or
    initialised with other values): the first difference, as '-name value (PETSc holds ...)';
    else None.  -options_file is not compared (PETSc holds the file's options, not its name)."""
    if "petsc4py.PETSc" not in sys.modules:
        return None
    from petsc4py import PETSc

    from .argv import is_option_name as name
    db, toks = PETSc.Options(), argv[1:]
    for i, t in enumerate(toks):
        if not name(t) or t == "-options_file":
            continue
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        value = "" if nxt is None or name(nxt) else nxt
        if not db.hasName(t[1:]):
            return f"{t} {value}".rstrip() + " (PETSc holds no such option)"
        held = db.getString(t[1:], "") or ""
        if held != value:
            return f"{t} {value}".rstrip() + f" (PETSc holds {held or 'it without a value'})"
    return None


def main(argv=None):
    """Run ocnet as the ``ocnet`` command does, with ``argv`` (default ``sys.argv``; ``argv[0]``
    the program name) and return the exit status (errors: one line on stderr).  Once per
    process: PETSc reads the options when it is initialised, so a second call, or a call after
    ``petsc4py.PETSc`` was imported without ``petsc4py.init(argv)`` with these options, returns 2
    -- run each ocnet run in a process of its own.  (A script that imports ocnet's modules first
    calls ``petsc4py.init(sys.argv)`` before them, as runs/noisy_gradient.py does.)"""
    argv = list(sys.argv if argv is None else argv)
    unread = None if _STARTED else _options_unread(argv)
    late = "another run already started in this process" if _STARTED else (
        f"petsc4py.PETSc was initialised before with other options (imported without petsc4py.init(argv), or "
        f"initialised with other values: {unread})" if unread else None)
    rank0 = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")) == "0"
    if late:
        if "petsc4py.PETSc" in sys.modules:  # the argv's options were meant for this run, which does not
            from petsc4py import PETSc  # happen: not PETSc's "options you set that were not used" at exit too
            if not PETSc.Options().hasName("options_left"):
                PETSc.Options().setValue("options_left", "0")
        if rank0:
            print(f"ocnet: error: ocnet.run.cli.main: {late}, and PETSc reads a process's options once: run "
                  "each ocnet run in a process of its own, e.g. subprocess.run([sys.executable, '-m', 'ocnet', ...])",
                  file=sys.stderr)
        return 2
    _STARTED.append(True)
    argv = [a if a not in ("-h", "--help") else "-help" for a in argv]  # (-h ran a default training and --help was
    # refused: PETSc knows -help only)
    if argv[1:] in (["-version"], ["--version"]):
        from importlib.metadata import version
        if rank0:
            print(f"ocnet {version('ocnet')} (petsc4py {version('petsc4py')}, numba {version('numba')})")
        return 0
    env_bad = argument_error(shlex.split(os.environ.get("PETSC_OPTIONS", "")))
    bad = (f"PETSC_OPTIONS: {env_bad}" if env_bad else None) or argument_error(argv[1:]) or options_file_error(argv)
    if bad:  # PETSc would fail in its initialisation with a multi-line error on every rank
        if rank0:
            print(f"ocnet: error: {bad}", file=sys.stderr)
        return 2
    import petsc4py

    petsc4py.init(petsc_argv(argv))
    from petsc4py import PETSc

    own_help = "-help" in argv[1:] and "-help" not in petsc_argv(argv)[1:]  # ocnet's options only (not PETSc's)
    if own_help:
        PETSc.Options().setValue("help", "")

    from ..base import signals
    from ..base.errors import ErrorChannel
    from ..base.numba_cache import install

    install()  # a damaged Numba cache file recompiles instead of failing every run
    from ..base import threads
    threads.limit()  # one BLAS thread per rank unless OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / ... are set
    from ..base import jit_clock
    jit_clock.install()  # wall_time leaves out JIT compiles (a cold cache compiles kernels mid-run)
    import numpy as np
    np.seterr(all="ignore")  # overflow is detected and reported once (a non-finite objective), not warned per array
    signals.install()  # after PETSc's initialisation: ours, not PETSc's, handle TERM/INT/USR1
    import signal
    # a closed stdout (ocnet ... | head) ends the process quietly, as other commands do, not with
    # PETSc's "Caught signal number 13 Broken Pipe" and an MPI_Abort
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    comm = PETSc.COMM_WORLD.tompi4py()
    channel = ErrorChannel(comm)
    channel.on_report = write_failure
    try:
        status = run(comm)
    except BaseException as e:  # noqa: B902 - every failure ends every rank (KeyboardInterrupt too)
        if own_help:
            PETSc.Options().delValue("help")
        status, text = describe(e, comm)
        if status == 2 and text:
            m = re.match(r"ocnet: error: (?:PETSc: )?option -(\w+):", text)
            src = option_source(argv, m.group(1)) if m else None
            text += misspelt_in(text) + (f" (given in {src})" if src else "")
        return channel.finish(status, text)
    report_unused(comm)
    if own_help:  # (PETSc's finalisation would print its -log_view help)
        PETSc.Options().delValue("help")
    if signals.agreed(comm) or status == signals.INTERRUPTED_STATUS:  # collective: every rank decides alike
        # every rank has written its part of the run folder; end now, without MPI_Finalize:
        # mpiexec, when it was signalled itself, is busy killing the job and would hold the
        # ranks' finalisation until it SIGKILLs them
        comm.Barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    signals.uninstall()  # everything is written: a signal during MPI's finalisation ends the rank
    return status


def describe(e, comm):
    """(exit status, text to print) of an exception on this rank (None text: PeerStop)."""
    from petsc4py import PETSc

    from ..base.errors import OcnetError, PeerStop

    while isinstance(e, PETSc.Error) and e.__cause__ is not None:  # raised inside a PETSc callback
        e = e.__cause__
    if isinstance(e, PeerStop):
        return 2, None
    if isinstance(e, OcnetError):
        return e.status, f"ocnet: error: {e}"
    if isinstance(e, PETSc.Error):  # e.g. a TAO option PETSc rejects: report its reason
        lines = [ln.split("] ", 1)[-1] for ln in str(e).splitlines() if ln.strip()]
        if any("infinity or NaN" in ln for ln in lines):  # TAO's check of f and |g| (finite J, |g|^2 overflows)
            return 3, ("ocnet: error: non-finite objective or gradient norm in TAO (PETSc: generated infinity or NaN); "
                       "try a smaller step (-T, -N), smaller initial weights or smaller regularisation weights")
        text = lines[-1] if lines else str(e)
        m = re.search(r"Input string (.+?) has no numeric value", text)
        if m:  # name the option (PETSc names the value only)
            names = [k for k, v in PETSc.Options().getAll().items() if v == m.group(1).strip()]
            if names:
                text = f"option -{names[0]}: {m.group(1).strip()!r} is not a number ({text})"
        return 2, f"ocnet: error: PETSc: {text}"
    if isinstance(e, MemoryError):
        return 2, ("ocnet: error: out of memory: use fewer layers (-N), a smaller state or data set, "
                   "mini-batches (-batch_size) or more ranks")
    if isinstance(e, KeyboardInterrupt):
        return 130, "ocnet: interrupted"
    line = kernel_typing_error(e)
    if line:
        return 1, f"ocnet: error: {line}"
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and plugin_frame(e) is None:
        where = f" writing '{e.filename}'" if e.filename else ""
        return 1, (f"ocnet: error: {e.strerror}{where}: make room (or move the run folder) and -resume (it "
                   "continues from the last complete checkpoint)")
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    forms = kernel_forms_of(e)
    if forms is not None:  # (raised inside the compiled kernels: Numba names no line of them)
        return 1, (f"[rank {comm.Get_rank()}] {tb}ocnet: error: the problem plugin failed ({type(e).__name__}: {e}) "
                   f"in {forms.describe()}, compiled by Numba, which names no line: a kernel's .py_func (the Python "
                   "function under @njit) called on one state gives a traceback with it, and NUMBA_BOUNDSCHECK=1 "
                   "makes an index outside an array an IndexError (docs/plugins/fast.md)")
    where = plugin_frame(e)
    if where is not None:
        sizes = ("; the arrays ocnet hands a plugin have the sizes it declares: state_size(data), cache_size(data), "
                 "layer_param_size, global_param_size (CONTRACT.md)") if isinstance(e, ValueError) and re.search(
            r"broadcast|shape|size of new array", str(e)) else ""
        return 1, (f"[rank {comm.Get_rank()}] {tb}ocnet: error: the problem plugin failed ({type(e).__name__}: {e}) "
                   f"at {where.filename}:{where.lineno}, in {where.name}{sizes}")
    return 1, f"[rank {comm.Get_rank()}] {tb}ocnet: error: internal error ({type(e).__name__}: {e}); please report it"


def kernel_typing_error(e):
    """One line for a Numba typing error in a plugin's kernel (a wrong signature, a kernel_args
    tuple of another length, a type the kernel cannot take), or None: Numba's own report is a
    page of compiler passes and a generated module's lines."""
    import ast
    import re

    errors = sys.modules.get("numba.core.errors")
    if errors is None or not isinstance(e, errors.TypingError):
        return None
    from ..plugin.kernels import PLUGIN_KERNELS, SIGNATURES
    text = str(e)
    name = next((n for n in re.findall(r"CPUDispatcher\(<function (\w+) at", text) if n in PLUGIN_KERNELS), None)
    if name is None:
        return None
    what, path, lineno = PLUGIN_KERNELS[name]
    at = [(f, int(n)) for f, n in re.findall(r" at (/\S+\.py) \((\d+)\)", text)
          if os.path.abspath(f) == path]  # (Numba names the line in the kernel's file when it has one)
    if at:
        lineno = at[0][1]
    skip = ("Failed in", "During:", "File ")  # (Numba's pass names and locations)
    reason = next((ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(skip)),
                  "Numba could not type it")
    bind = re.search(r"to signature '(\(.*?\))' due to \"TypeError: (.*?)\"", reason)
    if bind:
        reason = f"its signature {bind.group(1)} takes other arguments ({bind.group(2)})"
    elif reason.startswith("("):
        try:  # e.g. ('wrong tuple length for args: ', 'expected 5, got 3')
            reason = "".join(str(p) for p in ast.literal_eval(reason))
        except (ValueError, SyntaxError):
            pass
    if len(reason) > 300:
        reason = reason[:300] + " ..."
    return (f"the problem plugin's {what} {name} does not compile as ocnet calls it (Numba: {reason}) at "
            f"{path}:{lineno}; ocnet calls it as {name}{SIGNATURES[what]} with args = kernel_args(S) "
            "(docs/plugins/fast.md)")


def kernel_forms_of(e):
    """The GeneratedForms (ocnet/plugin/kernels.py) whose compiled call raised ``e`` (the traceback's
    innermost frames: a GeneratedForms method, then only Numba's, which adds the frame where its
    exception is defined), or None: the error is the plugin's kernels', though no Python frame of
    them is in the traceback."""
    import numba

    from ..plugin import kernels
    mine, lib = os.path.realpath(kernels.__file__), os.path.realpath(os.path.dirname(numba.__file__)) + os.sep
    tb, forms = e.__traceback__, None
    while tb is not None:
        f = os.path.realpath(tb.tb_frame.f_code.co_filename)
        if f == mine and isinstance(tb.tb_frame.f_locals.get("self"), kernels.GeneratedForms):
            forms = tb.tb_frame.f_locals["self"]
        elif not f.startswith(lib):
            forms = None
        tb = tb.tb_next
    return forms


def plugin_frame(e):
    """The innermost frame of ``e``'s traceback in a user's code (a plugin): outside ocnet, its
    built-in problems, the kernels' generated modules and the installed libraries; None if none."""
    import sysconfig

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    skip = [os.path.join(root, "ocnet"), os.path.join(root, "problems"), sys.prefix, sys.base_prefix,
            *(sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib"))]
    skip = tuple(os.path.realpath(d) + os.sep for d in skip)
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        f = frame.filename
        if f.startswith("<") or "ocnet_kernels" in f:  # (generated modules: ocnet_kernels_<hash>.py)
            continue
        if f.endswith((".pyx", ".pxi", ".pxd")):  # compiled extensions' sources (petsc4py, mpi4py)
            continue
        if not os.path.realpath(f).startswith(skip):
            return frame
    return None
