"""The paper's comparison on Peaks: layer-serial vs exact (MGRIT to tolerance) vs one-shot, for
N = 32 and N = 256 on 1 and 2 ranks, with the same TAO (lmvm) budget.

    .venv/bin/python runs/compare_modes.py [--max_it 300] [--Ns 32,256] [--ranks 1,2] [--out runs/out/compare]
        [--modes serial,exact,oneshot] [--oneshot "-oneshot_adjoint_its 1"]   (extra one-shot options)
        [--opts runs/peaks.opts | none] [--extra "-activation tanh"]   (options of every run)

Modes: serial, exact, oneshot (adaptive, the default of -mode oneshot), oneshot_fixed (2 state + 1
adjoint MGRIT iterations per evaluation, -oneshot_adapt 0).  The table gives the stop reason and
the MGRIT iterations per evaluation (state/adjoint, and exact fallbacks of the adaptive one-shot);
the one-shot accuracies are those of the exact final evaluation (summary.json final_exact).

Writes OUT/table.md (final objective, validation accuracy, wall time) and OUT/compare_N*.png
(objective and validation accuracy against iteration and against wall time, MGRIT residuals).
"""
import argparse
import csv
import os
import subprocess
import sys

MODES = {
    "serial": ["-mode", "serial"],
    "exact": ["-mode", "exact", "-mgrit_cfactor", 4, "-mgrit_rtol", 1e-9],
    "oneshot": ["-mode", "oneshot"],  # adaptive (docs/user/adaptive-oneshot.md); F-relaxation, cfactor 8
    "oneshot_fixed": ["-mode", "oneshot", "-oneshot_adapt", 0],  # 2 state + 1 adjoint MGRIT its per evaluation
}
OPTS, EXTRA = ["-options_file", "runs/peaks.opts"], []


def mgrit_per_evaluation(d, h):
    """'state/adjoint' MGRIT iterations per evaluation (gradient evaluations for the adjoint)."""
    import json
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    t = s.get("adaptive_oneshot")
    if t:
        return (f"{t['state_its'] / max(t['evaluations'], 1):.2f}/{t['adjoint_its'] / max(t['gradient_evaluations'], 1):.2f}"
                f" ({t['exact_evaluations']} exact)"), s
    its = {(r["state_mgrit_its"], r["adjoint_mgrit_its"]) for r in h}
    return ("-" if its == {("nan", "nan")} else "/".join(str(int(float(v))) for v in sorted(its)[-1])), s


def run(root, out, mode, N, p, max_it, extra=()):
    d = os.path.join(out, f"{mode}_N{N}_p{p}")
    if os.path.isdir(d):  # a fresh run folder (ocnet refuses to write into a used one)
        import shutil
        shutil.rmtree(d)
    from ocnet.run.launch import mpiexec
    cmd = mpiexec(p) + [sys.executable, "-m", "ocnet", *OPTS, "-N", str(N), "-tao_max_it", str(max_it), "-quiet",
                        "-run_dir", d] + [str(a) for a in MODES[mode]] + list(EXTRA) + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    with open(os.path.join(d, "history.csv")) as f:
        h = list(csv.DictReader(f))
    return h, d


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max_it", type=int, default=300)
    ap.add_argument("--Ns", default="32,256")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--out", default="runs/out/compare")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--oneshot", default="", help="extra options of the one-shot runs")
    ap.add_argument("--opts", default="runs/peaks.opts", help="options file of every run ('none': the defaults)")
    ap.add_argument("--extra", default="", help="extra options of every run")
    a = ap.parse_args()
    import shlex
    global OPTS, EXTRA
    OPTS = [] if a.opts == "none" else ["-options_file", a.opts]
    EXTRA = [str(v) for v in shlex.split(a.extra)]
    extra = {"oneshot": shlex.split(a.oneshot), "oneshot_fixed": shlex.split(a.oneshot)}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, a.out)
    os.makedirs(out, exist_ok=True)
    lines = ["| N | ranks | mode | stop | iterations | objective | val accuracy | wall time (s) | "
             "MGRIT its per evaluation (state/adjoint) |",
             "|---:|---:|---|---|---:|---:|---:|---:|---|"]
    results = {}
    for N in map(int, a.Ns.split(",")):
        for p in map(int, a.ranks.split(",")):
            for mode in a.modes.split(","):
                h, d = run(root, out, mode, N, p, a.max_it, extra.get(mode, ()))
                results[(N, p, mode)] = h
                last = h[-1]
                per, s = mgrit_per_evaluation(d, h)
                fin = s.get("final_exact", {})
                obj, val = fin.get("objective", float(last["objective"])), fin.get("val_accuracy", float(last["val_accuracy"]))
                lines.append(f"| {N} | {p} | {mode} | {s['reason']} | {last['iteration']} | {obj:.4f} | "
                             f"{100 * val:.1f} % | {float(last['wall_time']):.1f} | {per} |")
                print(lines[-1], flush=True)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for N in map(int, a.Ns.split(",")):
        fig, ax = plt.subplots(2, 3, figsize=(15, 8))
        for (n, p, mode), h in results.items():
            if n != N:
                continue
            it = [int(r["iteration"]) for r in h]
            t = [float(r["wall_time"]) for r in h]
            lab = f"{mode}, {p} rank{'s' if p > 1 else ''}"
            for row, x in ((0, it), (1, t)):
                ax[row, 0].semilogy(x, [float(r["objective"]) for r in h], label=lab)
                ax[row, 1].plot(x, [float(r["val_accuracy"]) for r in h], label=lab)
            if mode != "serial":
                ax[0, 2].semilogy(it, [float(r["state_residual"]) for r in h], label=f"state, {lab}")
                ax[1, 2].semilogy(it, [float(r["adjoint_residual"]) for r in h], label=f"adjoint, {lab}")
        for j, title in enumerate(("objective", "validation accuracy", "MGRIT residual")):
            ax[0, j].set_title(title)
            ax[0, j].set_xlabel("iteration")
            ax[1, j].set_xlabel("wall time (s)" if j < 2 else "iteration")
        for axx in ax.ravel():
            axx.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"compare_N{N}.png"), dpi=90)
        plt.close(fig)
    print(f"wrote {out}/table.md and compare_N*.png")


if __name__ == "__main__":
    main()
