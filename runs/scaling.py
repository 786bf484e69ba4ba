"""Strong and weak scaling of any ocnet options file over a list of rank counts.

    .venv/bin/python runs/scaling.py [--options runs/peaks.opts] [--kind strong|weak] [--ranks 1,2]
        [--N 1024] [--modes oneshot] [--its 5] [--repeat 3] [--launcher auto|mpiexec|srun]
        [--extra "-mgrit_fine_relax F"] [--pythonpath DIR] [--out runs/out/scaling] [--resume] [--dry-run]

strong: N layers on every rank count; weak: N layers per rank (N * ranks in all).  Each (ranks,
mode) runs --repeat times as ``LAUNCHER -n P python -m ocnet -options_file F -N ... -log_phases``;
the layer-serial baseline runs once per N on 1 rank (also --repeat times).  ``--launcher auto``
uses ``srun`` inside a Slurm allocation (SLURM_JOB_ID set and srun found) and mpiexec (bound to
cores) otherwise.  ``--dry-run`` prints the commands only.

Paths (``--options``, ``--out``, ``--pythonpath``, ``-options_file`` in ``--extra``) are relative to
the folder the script is called from; the runs themselves start in the ocnet checkout, so paths
inside the options file (``-train_file data.npy``) are read from there: write them absolute.  ``--pythonpath
DIR`` (a folder, or several joined by ':') holds an out-of-tree plugin (``-problem module:Class``): it
is put in front of PYTHONPATH for every rank.  Before anything runs (and with ``--dry-run``) the
options file must be readable and ``ocnet -options_file FILE EXTRA -N N -dry_run`` must pass for
every mode and N of the study (the problem importable, option values, data, a plugin's or MGRIT's
limits on N; an N out of memory on one rank is a warning: more ranks may fit), and no rank count
may exceed its N; else one line on stderr and
exit status 2.  The dry run's ``ocnet: warning:`` lines (a misspelt option) are shown before the
study, the runs' (e.g. an option never used) passed on to stderr, each distinct one once; --extra
goes to every run, the serial baseline's too, so a note that an option has no effect in a mode is
shown only for an option that has none in every mode of the study.  Every run names its -mode
(an options file's own -mode does not turn the serial baseline into one-shot); -mode and
-oneshot_adapt in --extra are refused (they would relabel every run), and so are -N, -tao_max_it
and -run_dir (--N, --its, --out set them).  A run that stops before --its is warned of (its time
per iteration is over the iterations it made); one that stops at iteration 0 counts as failed.  Runs use
``-checkpoint 0`` (a save would enter the times and fill the disk).  A run that fails is reported
and left out; the study goes on, and the script exits 1 at the end naming the failed points.

SIGTERM, SIGINT or SIGUSR1 (Ctrl-C, a job's wall-time limit) stop the study: the run in progress
gets SIGTERM (SIGKILL 10 s later), the points measured so far stay in OUT/scaling.csv (rewritten
after every point) and the plots, and the script exits with 128 + the signal's number.
``--resume`` continues a study in OUT: the layer-serial baselines and points recorded in
OUT/study.json (written beside scaling.csv after each) are kept, not run again, and the others
run -- after a stop, a failed point, or with more --ranks or --modes than before.  The options
file (path and contents, a comment too), --kind, --N, --its, --repeat, --extra, --pythonpath and
--launcher must be the study's (else one line, exit 2: its times would not be comparable; a dry
run does not compare --launcher); points of ranks or modes not asked for now stay in the table.
Without --resume a study starts afresh and replaces OUT's table (a note says when OUT held one).

Writes OUT/scaling.csv (ranks, N, mode, time per iteration: min and median over the repeats,
the fastest repeat's iterations and TAO reason (a run that stopped before --its is warned of),
per-phase times of the fastest repeat, MGRIT iterations per state/adjoint solve, speed-up over
layer-serial on 1 rank at the same N, parallel efficiency = speed-up / ranks; weak scaling also
weak_efficiency = t(1 rank, N) / t(P ranks, N P) of the same mode; others_running: processes
runnable besides the study just before the fastest repeat started, -1 where /proc/loadavg is
missing; the machine and date) and three
plots, titled with machine and date: OUT/time.png (time per iteration against ranks, log-log, with
the ideal line t(1 rank)/P and the serial time), OUT/speedup.png and OUT/efficiency.png.
"""
import argparse
import csv
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
# oneshot: the fixed counts of the documented scaling results (-oneshot_adapt 0); oneshot_adaptive: the
# default of -mode oneshot (docs/user/adaptive-oneshot.md) without its exact start (layer-serial
# iterations, which the serial mode's row times)
MODE_ARGS = {"serial": ["-mode", "serial"], "oneshot": ["-mode", "oneshot", "-oneshot_adapt", "0"],
             "oneshot_adaptive": ["-mode", "oneshot", "-oneshot_adapt", "1", "-oneshot_exact_start", "0"],
             "exact": ["-mode", "exact"]}
#: options the harness sets for each run (in --extra they would override it: refused), and by what
SET_BY = {"-mode": "--modes (serial, oneshot: fixed counts, oneshot_adaptive, exact)",
          "-oneshot_adapt": "--modes (serial, oneshot: fixed counts, oneshot_adaptive, exact)",
          "-N": "--N", "-tao_max_it": "--its", "-run_dir": "--out"}


def _machine():
    from ocnet.run.rundir import machine
    return machine()


MACHINE = _machine()  # (every table and figure carries its machine and date)
DATE = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


# ocnet's note that an option does nothing in a mode: --extra and the options file go to every run,
# the serial baseline's too, so such notes are collected and shown only for an option that has no
# effect in any mode of the study
MODE_NOTE = re.compile(r"^ocnet: warning: (-\S+) has no effect in -mode (\w+)")


def fail(text):
    """One line on stderr, exit status 2 (bad input)."""
    print(f"scaling.py: error: {text}", file=sys.stderr)
    sys.exit(2)


def absolute_options(args):
    """ocnet options with every ``-options_file PATH`` made absolute (relative to the caller's folder)."""
    out = list(args)
    for i, a in enumerate(out[:-1]):
        if a == "-options_file":
            out[i + 1] = os.path.abspath(out[i + 1])
    return out


def check_inputs(options, extra, env, modes=("serial",), notes=None, Ns=()):
    """The options file readable, and ``ocnet -dry_run`` of the options passing with ``env``'s
    PYTHONPATH for each of the study's ``modes`` at each of its ``Ns`` (in a fresh interpreter, as
    the ranks will load the problem: option values, data, problem, limits on N; out of memory on
    one rank is a warning); one line and exit 2 otherwise.  Their warnings are
    printed once each, except mode notes (``MODE_NOTE``), which go into ``notes``."""
    if not (os.path.isfile(options) and os.access(options, os.R_OK)):
        fail(f"--options: cannot read '{options}'")
    bad = [f for a, f in zip(extra, extra[1:]) if a == "-options_file" and not os.access(f, os.R_OK)]
    if bad:
        fail(f"--extra: -options_file: cannot read '{bad[0]}'")
    shown = set()
    for mode, N in [(m, N) for m in dict.fromkeys(modes) for N in (Ns or [None])]:
        r = subprocess.run([sys.executable, "-m", "ocnet", "-options_file", options] + extra + MODE_ARGS[mode]
                           + ([] if N is None else ["-N", str(N)]) + ["-dry_run", "-quiet"],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            why = last_line(r, "failed").removeprefix("ocnet: error: ")
            if why.startswith("out of memory") and N is not None:  # (one rank holds all N layers here)
                key = ("memory", N)
                if key not in shown:
                    shown.add(key)
                    print(f"scaling.py: warning: the check of N {N} on one rank ran out of memory; points with more "
                          "ranks may fit (one that does not fails when it runs)", file=sys.stderr, flush=True)
                continue
            if why.startswith("cannot load problem") or why.startswith("unknown problem"):  # not found: where to look
                # (ocnet's advice, to run from the plugin's folder, does not apply: the runs start in the checkout)
                why = why.split("; ocnet imports it as a Python module")[0] + (
                    f" (PYTHONPATH {env.get('PYTHONPATH', '')!r}; the runs start in the ocnet checkout: give the "
                    "plugin's folder with --pythonpath)")
            fail(why)
        # its warnings (a misspelt option, an option of another problem) before the study, not after it
        pass_on(r.stderr, notes, shown)
    return shown


def last_line(r, default):
    """The last line a finished ocnet process printed (stderr, else stdout), in the harness's words."""
    return harness_words((r.stderr.strip() or r.stdout.strip() or default).splitlines()[-1])


def pass_on(text, notes, shown):
    """ocnet's warnings in ``text`` to stderr in the harness's words, each distinct one once
    (``shown``: the keys of those shown so far, updated); mode notes (MODE_NOTE) go into ``notes``
    instead (None: shown as warnings)."""
    for line in text.splitlines():
        if MODE_NOTE.match(line) and notes is not None:
            note(notes, line)
        elif line.startswith("ocnet: warning:") and warning_key(line) not in shown:
            shown.add(warning_key(line))
            print(harness_words(line), file=sys.stderr, flush=True)


UNUSED = re.compile(r"^ocnet: warning: option (-\S+)(?: \(option_defaults of problem '[^']*'\))? was given but")
#: ocnet's advice in the words of this harness, for the options it sets itself (SET_BY)
HARNESS_WORDS = ((re.compile(r"-oneshot_adapt 1\b"), "--modes oneshot_adaptive"),
                 (re.compile(r"-oneshot_adapt 0\b"), "--modes oneshot"),
                 (re.compile(r"-mode (serial|exact)\b"), r"--modes \1"),
                 (re.compile(r"(?<![\w-])-N\b"), "--N"), (re.compile(r"-tao_max_it\b"), "--its"))


def harness_words(line):
    """An ocnet message as this harness's user acts on it: advice to give an option the harness
    sets for each run (-oneshot_adapt 1, -mode serial, -N; refused in --extra) names the harness's
    own argument instead (--modes oneshot_adaptive, --modes serial, --N)."""
    for pattern, words in HARNESS_WORDS:
        line = pattern.sub(words, line)
    return line


def warning_key(line):
    """What a warning is about, for showing each once: an unused option's two wordings (at the
    first iteration and at the end of a run, or the dry run's) are one warning."""
    m = UNUSED.match(line)
    return ("unused", m.group(1)) if m else line


def note(notes, line):
    """Record a mode note: option -> the ocnet modes it has no effect in."""
    m = MODE_NOTE.match(line)
    notes.setdefault(m.group(1), set()).add(m.group(2))


def report_mode_notes(notes, modes):
    """One warning per option that had no effect in every ocnet mode the study ran (``modes``:
    study modes, the serial baseline included)."""
    ran = {m.split("_")[0] for m in modes}  # (oneshot_adaptive is -mode oneshot)
    for opt, where in notes.items():
        if ran <= where:
            print(f"scaling.py: warning: {opt} has no effect in any mode of this study ({', '.join(sorted(ran))})",
                  file=sys.stderr, flush=True)


def shown(cmd):
    """The command as printed: without the ``env -u NAME ...`` that ocnet.run.launch.mpiexec puts
    first for the MPI variables of this process (they are not in a user's shell)."""
    k = 0
    if cmd and cmd[0] == "env":
        k = 1
        while k + 1 < len(cmd) and cmd[k] == "-u":
            k += 2
    return cmd[k:]


def launcher(kind, p):
    if kind == "auto":
        kind = "srun" if os.environ.get("SLURM_JOB_ID") and shutil.which("srun") else "mpiexec"
    if kind == "srun":
        return ["srun", "--ntasks", str(p), "--cpu-bind=cores", "--kill-on-bad-exit=1"]
    from ocnet.run.launch import mpiexec
    return mpiexec(p, bind=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--options", default=os.path.join(ROOT, "runs", "peaks.opts"),
                    help="ocnet options file, relative to the folder the script is called from "
                         "(default: the checkout's runs/peaks.opts)")
    ap.add_argument("--kind", default="strong", choices=("strong", "weak"))
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--N", type=int, default=1024, help="layers (strong) or layers per rank (weak)")
    ap.add_argument("--modes", default="oneshot", help="comma list of serial, oneshot, oneshot_adaptive, exact")
    ap.add_argument("--its", type=int, default=5, help="optimisation iterations per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--launcher", default="auto", choices=("auto", "mpiexec", "srun"))
    ap.add_argument("--extra", default="", help="more ocnet options for every run")
    ap.add_argument("--pythonpath", default="", help="folder(s) of an out-of-tree plugin (':'-separated), "
                                                    "put in front of PYTHONPATH for every rank")
    ap.add_argument("--out", default="runs/out/scaling")
    ap.add_argument("--resume", action="store_true", help="continue the study in --out: its measured points "
                                                          "are kept, the others run")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    from ocnet.perfmodel import phases
    out = os.path.abspath(a.out)
    try:
        ranks = [int(p) for p in a.ranks.split(",")]
    except ValueError:
        fail(f"--ranks: expected comma-separated integers, got '{a.ranks}'")
    if min(ranks) < 1 or a.N < 1 or a.its < 1 or a.repeat < 1:
        fail(f"--ranks, --N, --its and --repeat must be at least 1 (got --ranks {a.ranks} --N {a.N} --its {a.its} "
             f"--repeat {a.repeat})")
    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODE_ARGS]
    if bad:
        fail(f"unknown mode(s) {', '.join(bad)}")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    paths = [os.path.abspath(d) for d in a.pythonpath.split(os.pathsep) if d]
    missing = [d for d in paths if not os.path.isdir(d)]
    if missing:
        fail(f"--pythonpath: no folder '{missing[0]}'")
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    options = os.path.abspath(a.options)
    extra = absolute_options(shlex.split(a.extra))
    clash = [o for o in extra if o in SET_BY]
    if clash:
        fail(f"--extra: {clash[0]} is set by {SET_BY[clash[0]]} for each run; leave it out")
    Ns = {p: (a.N if a.kind == "strong" else a.N * p) for p in ranks}
    few = [p for p in ranks if p > Ns[p]]
    if few:  # (ocnet refuses more ranks than layers: every rank holds at least one)
        fail(f"--ranks {few[0]} with N {Ns[few[0]]}: more ranks than layers (each rank needs at least one layer)")
    notes = {}  # (MODE_NOTE)
    # (the baseline runs serial; every N of the study: a plugin's or MGRIT's limits depend on it)
    shown_warnings = check_inputs(options, extra, env, ["serial"] + modes, notes, sorted(set(Ns.values())))
    if paths:  # the ranks inherit it (srun exports the environment; mpiexec's local ranks inherit it)
        print(f"export PYTHONPATH={shlex.quote(env['PYTHONPATH'])}", flush=True)

    warned = set(shown_warnings)
    study = {"options": options, "options_sha256": _sha256(options), "kind": a.kind, "N": a.N, "its": a.its,
             "repeat": a.repeat, "extra": extra, "pythonpath": paths, "launcher": a.launcher}
    saved = load_study(out, study, a.resume, a.dry_run)
    from ocnet.perfmodel.calibration import other_runnable
    if not a.dry_run:  # other work enters every timing (validate_perfmodel.py records the load too)
        others = other_runnable()
        if others:
            print(f"scaling.py: warning: {others} other process{'es' if others > 1 else ''} running on "
                  f"{os.cpu_count()} CPUs: runs with more ranks than idle cores share them, and the times and "
                  "speed-ups below include that (run on a quiet machine)", file=sys.stderr, flush=True)

    def run(mode, N, p, rep):
        d = os.path.join(out, f"{mode}_N{N}_p{p}_r{rep}")
        cmd = launcher(a.launcher, p) + [sys.executable, "-m", "ocnet", "-options_file", options, "-N", str(N),
                                         "-tao_max_it", str(a.its), "-quiet", "-log_phases", "-checkpoint", "0", "-run_dir", d] \
            + MODE_ARGS[mode] + extra
        print(" ".join(shlex.quote(c) for c in shown(cmd)), flush=True)
        if a.dry_run:
            return None
        if os.path.isdir(d):
            shutil.rmtree(d)
        others = other_runnable()  # (other work just before this run: the row's others_running)
        r = run_group(cmd, env)
        if r.returncode != 0:  # recorded; the study goes on with its other points
            last = last_line(r, "no output")
            failed.append(f"{mode} N {N} ranks {p}: exit status {r.returncode}: {last}")
            print(f"scaling.py: run failed: {failed[-1]}", file=sys.stderr, flush=True)
            return None
        pass_on(r.stdout + r.stderr, notes, warned)  # ocnet's warnings (e.g. an unused option), once each
        with open(os.path.join(d, "summary.json")) as f:
            summary = json.load(f)
        return dict(phases.summarize(d), iterations=int(summary["iterations"]), reason=summary["reason"],
                    others=others)

    def best_of(mode, N, p):
        res = []
        for k in range(a.repeat):
            res.append(run(mode, N, p, k))
            if res[-1] is None and not a.dry_run:  # (a failed point: its repetitions would fail alike)
                return None
        if a.dry_run:
            return None
        ts = [r["t_it"] for r in res]
        best = min(res, key=lambda r: r["t_it"])
        if best["iterations"] == 0:  # (no iteration: nothing timed)
            failed.append(f"{mode} N {N} ranks {p}: stopped at iteration 0 ({best['reason']}): nothing timed")
            print(f"scaling.py: run failed: {failed[-1]}", file=sys.stderr, flush=True)
            return None
        if best["iterations"] < a.its:  # (its time per iteration is over fewer, later-starting iterations)
            print(f"scaling.py: warning: {mode} N {N} ranks {p} stopped after {best['iterations']} of {a.its} "
                  f"iterations ({best['reason']}); its time per iteration is over those", file=sys.stderr, flush=True)
        return dict(best, t_min=min(ts), t_median=statistics.median(ts))

    failed, stopped = [], None
    plan = [(mode, Ns[p], p) for mode in modes for p in ranks]
    # (every point measured before stays, those of ranks or modes not asked for now too: a resumed
    # study extends its table, never shrinks it)
    serial = {int(N): r for N, r in saved["baseline"].items()}
    rows = list(saved["rows"])
    if a.resume:
        planned = sum((r["mode"], r["N"], r["ranks"]) in plan for r in rows)
        print(f"scaling.py: resuming {out}: {len(serial)} baseline(s) and {len(rows)} point(s) kept"
              + (f" ({len(rows) - planned} of them outside --ranks/--modes, kept in the table)"
                 if planned < len(rows) else "") + f", {len(plan) - planned} point(s) to run", flush=True)

    def order(r):
        key = (r["mode"], r["N"], r["ranks"])
        return (0, plan.index(key)) if key in plan else (1, r["mode"], r["ranks"])

    def save():
        """OUT/study.json and OUT/scaling.csv: what --resume continues from (after every point)."""
        rows.sort(key=order)
        write_study(out, dict(study, baseline={str(N): r for N, r in serial.items() if r is not None},
                              rows=rows, machine=MACHINE))
        if rows:
            write_csv(out, rows)

    if not a.dry_run:  # a signal (Ctrl-C, a wall-time limit) ends the point running and keeps what ran
        for sig in STOP_SIGNALS:
            signal.signal(sig, _stop)
    try:
        for N in sorted(set(Ns.values())):
            if N not in serial:
                serial[N] = best_of("serial", N, 1)
                if serial[N] is not None and not a.dry_run:
                    save()
        for mode, N, p in plan:
            if any((r["mode"], r["N"], r["ranks"]) == (mode, N, p) for r in rows):
                continue  # (measured before: --resume)
            r = serial[N] if (mode == "serial" and p == 1) else best_of(mode, N, p)
            if a.dry_run or r is None or serial[N] is None:
                continue
            add_row(rows, mode, N, p, r, serial[N], ranks, a.kind)
            save()  # (after every point: a killed study keeps its table and can be resumed)
    except Stopped as e:
        stopped = e.signum
    for sig in STOP_SIGNALS:  # (from here only the table and plots are written)
        signal.signal(sig, signal.SIG_IGN if stopped is not None else signal.SIG_DFL)
    report_mode_notes(notes, ["serial"] + modes)
    if a.dry_run:
        return
    if stopped is not None:
        name = signal.Signals(stopped).name
        if rows:
            plot(rows, out, a.kind, serial)
        print(f"scaling.py: stopped by {name}{' (a run in progress was ended)' if ENDED else ''}; "
              + (f"the {len(rows)} point(s) measured are in {out}/scaling.csv and the plots" if rows else
                 "no point had been measured")
              + ("; the same command with --resume runs the rest" if rows or serial else ""),
              file=sys.stderr, flush=True)
        sys.exit(128 + stopped)
    if not rows:
        sys.exit("scaling.py: no point of the study ran:\n  " + "\n  ".join(failed))
    plot(rows, out, a.kind, serial)
    print(f"wrote {out}/scaling.csv, time.png, speedup.png, efficiency.png ({MACHINE}, {DATE})")
    busy = sum(row["others_running"] > 0 for row in rows)
    if busy:
        print(f"scaling.py: warning: other processes were running before the fastest repeat of {busy} of the "
              f"{len(rows)} points (column others_running): their times include that work", file=sys.stderr, flush=True)
    if failed:
        sys.exit(f"scaling.py: {len(failed)} point(s) failed, left out of the table and plots (--resume runs "
                 "them again):\n  " + "\n  ".join(failed))


def add_row(rows, mode, N, p, r, base, ranks, kind):
    """Append the row of one measured point ``r`` (best_of's dict) to ``rows`` and print it;
    ``base``: the layer-serial 1-rank point at the same N."""
    sp = base["t_min"] / r["t_min"]
    # weak scaling: also the mode's own efficiency, t(1 rank, N_1) / t(P ranks, N_1 P)
    one = next((x for x in rows if x["mode"] == mode and x["ranks"] == ranks[0]), None)
    weak = (1.0 if p == ranks[0] == 1 else one["time_per_it_min"] / r["t_min"]
            if one is not None and ranks[0] == 1 else float("nan")) if kind == "weak" else None
    row = {"ranks": p, "N": N, "mode": mode, "time_per_it_min": r["t_min"], "time_per_it_median": r["t_median"],
           "iterations": r["iterations"], "reason": r["reason"]}
    row.update({f"t_{k}": v for k, v in r["phases"].items()})
    row.update({"state_mgrit_its": r["mgrit_its"].get("state", float("nan")),
                "adjoint_mgrit_its": r["mgrit_its"].get("adjoint", float("nan")),
                "serial_1rank_time_per_it": base["t_min"], "speedup": sp, "efficiency": sp / p,
                f"val_{r['metric'] or 'accuracy'}": r["val"]})
    if weak is not None:
        row["weak_efficiency"] = weak
    row.update(others_running=-1 if r["others"] is None else r["others"], machine=MACHINE, date=DATE)
    rows.append(row)
    print(f"  {mode:8s} ranks {p:4d}  N {N:6d}  {1e3 * r['t_min']:9.1f} ms/it (median {1e3 * r['t_median']:.1f})"
          f"  speed-up {sp:6.2f}  efficiency {sp / p:5.2f}"
          + (f"  weak efficiency {weak:5.2f}" if weak is not None else ""), flush=True)


def _sha256(path):
    import hashlib
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


#: what a resumed study must share with the one in OUT, and the argument that sets it
SAME = {"options": "--options", "options_sha256": "--options (its contents)", "kind": "--kind", "N": "--N",
        "its": "--its", "repeat": "--repeat", "extra": "--extra", "pythonpath": "--pythonpath",
        "launcher": "--launcher"}


def load_study(out, study, resume, dry_run=False):
    """The baselines and rows to keep: OUT/study.json's with ``resume`` (one line and exit 2 when
    there is none or it was another study: ``SAME``; with ``dry_run`` the launcher is not compared:
    the Slurm templates' dry run outside Slurm shows srun lines for a study run with auto), else
    none (a note when OUT held a study)."""
    path = os.path.join(out, "study.json")
    empty = {"baseline": {}, "rows": []}
    if not os.path.exists(path):
        if resume:
            fail(f"--resume: no study in {out} (no study.json: it is written after the first point)")
        return empty
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        if resume:
            fail(f"--resume: cannot read {path}: {e}")
        saved = empty
    if not resume:
        if saved.get("rows") or saved.get("baseline"):
            print(f"scaling.py: note: {out} held a study ({len(saved.get('rows', []))} point(s)); starting afresh "
                  "(--resume continues one)", file=sys.stderr, flush=True)
        return empty
    differ = [f"{SAME[k]} {saved.get(k)!r} then, {study[k]!r} now" for k in SAME
              if saved.get(k) != study[k] and not (dry_run and k == "launcher")]
    if differ:
        fail(f"--resume: {out} holds another study: " + "; ".join(differ)
             + " (its times would not compare; give another --out)")
    if saved.get("machine") != MACHINE:
        print(f"scaling.py: warning: --resume: the study's points were measured on {saved.get('machine')}, this "
              f"is {MACHINE}: the table mixes machines (column machine)", file=sys.stderr, flush=True)
    return saved


def write_study(out, state):
    """OUT/study.json (rewritten whole, as scaling.csv)."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "study.json")
    with open(path + ".tmp", "w") as f:
        json.dump(state, f, indent=1)
    os.replace(path + ".tmp", path)


def write_csv(out, rows):
    """OUT/scaling.csv with ``rows`` (rewritten whole: a reader never sees half a table)."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "scaling.csv")
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    os.replace(path + ".tmp", path)


#: signals that stop a study, keeping what ran: Ctrl-C, a wall-time limit's TERM, Slurm's --signal
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


#: the run that a stop ended while it ran (run_group), for the closing line
ENDED = []


class Stopped(Exception):
    """A signal asked the study to stop (``signum``)."""
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    raise Stopped(signum)


def run_group(cmd, env, grace=10.0):
    """Run ``cmd`` in its own process group and return its CompletedProcess (text output); when a
    signal stops the study meanwhile (Stopped), the group gets SIGTERM, after ``grace`` s SIGKILL,
    so no launcher or rank is left running (it went on as an orphan), and Stopped goes on."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate()
    except Stopped:
        for sig in STOP_SIGNALS:  # (a second Ctrl-C must not cut the clean-up short)
            signal.signal(sig, signal.SIG_IGN)
        ENDED.append(" ".join(cmd))
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def plot(rows, out, kind, serial):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(r["mode"] for r in rows))
    by = {m: sorted((r for r in rows if r["mode"] == m), key=lambda r: r["ranks"]) for m in modes}
    title = (f"{kind} scaling" + (f", N = {rows[0]['N']}" if kind == "strong" else
                                  f", N/rank = {rows[0]['N'] // rows[0]['ranks']}") + f"\n{MACHINE}, {DATE}")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m, rs in by.items():
        P = [r["ranks"] for r in rs]
        ax.loglog(P, [r["time_per_it_min"] for r in rs], "o-", label=m)
        ideal = [rs[0]["time_per_it_min"] * (P[0] / p if kind == "strong" else 1.0) for p in P]
        ax.loglog(P, ideal, ":", color=ax.lines[-1].get_color(), label=f"{m}, ideal")
    P = sorted({r["ranks"] for r in rows})
    ax.loglog(P, [next(r for r in rows if r["ranks"] == p)["serial_1rank_time_per_it"] for p in P], "k--",
              label="layer-serial, 1 rank")
    ax.set_xlabel("MPI ranks")
    ax.set_ylabel("time per iteration (s)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "time.png"), dpi=90)
    plt.close(fig)
    for key, name, ylab in (("speedup", "speedup.png", "speed-up over layer-serial, 1 rank"),
                            ("efficiency", "efficiency.png", "parallel efficiency (speed-up / ranks)")):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for m, rs in by.items():
            ax.plot([r["ranks"] for r in rs], [r[key] for r in rs], "o-", label=m)
        if key == "speedup":
            ax.plot(P, P, "k:", label="ideal")
        else:
            ax.axhline(1.0, color="k", ls=":", label="ideal")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("MPI ranks")
        ax.set_ylabel(ylab)
        ax.set_title(title, fontsize=8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main()
