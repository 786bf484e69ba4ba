"""Time per iteration of two ocnet option sets, side by side in one run, interleaved.

    .venv/bin/python runs/bench_compare.py --a "-problem peaks -block double" \\
        --b "-problem handwritten_double:HandwrittenDouble" [--common "-N 32 -width 8"] [--np 1]
        [--its 10] [--reps 5] [--pythonpath runs] [--out runs/out/bench_compare]

Each repetition runs A and B once (alternating which goes first, so a machine shared with other
work slows both alike), each ``ocnet ... -tao_max_it ITS -quiet -run_dir DIR`` under mpiexec with
--np ranks bound to cores.  Two figures per run: the wall time per iteration (the history's wall
time from iteration 0 to the last over the iterations: optimiser, evaluations, line-search
trials, validation) and the solve's CPU time per iteration (``-log_phases``: phases.json's
cpu_time, the maximum over ranks, over the iterations; time a process waited for a core on a
shared machine does not count, which makes it the steadier figure there).  Prints every repetition, the best of N and the
median of each, their ratios B/A, and the final objective of each (the same model and initial
design give the same iterates: a check that both computed the same).
``--pythonpath``: folders put on PYTHONPATH (a plugin outside the package, e.g. runs/); relative
paths are taken from the caller's folder.
"""
import argparse
import csv
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def per_iteration(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    its = int(rows[-1]["iteration"]) - int(rows[0]["iteration"])
    return (float(rows[-1]["wall_time"]) - float(rows[0]["wall_time"])) / its, float(rows[-1]["objective"]), its


def run(opts, common, nprocs, its, out, pythonpath):
    """(wall s per iteration, final J, iterations, CPU s per iteration) of one run; the CPU time is
    the solve's (``-log_phases``: phases.json's cpu_time, the maximum over ranks)."""
    import json

    from ocnet.run.launch import mpiexec

    if os.path.isdir(out):
        shutil.rmtree(out)
    cmd = mpiexec(nprocs, bind=True) + [sys.executable, "-m", "ocnet", *shlex.split(common), *shlex.split(opts),
                                        "-tao_max_it", str(its), "-quiet", "-log_phases", "-checkpoint", "0", "-run_dir", out]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([ROOT, *pythonpath, os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    with open(os.path.join(out, "phases.json")) as f:
        ph = json.load(f)
    t, J, n = per_iteration(out)
    return t, J, n, ph["cpu_time"] / max(ph["iterations"], 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="option set A")
    ap.add_argument("--b", required=True, help="option set B")
    ap.add_argument("--common", default="", help="options for both")
    ap.add_argument("--np", type=int, default=1, help="MPI ranks")
    ap.add_argument("--its", type=int, default=10, help="TAO iterations per run")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (interleaved)")
    ap.add_argument("--pythonpath", default=os.path.join(ROOT, "runs"), help="folders for PYTHONPATH (os.pathsep)")
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "out", "bench_compare"))
    a = ap.parse_args()
    if a.its < 1 or a.reps < 1 or a.np < 1:
        sys.exit("bench_compare.py: error: --its, --reps and --np must be >= 1")
    paths = [os.path.abspath(p) for p in a.pythonpath.split(os.pathsep) if p]
    out = os.path.abspath(a.out)
    sets = {"A": a.a, "B": a.b}
    times = {"A": [], "B": []}
    final = {}
    print(f"# bench_compare {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {a.np} rank(s), {a.its} its, "
          f"{a.reps} reps, common: {a.common}")
    for k, v in sets.items():
        print(f"# {k}: {v}")
    cpus = {"A": [], "B": []}
    for rep in range(a.reps):
        order = ("A", "B") if rep % 2 == 0 else ("B", "A")
        for k in order:
            t, J, its, c = run(sets[k], a.common, a.np, a.its, os.path.join(out, f"{k}_{rep}"), paths)
            times[k].append(t)
            cpus[k].append(c)
            final[k] = J
            print(f"rep {rep} {k}: wall {1e3 * t:8.2f} ms/it   CPU {1e3 * c:8.2f} ms/it  "
                  f"({its} its, final J {J:.10e})", flush=True)
    for what, data in (("wall", times), ("CPU ", cpus)):
        best = {k: min(v) for k, v in data.items()}
        med = {k: statistics.median(v) for k, v in data.items()}
        print(f"{what} best   A {1e3 * best['A']:8.2f} ms/it   B {1e3 * best['B']:8.2f} ms/it   "
              f"B/A {best['B'] / best['A']:.3f}")
        print(f"{what} median A {1e3 * med['A']:8.2f} ms/it   B {1e3 * med['B']:8.2f} ms/it   "
              f"B/A {med['B'] / med['A']:.3f}")
    rel = abs(final["A"] - final["B"]) / max(abs(final["A"]), 1e-300)
    print(f"final J: A {final['A']:.10e}  B {final['B']:.10e}  (relative difference {rel:.1e})")


if __name__ == "__main__":
    main()
