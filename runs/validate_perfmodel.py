"""The performance model against measured time per iteration, for several problems: one table.

    .venv/bin/python runs/validate_perfmodel.py [--case NAME="OCNET OPTIONS" ...] [--N 256] [--ranks 1,2]
        [--modes serial,exact,oneshot] [--its 6] [--repeat 3] [--quick] [--reuse] [--out runs/out/perfmodel]

For every case (default: ``tanh`` = Peaks with -activation tanh, ``double`` = Peaks with the two-layer
block -block double, ``heat`` = the heat equation) the model is calibrated for that problem (``python -m
ocnet.perfmodel calibrate`` with the case's options: its own batched forms at its own state and
parameter sizes, written to OUT/NAME/calibration.json), then every (ranks, mode) runs ``--its``
TAO iterations with ``-log_phases`` (runs/bench_modes.py's runner, ranks bound to cores; best of
``--repeat``, repetitions interleaved over the modes), and the table shows measured time per
iteration (wall, and CPU of the busiest rank: on a shared machine the waits for a core are not in
it), the prediction for that run's options and measured counts (evaluations per iteration, MGRIT
iterations per exact-mode solve) and the error against both; the load average before the runs says
whether the machine was quiet enough for the wall times to mean anything (the model predicts
processes that each have a core).  A case whose options the problem
does not read (e.g. -block before that option exists) is skipped with a line saying so.

Options files in a case are relative to the folder the script is called from; ``--pythonpath``
puts an out-of-tree plugin's folder on every process's path.  Writes OUT/table.md (with the CPU
model and date) and prints it.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _shown_path(x):
    """A case's argument as the table shows it: a path inside the checkout relative to it (the
    runs start there), another path absolute (relative to the checkout it named nothing: tester 46)."""
    if not os.path.isabs(x):
        return x
    rel = os.path.relpath(x, ROOT)
    return x if rel.startswith("..") else rel
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CASES = {
    "tanh": "-options_file runs/peaks.opts -activation tanh -init_layer 1e-3",
    "double": "-options_file runs/peaks.opts -block double -init_layer 1e-3",
    "heat": "-problem heat",
}
# oneshot: the fixed counts (2 + 1 MGRIT iterations per evaluation, -oneshot_adapt 0) the model
# describes; the adaptive default of -mode oneshot varies them (runs/bench_modes.py oneshot_adaptive)
MODES = {"serial": ["-mode", "serial"], "oneshot": ["-mode", "oneshot", "-oneshot_adapt", "0"],
         "exact": ["-mode", "exact", "-mgrit_rtol", "1e-9"]}


def fail(text):
    print(f"validate_perfmodel.py: error: {text}", file=sys.stderr)
    sys.exit(2)


def case_options(text, caller):
    """The case's ocnet options as a list, ``-options_file`` paths made absolute (relative to the
    caller's folder; the checkout's runs/ files also resolve from the checkout root)."""
    args = shlex.split(text)
    for i, a in enumerate(args[:-1]):
        if a == "-options_file":
            p = args[i + 1]
            for base in (caller, ROOT):
                if os.path.isfile(os.path.join(base, p)):
                    args[i + 1] = os.path.abspath(os.path.join(base, p))
                    break
            else:
                fail(f"case options: -options_file: cannot read '{p}'")
    return args


def calibrate(name, args, out, env, quick, reuse):
    """(the case's calibration (dict), None) or, when the problem does not read all of the case's
    options or the calibration fails, (None, the reason, printed)."""
    path = os.path.join(out, name, "calibration.json")
    if reuse and os.path.exists(path):
        with open(path) as f:
            return json.load(f), None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cmd = [sys.executable, "-m", "ocnet.perfmodel", "calibrate", "--out", path] + (["--quick"] if quick else []) + args
    print(f"[{name}] {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    unused = [ln for ln in r.stderr.splitlines() if "never used" in ln]
    if r.returncode != 0 or unused:
        why = (unused or r.stderr.strip().splitlines() or ["failed"])[-1]
        print(f"[{name}] skipped: {why}", flush=True)
        if os.path.exists(path):
            os.remove(path)
        return None, why
    print("\n".join(f"[{name}] {ln}" for ln in r.stdout.strip().splitlines()), flush=True)
    with open(path) as f:
        return json.load(f), None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--case", action="append", default=[], metavar='NAME="OPTIONS"',
                    help="a problem as ocnet options (repeatable; default: " + ", ".join(CASES) + "); "
                         "NAME alone: one of the defaults")
    ap.add_argument("--N", type=int, default=256, help="layers of every run")
    ap.add_argument("--ranks", default="1,2", help="rank counts, comma-separated")
    ap.add_argument("--modes", default="serial,exact,oneshot", help="modes, comma-separated")
    ap.add_argument("--its", type=int, default=6, help="TAO iterations per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per (case, ranks, mode): the fastest counts")
    ap.add_argument("--quick", action="store_true", help="a rough calibration (fewer repetitions)")
    ap.add_argument("--reuse", action="store_true", help="reuse calibrations and runs already in --out")
    ap.add_argument("--pythonpath", default="", help="folder(s) of an out-of-tree plugin (':'-separated)")
    ap.add_argument("--out", default="runs/out/perfmodel",
                    help="output folder (relative to the folder the script is called from)")
    a = ap.parse_args()
    caller = os.getcwd()
    out = os.path.abspath(a.out)
    modes = [m for m in a.modes.split(",") if m]
    if [m for m in modes if m not in MODES]:
        fail(f"--modes: expected some of {', '.join(MODES)}, got '{a.modes}'")
    try:
        ranks = [int(p) for p in a.ranks.split(",")]
    except ValueError:
        fail(f"--ranks: expected integers, got '{a.ranks}'")
    cases = {}
    for c in a.case or list(CASES):
        name, eq, text = c.partition("=")
        if not eq:
            if name not in CASES:
                fail(f"--case {name}: not a default case ({', '.join(CASES)}); give NAME=\"OPTIONS\"")
            text = CASES[name]
        cases[name] = case_options(text, caller)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    paths = [os.path.abspath(d) for d in a.pythonpath.split(os.pathsep) if d]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])

    import bench_modes
    from ocnet.perfmodel import model as pm

    head = ["case", "ranks", "mode", "its", "evals/it", "MGRIT its s/a", "t/it (ms)", "cpu/it (ms)", "model (ms)",
            "err vs t", "err vs cpu"]
    rows, errs, skipped, loads = [], [], {}, []  # loads: 1-minute load average before each run
    short = []  # runs that stopped before --its iterations
    failures = []  # runs that failed or timed nothing (the table goes on without them)
    for name, args in cases.items():
        cal, why = calibrate(name, args, out, env, a.quick, a.reuse)
        if cal is None:
            skipped[name] = why
            continue
        res = {}
        for p in ranks:
            for rep in range(a.repeat):
                for mode in modes:
                    tag = f"_r{rep}" if a.repeat > 1 else ""
                    if not (a.reuse and os.path.exists(os.path.join(out, name, f"{mode}{tag}_N{a.N}_p{p}",
                                                                       "phases.json"))):
                        loads.append(os.getloadavg()[0])  # a run that runs now (not one reused)
                    if res.get((p, mode), True) is None:  # (failed: its repetitions would fail alike)
                        continue
                    why = []
                    r = bench_modes.run_case(os.path.join(out, name), mode, a.N, p, a.its, MODES[mode], tag=tag,
                                             reuse=a.reuse, base=args, env={"PYTHONPATH": env["PYTHONPATH"]}
                                             if paths else None, failed=why)
                    if r is not None and r["iterations"] == 0:  # (stopped at its starting point)
                        with open(os.path.join(r["dir"], "summary.json")) as f:
                            why.append(f"stopped at iteration 0 ({json.load(f).get('reason', '?')}): nothing timed")
                        r = None
                    if r is None:
                        failures.append(f"{name} {mode} {p} ranks: {why[0]}")
                        print(f"validate_perfmodel.py: run failed: {failures[-1]}", file=sys.stderr, flush=True)
                        res[(p, mode)] = None
                        continue
                    best = res.get((p, mode))
                    res[(p, mode)] = r if best is None or r["t_it"] < best["t_it"] else best
            for mode in modes:
                r = res[(p, mode)]
                if r is None:
                    rows.append([name, p, mode, "failed"] + ["-"] * (len(head) - 4))
                    print("| " + " | ".join(map(str, rows[-1])) + " |", flush=True)
                    continue
                pred = pm.predict(cal, bench_modes.model_config(mode, a.N, p, r, MODES[mode], cal))["total"]
                e, ec = (pred - r["t_it"]) / r["t_it"], (pred - r["cpu_it"]) / r["cpu_it"]
                errs.append((abs(e), abs(ec)))
                mg = r["mgrit_its"]
                its = "-" if mode == "serial" else f"{mg.get('state', float('nan')):.1f}/{mg.get('adjoint', float('nan')):.1f}"
                n_its = r["iterations"]
                if n_its < a.its:  # stopped early (e.g. fixed one-shot's line search failed): say why
                    with open(os.path.join(r["dir"], "summary.json")) as f:
                        n_its = f"{n_its} ({json.load(f).get('reason', '?')})"
                    short.append(f"{name} {mode} {p}")
                row = [name, p, mode, n_its, f"{r['evals_per_it']:.2f}", its, f"{1e3 * r['t_it']:.1f}",
                       f"{1e3 * r['cpu_it']:.1f}", f"{1e3 * pred:.1f}", f"{100 * e:+.0f} %", f"{100 * ec:+.0f} %"]
                rows.append(row)
                print("| " + " | ".join(map(str, row)) + " |", flush=True)
    if not errs:
        fail("no case ran" + (": " + "; ".join(failures) if failures else ""))
    from ocnet.perfmodel.calibration import cpu_model
    lines = [f"Performance model against measurement: N = {a.N}, {a.its} TAO lmvm iterations per run, best of "
             f"{a.repeat}; {cpu_model() or 'CPU unknown'}, {os.cpu_count()} CPUs; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"command (from {os.getcwd()}): `{shlex.join([os.path.relpath(sys.executable, os.getcwd())] + sys.argv)}`",
             "",
             "cases: " + "; ".join(f"{n} = `{' '.join(_shown_path(x) for x in v)}`"
                                  + (f" (skipped: {skipped[n]})" if n in skipped else "")
                                  for n, v in cases.items()), "",
             "| " + " | ".join(head) + " |", "|---|---:|---|" + "---:|" * (len(head) - 3)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    busy = max(loads) if loads else 0.0
    # this script's own runs load the machine by up to max(ranks): more than the CPUs means other work
    lines += ["", (f"load average (1 min) before the runs: {min(loads):.1f} to {busy:.1f} on {os.cpu_count()} CPUs"
                   if loads else "all runs reused (--reuse): no load average recorded")
              + (" -- a busy machine: processes waited for cores, so wall times exceed what the model predicts "
                 "(a process with its own core); rerun on a quiet machine" if busy > (os.cpu_count() or 1) else "")]
    if short:
        lines += ["", f"stopped before {a.its} iterations (their times per iteration cover fewer): " + "; ".join(short)]
    if failures:
        lines += ["", "failed (not in the errors below): " + "; ".join(failures)]
    within = sum(e <= 0.2 for e, _ in errs)
    within_c = sum(ec <= 0.2 for _, ec in errs)
    lines += ["", f"max |error| {100 * max(e for e, _ in errs):.0f} % against wall time ({within} of {len(errs)} "
                  f"within 20 %), {100 * max(ec for _, ec in errs):.0f} % against CPU time ({within_c} of {len(errs)})"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print()
    print("\n".join(lines))
    print(f"wrote {os.path.join(out, 'table.md')}")


if __name__ == "__main__":
    main()
