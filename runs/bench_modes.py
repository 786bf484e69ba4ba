"""Where one optimisation iteration's time goes: serial / one-shot / exact on Peaks, side by side.

    .venv/bin/python runs/bench_modes.py [--Ns 256,1024,4096] [--ranks 1,2] [--its 12,6,3]
        [--repeat 1] [--oneshot "-oneshot_adjoint_its 1"] [--calibration FILE] [--out runs/out/bench_modes]

Modes: serial, oneshot (fixed 2 + 1 MGRIT iterations, -oneshot_adapt 0: the configuration the
performance model describes), oneshot_adaptive (the default of -mode oneshot, less its exact start:
-oneshot_exact_start 0, so that its rows time one-shot iterations; the exact start's are layer-serial
and cost what the serial row does), exact.
Every (N, ranks, mode) is one ``ocnet -options_file runs/peaks.opts -init_layer 1e-3 -log_phases`` run (ranks bound
to cores) of ``--its`` TAO lmvm iterations (one value, or one per N).  Time per iteration is the
history's wall time from iteration 0 to the last over the iterations (optimiser, evaluations and
line-search trials, validation), best of --repeat; its split into phases comes from the PETSc log
events in the run's phases.json (ocnet/perfmodel/phases.py), as shares of that time.  Prints
R = t_oneshot / t_serial on one rank and the validation accuracy each run reached, and, beside the
measurement, the performance model's prediction (ocnet/perfmodel/model.py; calibrated by
``python -m ocnet.perfmodel calibrate -options_file runs/peaks.opts -init_layer 1e-3`` first when
--calibration does not exist) with its error.  Any problem and option set: runs/validate_perfmodel.py.
"""
import argparse
import csv
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODES = {
    "serial": ["-mode", "serial"],
    "oneshot": ["-mode", "oneshot", "-oneshot_adapt", "0"],  # fixed counts (2 + 1): the model's configuration
    # the default of -mode oneshot (docs/user/adaptive-oneshot.md) without its layer-serial exact start
    "oneshot_adaptive": ["-mode", "oneshot", "-oneshot_exact_start", "0"],
    "exact": ["-mode", "exact", "-mgrit_rtol", "1e-9"],
}
# initial layer weights at the paper's scale (1e-3): with the default std 1 the smoothness term
# gamma_ddt/2 sum |(theta[n]-theta[n-1])/h|^2 of i.i.d. random layers grows like N^3 (J = 8.6e4 at
# N = 1024, 5.5e6 at N = 4096, where lmvm's first line search then failed in the MGRIT modes)
INIT = ["-init_layer", "1e-3"]


def run_case(out, mode, N, p, its, extra, tag="", reuse=False, base=None, env=None, failed=None):
    """One ``-log_phases`` run (ranks bound to cores) in OUT/MODE{tag}_N{N}_p{p}, summarised
    (ocnet.perfmodel.phases.summarize); ``base``: the options that define the problem (default:
    runs/peaks.opts with -init_layer 1e-3); ``env``: extra environment (e.g. PYTHONPATH).  A run
    that fails ends the script, or, with a list ``failed``, appends its exit status and last line
    to it and returns None."""
    from ocnet.perfmodel import phases
    from ocnet.run.launch import mpiexec

    base = ["-options_file", "runs/peaks.opts"] + INIT if base is None else list(base)
    d = os.path.join(out, f"{mode}{tag}_N{N}_p{p}")
    if reuse and os.path.exists(os.path.join(d, "phases.json")):
        return phases.summarize(d)
    if os.path.isdir(d):
        import shutil
        shutil.rmtree(d)
    cmd = mpiexec(p, bind=True) + [sys.executable, "-m", "ocnet"] + base + [
        "-N", str(N), "-tao_max_it", str(its), "-quiet", "-log_phases", "-checkpoint", "0", "-run_dir", d] + extra
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **(env or {}))
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        if failed is None:
            sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
        lines = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()
        failed.append(f"exit status {r.returncode}: {next((ln for ln in lines if 'error:' in ln), lines[-1])}")
        return None
    return phases.summarize(d)


def model_config(mode, N, p, res, extra, cal=None):
    """The perfmodel Config of a measured run: the options it ran with, and its measured counts
    (evaluations per iteration; MGRIT iterations per solve in exact mode); ``cal``: the
    calibration (its plugin's batched-form extensions shape the counts)."""
    from ocnet.perfmodel import model as pm
    def opt(name, default):
        return extra[extra.index(name) + 1] if name in extra else default

    mg = res["mgrit_its"]
    per = lambda k: mg[k] if mg.get(k, float("nan")) == mg.get(k, float("nan")) else 2.0
    if mode == "oneshot_adaptive":  # modelled as fixed counts at its measured means (fractional: mixed)
        return pm.mode_config("oneshot", N, p, state_its=max(1.0, per("state")),
                              adjoint_its=max(1.0, per("adjoint")), fine_relax=opt("-mgrit_fine_relax", ""),
                              relax=opt("-mgrit_relax", None), cf=int(opt("-mgrit_cfactor", 0)) or None,
                              evals=res["evals_per_it"])
    return pm.mode_config(mode, N, p, state_its=int(opt("-oneshot_state_its", 2)),
                          adjoint_its=int(opt("-oneshot_adjoint_its", 1)), fine_relax=opt("-mgrit_fine_relax", ""),
                          relax=opt("-mgrit_relax", None), cf=int(opt("-mgrit_cfactor", 0)) or None,
                          evals=res["evals_per_it"],
                          exact_its=(per("state"), per("adjoint"), per("val")), cal=cal)


def to_accuracy(folder, target=0.9):
    """{N: (serial iterations, one-shot iterations) to ``target`` validation accuracy} from the
    1-rank histories of runs/compare_modes.py in ``folder`` (None: not reached)."""
    out = {}
    if not os.path.isdir(folder):
        return out
    for name in sorted(os.listdir(folder)):
        if name.startswith("serial_N") and name.endswith("_p1"):
            N = name[len("serial_N"):-3]
            ks = []
            for mode in ("serial", "oneshot"):
                f = os.path.join(folder, f"{mode}_N{N}_p1", "history.csv")
                if not os.path.exists(f):
                    break
                with open(f) as fh:
                    h = list(csv.DictReader(fh))
                ks.append(next((int(r["iteration"]) for r in h if float(r["val_accuracy"]) >= target), None))
            if len(ks) == 2:
                out[int(N)] = tuple(ks)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--Ns", default="256,1024,4096")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--its", default="12,6,3", help="iterations per run: one value or one per N")
    ap.add_argument("--modes", default="serial,oneshot,exact")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--reuse", action="store_true", help="read the runs already in --out instead of running them")
    ap.add_argument("--oneshot", default="", help="extra options of the one-shot runs (a lever to try)")
    ap.add_argument("--calibration", default="runs/out/perf_calibration.json")
    ap.add_argument("--out", default="runs/out/bench_modes")
    ap.add_argument("--accuracy_runs", default="runs/out/compare",
                    help="runs/compare_modes.py output: iterations to 90 %% validation accuracy per mode")
    a = ap.parse_args()
    out = os.path.join(ROOT, a.out)
    os.makedirs(out, exist_ok=True)
    Ns = [int(n) for n in a.Ns.split(",")]
    its = [int(i) for i in a.its.split(",")]
    its = dict(zip(Ns, its if len(its) == len(Ns) else its[:1] * len(Ns)))
    ranks = [int(p) for p in a.ranks.split(",")]
    modes = a.modes.split(",")
    extra = {m: list(MODES[m]) + (shlex.split(a.oneshot) if m.startswith("oneshot") else []) for m in modes}

    from ocnet.perfmodel import model as pm
    from ocnet.perfmodel.phases import COLUMNS as PHASES
    cal_path = os.path.join(ROOT, a.calibration)
    if not os.path.exists(cal_path):
        print(f"calibrating the performance model -> {a.calibration}", flush=True)
        # env: this process's environment as it started; without env= the child inherits what the
        # MPI library set in this process when ocnet.perfmodel.phases imported petsc4py (an Open
        # MPI singleton's variables), and the calibration's own mpiexec then failed silently
        subprocess.run([sys.executable, "-m", "ocnet.perfmodel", "calibrate", "--out", cal_path, "-options_file",
                        "runs/peaks.opts"] + INIT, cwd=ROOT, check=True, env=dict(os.environ))
    cal = pm.load(cal_path)

    print(f"Peaks (width 8, 5000 train / 200 val), TAO lmvm; one-shot options: {' '.join(extra.get('oneshot', []))}")
    print("time per optimisation iteration (ms; wall, and CPU of the busiest rank) and its phases (ms; relax..comm are parts of state+adjoint)")
    head = ["N", "ranks", "mode", "its", "evals/it", "t/it", "cpu/it"] + [lab for lab, _ in PHASES] + ["optimiser", "val acc",
                                                                                           "model", "model err", "err vs cpu"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---:|" * 2 + "---|" + "---:|" * (len(head) - 3))
    res = {}
    rows = []
    for N in Ns:
        for p in ranks:
            # repetitions interleave the modes (serial, oneshot, exact, serial, ...), so that a
            # slow spell of a shared machine does not fall on one mode's runs only
            for rep in range(a.repeat):
                for mode in modes:
                    tag = f"_r{rep}" if a.repeat > 1 else ""  # each repetition keeps its folder (--reuse)
                    r = run_case(out, mode, N, p, its[N], extra[mode], tag=tag, reuse=a.reuse)
                    best = res.get((N, p, mode))
                    res[(N, p, mode)] = r if best is None or r["t_it"] < best["t_it"] else best
            for mode in modes:
                best = res[(N, p, mode)]
                pred = pm.predict(cal, model_config(mode, N, p, best, extra[mode], cal))["total"]
                err = (pred - best["t_it"]) / best["t_it"]
                err_cpu = (pred - best["cpu_it"]) / best["cpu_it"]
                ph = best["phases"]
                cells = [N, p, mode, best["iterations"], f"{best['evals_per_it']:.2f}", f"{1e3 * best['t_it']:.1f}",
                         f"{1e3 * best['cpu_it']:.1f}"] + \
                    [f"{1e3 * ph[lab]:.1f}" for lab, _ in PHASES] + [f"{1e3 * ph['optimiser']:.1f}",
                                                                     f"{100 * best['val']:.1f} %", f"{1e3 * pred:.1f}",
                                                                     f"{100 * err:+.0f} %", f"{100 * err_cpu:+.0f} %"]
                rows.append(cells)
                print("| " + " | ".join(map(str, cells)) + " |", flush=True)
    print()
    for N in Ns:
        if (N, 1, "serial") in res and (N, 1, "oneshot") in res:
            R = res[(N, 1, "oneshot")]["t_it"] / res[(N, 1, "serial")]["t_it"]
            Rc = res[(N, 1, "oneshot")]["cpu_it"] / res[(N, 1, "serial")]["cpu_it"]
            line = f"N = {N}: R = t_oneshot / t_serial on 1 rank = {R:.2f} (CPU time: {Rc:.2f})"
            if (N, 1, "exact") in res:
                line += f"   (exact / serial = {res[(N, 1, 'exact')]['t_it'] / res[(N, 1, 'serial')]['t_it']:.2f})"
            for p in ranks[1:]:
                if (N, p, "oneshot") in res:
                    line += f"   one-shot {p} ranks / serial 1 rank = {res[(N, p, 'oneshot')]['t_it'] / res[(N, 1, 'serial')]['t_it']:.2f}"
            if (N, 1, "oneshot_adaptive") in res:
                line += (f"   adaptive / fixed one-shot = "
                         f"{res[(N, 1, 'oneshot_adaptive')]['t_it'] / res[(N, 1, 'oneshot')]['t_it']:.2f} (target <= 1.25)")
            print(line)
    errs = [abs(float(r[-2].rstrip(' %'))) for r in rows]
    errc = [abs(float(r[-1].rstrip(' %'))) for r in rows]
    print(f"model: max |error| {max(errs):.0f} % against wall time, {max(errc):.0f} % against CPU time, over "
          f"{len(errs)} runs (target <= 20 %)")
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("| " + " | ".join(head) + " |\n" + "|" + "---:|" * 2 + "---|" + "---:|" * (len(head) - 3) + "\n")
        for cells in rows:
            f.write("| " + " | ".join(map(str, cells)) + " |\n")
    print("\nPREDICTED by the model (not measured): crossover and speed-up of one-shot over layer-serial on 1 rank")
    for N in Ns:
        if (N, 1, "serial") not in res or (N, 1, "oneshot") not in res:
            continue
        make = lambda mode, n, P: model_config(mode, n, P, res[(N, 1, mode)], extra[mode], cal)
        cp = pm.crossover(cal, N, make=make)
        print(f"  N = {N}: one-shot beats serial per iteration from P = {cp} ranks")
        for n_acc, (k_s, k_o) in to_accuracy(os.path.join(ROOT, a.accuracy_runs)).items():
            if k_s is None or k_o is None:
                print(f"  N = {N}: time to 90 % validation accuracy: not reached by both modes in the "
                      f"N = {n_acc} runs of {a.accuracy_runs}")
                continue
            cpa = pm.crossover(cal, N, make=make, ratio=k_o / k_s)
            print(f"  N = {N}: one-shot beats serial in time to 90 % validation accuracy from P = {cpa} ranks "
                  f"(iterations to 90 %: serial {k_s}, one-shot {k_o}, from the N = {n_acc} runs)")
    print("  speed-up at P = 256, N = 4096: "
          f"{pm.predict(cal, pm.mode_config('serial', 4096, 1, cal=cal))['total'] / pm.predict(cal, pm.mode_config('oneshot', 4096, 256, cal=cal))['total']:.1f}x"
          "  (python -m ocnet.perfmodel.model predict: the full table)")
    print(f"wrote {out}/table.md")


if __name__ == "__main__":
    main()
