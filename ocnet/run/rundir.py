"""Run folders: options used, history.csv, plots, and the parameters (reloadable).

Written as the run goes (docs/hpc/long-runs.md): ``options.txt`` at the start, one
``history.csv`` row appended and flushed per iteration (:class:`HistoryWriter`), the parameters
of the last saved iteration (``params.petsc`` + ``params.json``, each written under a temporary
name and renamed) with every checkpoint, ``summary.json`` at the end (also after a stop on a
signal, reason ``INTERRUPTED``)."""
import csv
import json
import os
import platform
import sys

import numpy as np
from petsc4py import PETSc

from ..base.errors import OcnetError, collective_check

HISTORY_COLUMNS = ["iteration", "objective", "gradient_norm", "train_accuracy", "val_accuracy", "wall_time",
                   "step_length", "state_residual", "adjoint_residual", "val_state_residual",
                   "state_mgrit_its", "adjoint_mgrit_its"]
PARAMS = "params.petsc"
META = "params.json"


MARKER = ".ocnet-run"
LOCK = ".ocnet-lock"  # held (flock) by rank 0 of the run that writes the folder

_HELD = []  # the open lock file: released when the process ends, however it ends


def lock(path, comm, what, probe=False):
    """Claim the run folder ``path`` for this run: two runs never write one folder (a -resume
    while its run is still going, a requeued job beside the old one).  Rank 0 takes an exclusive
    ``flock`` on ``path/.ocnet-lock`` (created; it records pid, host and start) and keeps it until
    the process ends.  Collective; raises OcnetError on every rank when another process holds it.
    A file system without locks (``flock`` unsupported) is not checked.  Does nothing unless
    ``path`` is an ocnet run folder (its marker file): no lock file is left in other folders.
    ``probe`` (-dry_run): the same refusal, but nothing is held, created or written."""
    import fcntl
    import time

    msg = ""
    if comm.Get_rank() == 0 and os.path.isfile(os.path.join(path, MARKER)) and not _HELD:
        name = os.path.join(path, LOCK)
        try:
            fd = os.open(name, os.O_RDONLY if probe else os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            fd = None  # (a read-only folder: the run's own writes report it; probe: no lock file, no holder)
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                msg = (f"{what}: '{path}' is in use by a run that is still going ({holder}): wait for it to "
                       "end, or stop it first (a signal saves it; then -resume)")
            except OSError:  # no locks on this file system
                os.close(fd)
            else:
                if probe:  # (free: let go at once)
                    os.close(fd)
                else:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"pid {os.getpid()} on {platform.node()}, since "
                                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime())}\n".encode(), 0)
                    _HELD.append(fd)
    msg = comm.bcast(msg, root=0)
    collective_check(comm, not msg, msg)


def prepare(path, comm, overwrite=False):
    """Create the run folder; an existing non-empty one is refused (a run never mixes its files
    with another's) unless ``overwrite`` and it is an ocnet run folder, whose contents are then
    removed.  Collective; one line on every rank for any refusal."""
    ok, msg = True, ""
    if comm.Get_rank() == 0:
        try:
            ok, msg = _prepare(path, overwrite)
        except OSError as e:
            ok, msg = False, f"-run_dir: cannot create folder '{path}': {e.strerror}"
    collective_check(comm, comm.bcast(ok), comm.bcast(msg))


def check_target(path, comm, overwrite=False):
    """Collective, read-only (-dry_run): the refusal ``prepare`` would give for ``path``, raised
    as one line on every rank; nothing is created or removed."""
    msg = _refusal(path, overwrite, _entries(path)) if comm.Get_rank() == 0 else None
    msg = comm.bcast(msg)
    collective_check(comm, msg is None, msg or "")


def _entries(path):
    """The folder's entries but ocnet's lock (ours: held), [] where there is no such folder."""
    return [e for e in os.listdir(path) if e != LOCK] if os.path.isdir(path) else []


def _refusal(path, overwrite, entries):
    """Why ``path`` (holding ``entries``: ``_entries``) cannot become this run's folder, or None."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"-run_dir '{path}' exists and is not a folder"
    if entries and not overwrite:
        return (f"-run_dir '{path}' is not empty: choose a new folder, or add -run_dir_overwrite "
                "to replace an earlier run there")
    if entries and MARKER not in entries:
        return (f"-run_dir_overwrite: '{path}' is not an ocnet run folder (no {MARKER}); "
                "refusing to delete its contents")
    return None


def _prepare(path, overwrite):
    import shutil
    entries = _entries(path)
    refusal = _refusal(path, overwrite, entries)
    if refusal:
        return False, refusal
    if entries:
        for name in entries:
            full = os.path.join(path, name)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full)
            else:
                os.remove(full)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, MARKER), "w") as f:
        f.write("written by ocnet; -run_dir_overwrite may replace this folder's contents\n")
    return True, ""


def differences(saved, meta, keys):
    """'-key saved (now current)' for each of ``keys`` whose value differs (a bool as an option
    takes it, 1 or 0: '-standardize 1 (now 0)', not Python's True/False)."""
    shown = lambda v: int(v) if isinstance(v, bool) else v  # noqa: E731
    out = []
    for k in keys:
        a, b = saved.get(k), meta.get(k)
        if a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)):
            out.append(f"{'rank count' if k == 'ranks' else '-' + k} {shown(a)} (now {shown(b)})")
    return out


def model_differences(saved, meta):
    """Differences in what shapes the model: problem, N, T, the plugin's options except the
    ones it names as data selection (``data_options``) and its regularisation weights
    (``regularization_options``, recorded as ``training_options``: a loaded model may train on
    with other weights)."""
    # a model is its plugin's name and parameter shapes, not the import string: a faster
    # implementation of the same model (another class or module) loads it (runs saved before
    # "model" was recorded compare the import string)
    if "model" in saved and saved["model"] != meta.get("model"):  # another problem: its options do not compare
        return [f"a model of problem '{saved['model']}' (-problem {saved.get('problem')}), this run's is "
                f"'{meta.get('model')}': give its -problem, or none (-load then takes the saved one)"]
    top = differences(saved, meta, ("shapes", "N", "T") if "model" in saved else ("problem", "N", "T"))
    top = [d.replace("-shapes ", "parameter sizes per layer / global ", 1) for d in top]
    so, mo = saved.get("options", {}), meta.get("options", {})
    # data selection and training settings (the regularisation weights) are not the model
    skip = set(meta.get("data_options", ())) | set(meta.get("training_options", ()))
    # an option the saved run did not have (added by a newer implementation) is not a difference
    keys = [k for k in meta.get("model_options", ()) if k not in skip and ("model" not in saved or k in so)]
    return top + differences(so, mo, keys)


def finished_at(path, its, comm):
    """Whether run folder ``path`` holds a run that ended normally (TAO's stop: summary.json with
    its reason code) at iteration ``its``; collective (rank 0 reads)."""
    s = _root_json(os.path.join(path, "summary.json"), comm)
    return isinstance(s.get("reason_code"), int) and s.get("iterations") == its


def earlier_starts(path, comm):
    """summary.json's ``starts`` of run folder ``path`` (the run's earlier starts: from which
    iteration, to which, on how many ranks, how each ended), before a -resume adds its own; a
    summary written before the field, one entry from its fields; a start killed before it wrote
    a summary is not among them.  Collective (rank 0 reads)."""
    s = _root_json(os.path.join(path, "summary.json"), comm)
    if isinstance(s.get("starts"), list):  # (one still RUNNING was killed before writing its end: it
        # reached the last row of history.csv, which it appended as it went; its RUNNING summary
        # holds the iteration it started from)
        reached = comm.bcast(_last_iteration(os.path.join(path, "history.csv")) if comm.Get_rank() == 0 else None,
                             root=0)
        return [dict(st, reason="KILLED", **({"iterations": reached} if reached is not None and k == len(s["starts"]) - 1
                                             else {}))
                if st.get("reason") == "RUNNING" else st for k, st in enumerate(s["starts"])]
    return [{"from_iteration": None, "iterations": s.get("iterations"), "ranks": s.get("ranks"),
             "reason": s.get("reason")}] if s.get("reason") else []


def _last_iteration(path, tail=65536):
    """The ``iteration`` of the last complete row of the history.csv at ``path`` (read from its
    last ``tail`` bytes), or None when there is none."""
    try:
        with open(path, "rb") as f:
            header = f.readline().decode().strip().split(",")
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - tail))
            lines = f.read().decode(errors="replace").split("\n")
    except OSError:
        return None
    for line in reversed(lines[1:] if len(lines) > 1 else lines):  # (the first may be cut; the last one, "")
        cells = line.split(",")
        if len(cells) == len(header) and "iteration" in header:
            try:
                return int(cells[header.index("iteration")])
            except ValueError:
                return None
    return None


def _root_json(path, comm):
    """The JSON object in ``path``, read on rank 0 and broadcast; {} when missing, unreadable or
    not an object."""
    out = {}
    if comm.Get_rank() == 0:
        try:
            with open(path) as f:
                out = json.load(f)
        except (OSError, ValueError):
            pass
    return comm.bcast(out if isinstance(out, dict) else {}, root=0)


def _check_not_behind(path, saved_it, comm):
    """OcnetError (every rank) when the folder's run finished normally (summary.json with TAO's
    reason) at a later iteration than its checkpoint (``saved_it``; None: none): a run with
    ``-checkpoint 0`` saves only when a signal stops it, and resuming from there would discard
    the iterations after it (or, with no checkpoint, the whole run)."""
    s = _root_json(os.path.join(path, "summary.json"), comm)
    end = s.get("iterations")
    if not isinstance(s.get("reason_code"), int) or not isinstance(end, int) or \
            (saved_it is not None and saved_it >= end):
        return
    lost = "the whole run: it holds no checkpoint" if saved_it is None else \
        f"iteration{f's {saved_it + 1}..' if end > saved_it + 1 else ' '}{end}: its checkpoint is of iteration {saved_it}"
    raise OcnetError(f"-resume: '{path}' holds a run that finished at iteration {end}, and resuming would discard "
                     f"{lost} (-checkpoint 0 saves only when a signal stops a run); nothing was changed: continue "
                     f"from its final parameters in a new folder, -load {path} -run_dir NEW")


def data_fingerprints(opts, values, comm):
    """{option: [size in bytes, sha256 hex]} of the files the run reads by its file options (those
    declared with type ``path`` whose value is a file: -train_file, -val_labels, ...), rank 0's
    reading on every rank.  Recorded with the run (meta ``data_files``) so that -resume can tell a
    data file replaced in place from the one the run started with."""
    import hashlib

    from ..base.options import path as path_type

    def digest(f):
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return [os.path.getsize(f), h.hexdigest()]

    names = sorted(o.name for o in opts.options if o.type is path_type and values.get(o.name)
                   and isinstance(values[o.name], str))
    out = None
    if comm.Get_rank() == 0:
        out = {k: digest(values[k]) for k in names if os.path.isfile(values[k])}
    return comm.bcast(out, root=0)


def _changed_data(saved, meta):
    """'-train_file 'F' (12345 bytes then, 6789 now)' for each recorded data file whose
    fingerprint differs from this start's (files of runs saved before it was recorded: none)."""
    was, now = saved.get("data_files") or {}, meta.get("data_files") or {}
    out = []
    for k in sorted(set(was) & set(now)):
        if was[k] != now[k]:
            sizes = (f"{was[k][0]} bytes then, {now[k][0]} now" if was[k][0] != now[k][0] else
                     f"the same size, {was[k][0]} bytes, other content")
            out.append(f"-{k} '{meta['options'].get(k)}' ({sizes})")
    return out


def check_resume(path, meta, comm, recorded):
    """-resume: the folder's run must be this run (same options; any rank count).  Returns True
    when it holds a checkpoint, False for an ocnet run folder stopped before its first save;
    raises OcnetError (every rank) otherwise.  ``recorded``: its options.txt (recorded_options)."""
    from ..optim import checkpoint
    collective_check(comm, os.path.isdir(path), f"-resume: no run folder '{path}'")
    saved = checkpoint.saved_meta(path, comm)
    if saved is None:
        found = comm.bcast(checkpoint.find(path) is not None if comm.Get_rank() == 0 else None, root=0)
        if found:
            return True  # unreadable: reported as a corrupt checkpoint by the loader
        damaged = comm.bcast([n for n in checkpoint.NAMES[:2] if os.path.isdir(os.path.join(path, n))]
                             if comm.Get_rank() == 0 else None, root=0)
        collective_check(comm, not damaged, f"-resume: the checkpoint '{os.path.join(path, damaged[0])}' is incomplete "
                         "(no COMPLETE marker: damaged); nothing was changed: remove it to start the run again "
                         "there, or start a new run" if damaged else "")
        ours = comm.bcast(os.path.isfile(os.path.join(path, MARKER)) if comm.Get_rank() == 0 else None, root=0)
        collective_check(comm, ours, f"-resume: '{path}' is not an ocnet run folder (no {MARKER} marker, no "
                                     "checkpoint): give the folder a run wrote, or start a run with -run_dir")
        _check_not_behind(path, None, comm)
        return False
    _check_not_behind(path, checkpoint.saved_meta(path, comm, "iteration"), comm)
    # -problem, -N and -T are options too: compared there, once.  An option the saved run did not
    # have (a newer ocnet declares it) is not a difference: its value applies from here, and a
    # note says so (a checkpoint from before an upgrade resumes instead of being lost)
    so = saved.get("options", {})
    diff = differences(saved, meta, ("tao_type",) if "tao_type" in saved else ())
    # (-mgrit_monitor only prints: the iterates are the same with it, tests/test_adaptive.py)
    # (an option this implementation does not record, e.g. -checkpoint, which controls saving only,
    # recorded by older versions, is not compared)
    diff += differences(so, meta["options"], sorted(k for k in so if k in meta["options"]
                                                    and not k.endswith("mgrit_monitor")))
    tao_notes, tao_diff = tao_changes(recorded, set(meta["options"]) | {"tao_type", "tao_python_type"})
    diff += tao_diff
    newer = sorted(set(meta["options"]) - set(so))
    other = other_implementation(saved.get("problem"), meta.get("problem"))
    # another class of the same model (its name and parameter sizes, as -load takes it: e.g. the
    # kernel version of a Python plugin) continues the run; another problem is the one difference
    same_model = other and saved.get("model") == meta.get("model") and saved.get("shapes") == meta.get("shapes")
    if same_model or (saved.get("problem") != meta.get("problem") and not other):  # (one class, two names)
        diff = [d for d in diff if not d.startswith("-problem ")]
    elif other:  # its other differences follow from that
        diff = [d for d in diff if d.startswith("-problem ")]
    changed = _changed_data(saved, meta)
    if changed and not diff:  # (tester 40: a training file overwritten in place resumed silently)
        raise OcnetError(f"-resume: the data changed since the run started: {', '.join(changed)}; a resumed run "
                         f"continues on its own data (restore the file), or train on the new data from the run's "
                         f"parameters in a new run: -load {path} -run_dir NEW")
    # a difference in an option neither given now nor recorded in options.txt: the problem's default
    # changed since the run started (a plugin edited in between; the advice below did not apply)
    db = PETSc.Options()
    for j, d in enumerate(diff):
        key = d.split(" ")[0][1:]
        if recorded is not None and key in so and key not in recorded and not db.hasName(key):
            diff[j] = (f"{d} (not given, and not in options.txt: its default changed since the run started, an "
                       f"edited plugin or another ocnet; give {d.split(' (now ')[0]})")
    if diff:
        raise OcnetError(f"-resume: '{path}' holds a run with other settings: {', '.join(diff)}; "
                         "resume with the same settings (-tao_max_it, TAO's stopping tests, monitors and views, and the "
                         "options that control saving and printing may change, docs/hpc/long-runs.md; " + (
                             f"options not given are the run's own, from {os.path.join(path, 'options.txt')})"
                             if os.path.isfile(os.path.join(path, "options.txt")) else
                             f"{os.path.join(path, 'options.txt')} is missing: options not given take their defaults)"))
    if tao_notes and comm.Get_rank() == 0:
        print(f"ocnet: note: -resume: {', '.join(tao_notes)}: TAO's stopping test{'s' * (len(tao_notes) > 1)} "
              "from here on", file=sys.stderr, flush=True)
    if same_model and comm.Get_rank() == 0:
        print(f"ocnet: note: -resume: the run was started with -problem {other[0]}, continued with {other[1]}: "
              f"the same model (problem name '{meta.get('model')}', the same parameter sizes); a plugin whose step "
              "differs needs another name", file=sys.stderr, flush=True)
    if newer and comm.Get_rank() == 0:
        given = ", ".join(f"-{k} {meta['options'][k]}" for k in newer)
        print(f"ocnet: note: -resume: {given} did not exist when the saved run started; applied from here on",
              file=sys.stderr, flush=True)
    return True


#: options options.txt leaves out: where the run went (replaying the file without -run_dir must not
#: overwrite the run it came from; -resume R takes the folder from its own argument)
NOT_RECORDED = ("run_dir", "run_dir_overwrite", "resume")


#: options given on a -resume that options.txt keeps for later starts (a requeued job's plain
#: -resume): where the run ends and what it writes.  Others given then (monitors, views, -quiet,
#: -log_phases, -log_view, a misspelt name) apply to that start only.
KEPT_ON_RESUME = ("checkpoint", "checkpoint_every", "checkpoint_seconds", "predictions", "run_dir_plots")


def write_options(path, comm, skip=(), extra=None, recorded=None):
    """options.txt: every option of the database but ``skip`` and NOT_RECORDED, plus ``extra``
    ({name: value}: options the run removed from the database, e.g. -tao_max_it 0), one a line, a
    flag without a value bare: an options file (-options_file) that gives the run again with
    ``-run_dir NEW`` (rank 0; atomic).  ``recorded`` (a resumed run: its options.txt as
    {name: value}): only those names, TAO's stopping tests (TAO_STOPPING) and KEPT_ON_RESUME."""
    if comm.Get_rank() == 0:
        opts = {k: v for k, v in PETSc.Options().getAll().items() if k not in skip and k not in NOT_RECORDED
                and (recorded is None or k in recorded or k in TAO_STOPPING or k in KEPT_ON_RESUME)}
        if recorded is not None:  # (a value given for that start only, e.g. -quiet 0, keeps the recorded one)
            opts.update({k: recorded[k] for k in opts if k in recorded and k not in TAO_STOPPING
                         and k not in KEPT_ON_RESUME})
        opts.update(extra or {})
        tmp = os.path.join(path, "options.txt.tmp")
        with open(tmp, "w") as f:
            for k, v in sorted(opts.items()):
                f.write(f"-{k}\n" if v is None or v == "" else f"-{k} {v}\n")
        os.replace(tmp, os.path.join(path, "options.txt"))


def _csv_value(v):
    return repr(v) if isinstance(v, float) else v


class HistoryWriter:
    """history.csv as the run goes (rank 0): :meth:`start` writes the header and the rows so far
    (atomically, e.g. a resumed run's rows), :meth:`append` one row, flushed to the disk.  The
    columns are HISTORY_COLUMNS then any further keys of the first rows (or of the first row
    appended), so the file written as the run goes has the columns of the final one."""

    def __init__(self, path, comm):
        self.path, self.rank = os.path.join(path, "history.csv"), comm.Get_rank()
        self.cols = None

    def start(self, rows, first=None):
        """``first``: the row about to be appended when there are none yet (its keys are columns)."""
        if self.rank != 0:
            return
        if not rows and first is None:  # a fresh run: the file starts with its first row
            self.cols = None
            return
        keys = [k for r in list(rows) + ([first] if first else []) for k in r]
        self.cols = list(dict.fromkeys(list(HISTORY_COLUMNS) + keys))
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.cols, restval="nan", extrasaction="ignore", lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: _csv_value(v) for k, v in r.items()})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def append(self, row):
        if self.rank != 0:
            return
        if self.cols is None:  # (the row's own columns: a problem's metrics, adaptive one-shot's)
            self.start([], first=row)
        import io
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self.cols, restval="nan", extrasaction="ignore", lineterminator="\n").writerow(
            {k: _csv_value(v) for k, v in row.items()})
        with open(self.path, "a", newline="") as f:
            f.write(buf.getvalue())  # one write of one line: a kill leaves whole rows
            f.flush()


def write_history(path, rows, comm):
    if comm.Get_rank() != 0:
        return
    cols = list(HISTORY_COLUMNS) + [k for r in rows for k in r if k not in HISTORY_COLUMNS]
    cols = list(dict.fromkeys(cols))
    tmp = os.path.join(path, "history.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="nan", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(v) for k, v in r.items()})
    os.replace(tmp, os.path.join(path, "history.csv"))


def plot_history(path, rows, comm):
    """training.png (rank 0).  matplotlib's warnings (a log axis with no positive value, e.g. the
    objective of a problem that reaches 0) make an empty panel, not the user's business."""
    if comm.Get_rank() != 0 or not rows:
        return
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _plot_history(path, rows)


def finite(value):
    """True for a finite number, also as history.csv text ('0.95'); False for nan, '' and None."""
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def headline_metric(rows):
    """The metric the progress line, the final line and training.png show: "accuracy" when the
    problem reports it, else its first other metric with a validation column (e.g. "rmse" of a
    regression problem: history columns train_rmse/val_rmse), else its first training metric (a
    problem without a "val" data set), else None.  ``rows``: history rows, as recorded or as read
    from history.csv (text)."""
    if any(finite(r.get(k)) for r in rows for k in ("train_accuracy", "val_accuracy")):
        return "accuracy"
    for r in rows[:1]:
        for prefix in ("val_", "train_"):
            for k in r:
                if k.startswith(prefix) and k[len(prefix):] not in ("accuracy", "state_residual"):
                    return k[len(prefix):]
    return None


def _plot_history(path, rows):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [r["iteration"] for r in rows]
    residuals = [k for k in HISTORY_COLUMNS if k.endswith("residual")
                 and np.isfinite([r.get(k, np.nan) for r in rows]).any()]  # MGRIT modes only
    fig, ax = plt.subplots(1, 3 + bool(residuals), figsize=(13 + 4 * bool(residuals), 3.8))
    ax[0].semilogy(it, [r["objective"] for r in rows])
    ax[0].set_title("objective")
    ax[1].semilogy(it, [r["gradient_norm"] for r in rows])
    ax[1].set_title("gradient norm")
    name = headline_metric(rows) or "accuracy"  # (a problem with no metric: an empty panel)
    for key in (f"train_{name}", f"val_{name}"):
        ax[2].plot(it, [r.get(key, np.nan) for r in rows], label=key)
    ax[2].set_title(name)
    ax[2].legend()
    for key in residuals:  # (0: an exact evaluation of adaptive one-shot, no MGRIT residual to draw)
        ax[3].semilogy(it, [v if v > 0 else np.nan for v in (r.get(key, np.nan) for r in rows)], label=key)
    if residuals:
        ax[3].set_title("MGRIT residual")
        ax[3].legend()
    for a in ax:
        a.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(os.path.join(path, "training.png.tmp"), dpi=100, format="png")
    plt.close(fig)
    os.replace(os.path.join(path, "training.png.tmp"), os.path.join(path, "training.png"))


def save_params(path, x, meta, comm):
    """Binary PETSc Vec (global order is rank-count free) + JSON of what it belongs to."""
    tmp = os.path.join(path, PARAMS + ".tmp")
    viewer = PETSc.Viewer().createBinary(tmp, mode="w", comm=x.getComm())
    x.view(viewer)
    viewer.destroy()
    if comm.Get_rank() == 0:
        # params.json first (it names the iteration): a kill between the renames leaves a
        # params.json one save ahead of params.petsc only for the same model, never a torn file
        write_json(os.path.join(path, META), meta)
        os.replace(tmp, os.path.join(path, PARAMS))
        for extra in (tmp + ".info",):
            if os.path.exists(extra):
                os.remove(extra)
    comm.Barrier()


#: the files write_json wrote in this process (a failure does not replace a summary this run wrote)
WRITTEN = set()


def write_json(path, obj, record=True):
    """``obj`` as JSON in ``path``, written under a temporary name and renamed.  ``record``: note
    that this start wrote it (summary.json: a failure then does not replace it)."""
    if record:
        WRITTEN.add(os.path.abspath(path))
    tmp = f"{path}.{os.getpid()}.tmp"  # (two ranks may note an early stop at once)
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:  # (a full disk: no half-written temporary left behind)
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _load_files(source):
    """(parameter file, its params.json) of a -load source: a run folder or a params.petsc file."""
    if os.path.isdir(source):
        return os.path.join(source, PARAMS), os.path.join(source, META)
    return source, os.path.join(os.path.dirname(source) or ".", META)


def saved_meta(source, comm):
    """The params.json saved with the parameters in ``source`` (a run folder or its params.petsc),
    read on rank 0; {} when missing or unreadable (load_params reports that)."""
    return _root_json(_load_files(source)[1], comm)


def load_model_options(db, saved):
    """-load without the model's options: set those the command line does not give (problem, N,
    T and the plugin's options except its data options) from ``saved``, the -load source's
    params.json (``saved_meta``), so the saved model is what is loaded.  Nothing with -resume, or
    when ``-problem`` names another problem (load_params reports the mismatch).  Returns
    ['-name value', ...] of the options set."""
    if db.hasName("resume"):
        return []
    so = saved.get("options")
    if not isinstance(so, dict):
        return []
    keys = ["problem", "N", "T"]
    if db.hasName("problem") and db.getString("problem") != so.get("problem"):
        # another implementation of the same model (its plugin's name: a fast KernelProblem of a
        # Python plugin) takes the saved options too; another model: load_params reports it
        from ..plugin.loader import load_problem_class

        if "model" not in saved or getattr(load_problem_class(db.getString("problem")), "name", None) != saved["model"]:
            return []
        keys = ["N", "T"]
    data = set(saved.get("data_options", ()))
    out = []
    for k in keys + [k for k in saved.get("model_options", ()) if k not in data]:
        v = so.get(k)
        if v is None or db.hasName(k):
            continue
        text = ("1" if v else "0") if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v)
        db.setValue(k, text)
        out.append(f"-{k} {text}")
    return out


#: options of a saved run's options.txt that -resume does not take over (where the run goes,
#: and what this start is asked to do)
NOT_RESUMED = NOT_RECORDED + ("load", "dry_run", "help", "options_file")  # (older folders record NOT_RECORDED)


def recorded_options(path, comm):
    """{name: value} of R/options.txt (the options the run was started with; '' for a flag), None
    when it cannot be read.  Collective (rank 0 reads)."""
    lines = None
    if comm.Get_rank() == 0:
        try:
            with open(os.path.join(path, "options.txt")) as f:
                lines = f.read().splitlines()
        except OSError:
            lines = None  # (no such folder or file: check_resume says what is wrong)
    lines = comm.bcast(lines, root=0)
    if lines is None:
        return None
    out = {}
    for line in lines:
        if line.startswith("-"):
            key, _, value = line[1:].partition(" ")
            if key:
                out[key] = value.strip()
    return out


def resume_options(db, recorded):
    """-resume R: set the options of R/options.txt (``recorded``, recorded_options' {name: value};
    None: no options.txt) that the command line does not give, so that ``-resume R`` alone
    continues the run as it was started (options given are compared with the saved run as before,
    and -tao_max_it may change).  Returns ['-name value', ...] of the options set."""
    out = []
    saving = ("checkpoint", "checkpoint_every", "checkpoint_seconds")  # (one given: the others recorded do not apply)
    given_saving = any(db.hasName(k) for k in saving)
    for key, value in (recorded or {}).items():
        if key in NOT_RESUMED or db.hasName(key) or (given_saving and key in saving):
            continue
        db.setValue(key, value)
        out.append(f"-{key} {value}".rstrip())
    return out


def keep_changed_defaults(path, opts, names, db, recorded, comm):
    """-resume R of a run started under another ocnet whose default of one of its own options
    (``names``: the framework's, not a plugin's) was another: the option takes the run's own
    value (from its checkpoint) where neither the command line nor options.txt gives it, so that
    a requeued job continues as it started after an upgrade (-oneshot_calibrate's default went
    from 0 to 10 on 2026-12-08; it refused such runs).  The declared default of ``opts`` changes
    (the database is left alone: the option still counts as not given).  Returns
    ['-name value (now DEFAULT)', ...] of the options kept (none without options.txt: then an
    option not given may have been given at the start, and check_resume names the difference)."""
    from ..optim import checkpoint
    if recorded is None:
        return []
    saved = checkpoint.saved_meta(path, comm)
    so = (saved or {}).get("options") or {}
    kept = []
    for o in opts.options:
        if o.name not in names or o.name not in so or o.name in NOT_RESUMED + ("problem",) or db.hasName(o.name) \
                or o.name in recorded:
            continue
        try:
            value = o.parse(option_value_text(so[o.name]))
        except Exception:  # (a recorded value this version cannot read: check_resume names the difference)
            continue
        if value != o.default:
            kept.append(f"-{o.name} {option_value_text(so[o.name])} (now {option_value_text(o.default)})")
            o.default = value
    return kept


def option_value_text(v):
    """A recorded option value as given on a command line (bools 0/1, lists comma-separated)."""
    if isinstance(v, (list, tuple)):
        return ",".join(map(option_value_text, v))
    return str(int(v)) if isinstance(v, bool) else str(v)


#: TAO options a resumed run may change: when it stops, not how it steps (-tao_max_it silently:
#: a larger one is how a finished run continues; the others with a note)
TAO_STOPPING = ("tao_max_it", "tao_gatol", "tao_grtol", "tao_gttol", "tao_fmin", "tao_max_funcs", "tao_steptol",
                "tao_catol", "tao_crtol")


def tao_changes(recorded, compared):
    """-resume: the -tao_* options of this start whose value differs from the run's options.txt
    (absent there: TAO's default).  Returns (notes, differences): stopping tests (TAO_STOPPING)
    apply from here with a note; options that only print (monitors, views,
    -tao_converged_reason) pass; any other (e.g. -tao_ls_type) changes the iterates: a difference.
    ``recorded``: the run's options.txt (recorded_options); ``compared``: options check_resume
    compares already (ocnet's own, -tao_type)."""
    if recorded is None:  # (a folder without options.txt: nothing to compare with)
        return [], []
    db = PETSc.Options()
    now = {k: v for k, v in db.getAll().items() if k.startswith("tao_") and k not in compared}
    notes, diff = [], []
    for k in sorted(set(now) | {k for k in recorded if k.startswith("tao_") and k not in compared}):
        if k == "tao_max_it" or "monitor" in k or "view" in k or k == "tao_converged_reason":
            continue
        if k not in recorded and hasattr(db, "used") and not db.used(k):  # no option of TAO's: a misspelling
            continue  # (reported as one at the first iteration)
        a, b = recorded.get(k), now.get(k)  # (texts, None where not given)
        try:
            same = a == b or (a is not None and b is not None and float(a) == float(b))
        except ValueError:
            same = False
        if same:
            continue
        old = "TAO's default" if a is None else a
        if k in TAO_STOPPING and b is not None:
            notes.append(f"-{k} {b} (the run had {old})")
        else:
            diff.append(f"-{k} {old} (now {'not given' if b is None else b})")
    return notes, diff


def resample_layers(a, G, p, n_old, n_new):
    """The natural design array ``a`` ([G global parameters, n_old layers of p]) with its layers
    resampled to n_new, piecewise constant in t on the same [0, T]: new layer n takes the saved
    layer whose interval holds the midpoint of its own, (n + 1/2) T / n_new (refining by an
    integer k repeats each layer k times; coarsening by k takes the middle one of k)."""
    th = np.asarray(a[G:]).reshape(n_old, p)
    idx = np.minimum(((np.arange(n_new) + 0.5) * n_old / n_new).astype(int), n_old - 1)
    return np.concatenate([np.asarray(a[:G]), th[idx].ravel()])


def _load_resampled(vec_file, x, G, p, n_old, n_new, comm):
    """Rank 0 reads the saved design of n_old layers; every rank puts its part of the design
    resampled to n_new layers into ``x`` (collective)."""
    a, msg = None, None
    if comm.Get_rank() == 0:
        v = PETSc.Vec().create(comm=PETSc.COMM_SELF)
        viewer = PETSc.Viewer().createBinary(vec_file, mode="r", comm=PETSc.COMM_SELF)
        try:
            v.load(viewer)
            a = v.getArray().copy()
            if a.size != G + n_old * p:
                msg = f"-load: '{vec_file}' holds {a.size} values, not the {G + n_old * p} of -N {n_old}"
        except PETSc.Error:
            msg = f"-load: '{vec_file}' is not a parameter file"
        finally:
            viewer.destroy()
            v.destroy()
    collective_check(comm, comm.bcast(msg) is None, comm.bcast(msg))
    new = resample_layers(comm.bcast(a if comm.Get_rank() == 0 else None), G, p, n_old, n_new)
    lo, hi = x.getOwnershipRange()
    with x as arr:
        arr[:] = new[lo:hi]


def other_implementation(saved_spec, spec):
    """(saved, this run's) -problem when a -load source was trained by another plugin class than
    this run's (a faster implementation of the same model, or a subclass that kept its parent's
    name: both load, by name and sizes), else None.  A registered name and the import string of
    the same class are one class."""
    if not saved_spec or saved_spec == spec:
        return None
    from ..plugin.loader import load_problem_class

    def where(s):
        try:
            c = load_problem_class(s)
            return f"{c.__module__}:{c.__qualname__}"
        except Exception:  # noqa: B902 - the saved plugin may no longer import: compare the strings
            return s
    return None if where(saved_spec) == where(spec) else (saved_spec, spec)


def load_params(source, x, meta, comm, resample=False):
    """Load parameters from a run folder (or a params.petsc file) into ``x``; checks they fit.
    ``resample``: a saved model of another N (the same model otherwise) is resampled to this N
    (``resample_layers``)."""
    vec_file, meta_file = _load_files(source)
    collective_check(comm, os.path.exists(source), f"-load: no folder or file '{source}'")
    collective_check(comm, os.path.isfile(vec_file), f"-load: no parameter file '{vec_file}'"
                     + (" (a run folder with saved parameters: a finished run, or one that saved a checkpoint)"
                        if os.path.isdir(source) else ""))
    saved = None
    if os.path.isfile(meta_file):
        try:
            with open(meta_file) as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            collective_check(comm, False, f"-load: unreadable '{meta_file}': {e}")
    n_old = saved.get("N") if saved is not None else None
    resampling = resample and isinstance(n_old, int) and n_old != meta["N"]
    if resample and not resampling and comm.Get_rank() == 0:
        print(f"ocnet: note: -load_resample: {'the saved model has this -N' if saved is not None else 'no params.json'}"
              ": nothing to resample", file=sys.stderr, flush=True)
    if saved is not None:
        G, p = meta["shapes"][1], meta["shapes"][0]
        # (resampling: the saved model compared as if it had this run's N; its size is its own N's)
        as_saved = dict(meta, N=n_old, global_size=G + n_old * p,
                        options=dict(meta["options"], N=n_old)) if resampling else meta
        diff = model_differences(saved, as_saved) if "options" in saved else differences(saved, as_saved,
                                                                                         ("problem", "N"))
        if not diff and saved.get("global_size") != as_saved.get("global_size"):
            diff = [f"parameter count {saved.get('global_size')} (now {as_saved.get('global_size')})"]
        if diff:
            hint = ("; -load_resample resamples its layers to this -N"
                    if not resample and all(d.startswith("-N ") for d in diff) else "")
            data = [d.replace("(now None)", "(now not given)")
                    for d in differences(saved.get("options", {}), meta["options"], meta.get("data_options", ()))]
            # (sizes that follow the data, e.g. images; not when a model option that explains them differs)
            if data and any(d.startswith("parameter ") for d in diff) and \
                    all(d.startswith(("parameter ", "-N ")) for d in diff):
                hint += (f"; the saved run had other data options ({', '.join(data)}), which -load does not take "
                         "over and the model's sizes may follow (e.g. its image size): give the saved run's values")
            raise OcnetError(f"-load: '{source}' holds parameters of another model: {', '.join(diff)}{hint}")
        other = other_implementation(saved.get("problem"), meta["problem"])
        if other and comm.Get_rank() == 0:
            print(f"ocnet: note: -load: the saved model was trained with -problem {other[0]}, this run's is "
                  f"{other[1]}: loaded as the same model (problem name '{meta.get('model')}', the same parameter "
                  "sizes); a plugin whose step differs needs another name", file=sys.stderr, flush=True)
        split = differences(saved.get("options", {}), meta["options"], meta.get("split_options", ()))
        # no data option given, and the defaults differ from the saved run's: the model is scored on
        # other data than the run's (a tester's -load R -tao_max_it 0 did not reproduce the run's
        # objective); one given: the data are chosen
        chosen = any(PETSc.Options().hasName(k) for k in meta.get("data_options", ()))
        data = [] if chosen else differences(saved.get("options", {}), meta["options"],
                                             [k for k in meta.get("data_options", ())
                                              if k not in meta.get("split_options", ())])
        if data and comm.Get_rank() == 0:
            print(f"ocnet: note: -load: data options not given take their defaults, not the saved run's: "
                  f"{', '.join(data)}; -options_file {os.path.join(source, 'options.txt')} before "
                  "-load gives the run's own", file=sys.stderr, flush=True)
        if split and comm.Get_rank() == 0:
            print(f"ocnet: warning: -load: {', '.join(split)} splits the samples into training and validation "
                  "sets otherwise than the saved run did: the validation set may hold samples the loaded "
                  "model was trained on", file=sys.stderr, flush=True)
    if resampling:
        _load_resampled(vec_file, x, G, p, n_old, meta["N"], comm)
        _check_finite(x, vec_file)
        return
    viewer = PETSc.Viewer().createBinary(vec_file, mode="r", comm=x.getComm())
    try:
        x.load(viewer)
    except PETSc.Error:
        size = os.path.getsize(vec_file) if os.path.isfile(vec_file) else None  # (PETSc's binary Vec: 8 + 8 n bytes)
        held = f"holds {(size - 8) // 8} values" if size and size >= 8 and (size - 8) % 8 == 0 else "is no PETSc Vec"
        has = saved or {}  # (the saved model's sizes: this run's meta describes x)
        of = (f" (its params.json: G + N p = {has['shapes'][1]} + {has.get('N', '?')} x {has['shapes'][0]})"
              if "shapes" in has else "")
        raise OcnetError(f"-load: '{vec_file}' {held}{of}, this run's design {x.getSize()}: "
                         "build the model with the saved options (-load_resample for another N)") from None
    finally:
        viewer.destroy()
    _check_finite(x, vec_file)


def _check_finite(x, vec_file):
    bad = x.getComm().tompi4py().allreduce(int(np.count_nonzero(~np.isfinite(x.getArray(readonly=True)))))
    if bad:
        raise OcnetError(f"-load: '{vec_file}' holds {bad} non-finite parameter value(s)")


def write_all(run_dir, comm, rows, x, meta, summary, plot=True, more=None):
    """history.csv, params.petsc/json (``x``: the design of the last row; None: keep the saved
    ones), training.png, ``more()`` (the run's other outputs), then summary.json (collective): a
    summary of the run's end says that every output was written (-resume writes them otherwise).
    Every file is written under a temporary name and renamed."""
    write_history(run_dir, rows, comm)
    if x is not None:
        save_params(run_dir, x, dict(meta, iteration=rows[-1]["iteration"] if rows else 0), comm)
    if plot:
        plot_history(run_dir, rows, comm)
    if more is not None:
        more()
    write_summary(run_dir, summary, comm)


def write_summary(run_dir, summary, comm):
    if comm.Get_rank() == 0:
        write_json(os.path.join(run_dir, "summary.json"), summary)


def provenance():
    """Where and with what a run ran: {"finished": UTC time (ISO 8601), "host", "versions" (ocnet,
    PETSc, petsc4py, mpi4py and its MPI library, numpy, numba), "slurm_job_id" (inside a Slurm job)}."""
    import time
    from importlib.metadata import PackageNotFoundError, version

    def ver(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    versions = {k: ver(k) for k in ("ocnet", "petsc4py", "mpi4py", "numpy", "numba")}
    try:
        versions["petsc"] = ".".join(map(str, PETSc.Sys.getVersion()))
        from mpi4py import MPI
        versions["mpi"] = MPI.Get_library_version().strip("\x00 \n").splitlines()[0]
    except Exception:  # noqa: B902 - a record only
        pass
    out = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": platform.node(),
           "versions": versions}
    if os.environ.get("SLURM_JOB_ID"):
        out["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
    return out


def machine():
    """CPU model and core count, for run records (figures depend on the CPU and its BLAS)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"
