"""Indian Pines: scikit-learn baselines beside ocnet's runs, on the same split, in one table.

    .venv/bin/python runs/compare_baselines.py [RUN_DIR ...] [--data_dir DIR] [--out FILE]

Builds the split of ``-problem indianpines`` (options of runs/indianpines.opts: 4000 / 2000
pixels, seed 1, features standardised by the training pixels' statistics), trains an SVM (RBF
kernel; scikit-learn's default C = 1 and C = 100, the best of 1, 10, 100, 1000 on
this validation set), an MLP (2 x 200, ReLU, adam) and logistic regression on it, and prints their validation
accuracy and fit time beside the final validation accuracy and wall time of each ocnet run
folder given (its history.csv).  The split is the runs' own (their params.json: -ntrain, -nval,
-data_seed); runs of different splits, or a --ntrain/--nval/--data_seed against theirs, are
refused with one line.  ``--out`` also writes
the table as Markdown.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ocnet_problems import datafiles  # noqa: E402
from ocnet_problems.indianpines import IndianPines  # noqa: E402


def runs_split(folders, given, defaults, problem):
    """The split options ``defaults`` names ({option: default}) that the baselines must share with
    the run folders (their params.json; a folder may be given as DIR:RANKS): ``given`` (the
    command line's, None where not given), else the runs' common values, else the defaults.  Exits
    with one line when the runs differ among themselves or from a value given (a baseline on
    another split is no comparison: tester 40), or when one is a run of another problem than
    ``problem`` (its model name: digits beside MNIST baselines, tester 42)."""
    import json
    seen = {}
    for spec in folders:
        folder = spec.partition(":")[0] if not os.path.isdir(spec) else spec
        path = os.path.join(folder, "params.json")
        if os.path.isfile(path):
            with open(path) as f:
                saved = json.load(f)
            if saved.get("model", problem) != problem:
                sys.exit(f"{os.path.basename(sys.argv[0])}: {folder} is a run of -problem {saved.get('model')}: "
                         f"the baselines are {problem}'s")
            opts = saved.get("options", {})
            seen.setdefault(tuple(opts.get(k, v) for k, v in defaults.items()), []).append(folder)
    if len(seen) > 1:
        sys.exit(f"{os.path.basename(sys.argv[0])}: the runs have different splits: " + "; ".join(
            " ".join(f"-{k} {v}" for k, v in zip(defaults, split)) + f" ({', '.join(dirs)})" for split, dirs in seen.items()))
    runs = dict(zip(defaults, next(iter(seen)))) if seen else {}
    for k, v in given.items():
        if v is not None and k in runs and runs[k] != v:
            sys.exit(f"{os.path.basename(sys.argv[0])}: --{k} {v}, but the runs were made with -{k} {runs[k]} "
                     "(the baselines are fitted on the runs' split: leave --{k} out)".replace("{k}", k))
    return {k: given.get(k) if given.get(k) is not None else runs.get(k, d) for k, d in defaults.items()}


def ocnet_row(folder):
    """(label, iterations, val accuracy, wall time) of an ocnet run folder."""
    with open(os.path.join(folder, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    opts = {}
    path = os.path.join(folder, "options.txt")
    if os.path.isfile(path):
        for line in open(path):
            k, _, v = line.strip().lstrip("-").partition(" ")
            opts[k] = v
    mode = opts.get("mode", "serial")
    tao = "oneshot TAO" if opts.get("oneshot_tao", "false") not in ("false", "0") else opts.get("tao_type", "lmvm")
    extra = f", batch {opts['batch_size']}" if opts.get("batch_size", "0") != "0" else ""
    gammas = "/".join(opts.get(k, "?") for k in ("gamma_tik", "gamma_ddt", "gamma_class"))
    label = f"ocnet {mode}, {tao}{extra}, γ {gammas} ({os.path.basename(os.path.normpath(folder))})"
    last = rows[-1]
    return label, int(last["iteration"]), float(last["val_accuracy"]), float(last["wall_time"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="ocnet run folders (-problem indianpines) to list beside the baselines")
    ap.add_argument("--data_dir", default=None, help="as -data_dir (default: tensorly's copy)")
    ap.add_argument("--ntrain", type=int, default=None, help="default: the runs' (params.json), else 4000")
    ap.add_argument("--nval", type=int, default=None, help="default: the runs', else 2000")
    ap.add_argument("--data_seed", type=int, default=None, help="default: the runs', else 1")
    ap.add_argument("--out", default=None, help="also write the table as Markdown here")
    a = ap.parse_args()
    split = runs_split(a.runs, {"ntrain": a.ntrain, "nval": a.nval, "data_seed": a.data_seed},
                       {"ntrain": 4000, "nval": 2000, "data_seed": 1}, "indianpines")
    a.ntrain, a.nval, a.data_seed = split["ntrain"], split["nval"], split["data_seed"]
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.svm import SVC
    except ImportError:
        sys.exit("compare_baselines: scikit-learn is not installed (runs/bootstrap.sh installs it)")

    (Xtr, ytr), (Xva, yva), *_ = IndianPines.read({"data_dir": a.data_dir, "ntrain": a.ntrain, "nval": a.nval,
                                                   "data_seed": a.data_seed})
    mean, scale = datafiles.standardiser(Xtr)
    Ztr, Zva = (Xtr - mean) / scale, (Xva - mean) / scale
    models = [
        ("SVM, RBF kernel (C=1, gamma='scale')", SVC(kernel="rbf")),
        ("SVM, RBF kernel (C=100, gamma='scale')", SVC(kernel="rbf", C=100.0)),
        ("MLP 2 x 200 (ReLU, adam, 500 epochs)", MLPClassifier((200, 200), max_iter=500, random_state=0)),
        ("logistic regression (lbfgs)", LogisticRegression(max_iter=5000)),
    ]
    rows = []
    for name, model in models:
        t = time.perf_counter()
        model.fit(Ztr, ytr)
        dt = time.perf_counter() - t
        rows.append((f"scikit-learn {name}", "", float(np.mean(model.predict(Zva) == yva)), dt))
    for folder in a.runs:
        rows.append(ocnet_row(folder))
    head = f"Indian Pines, {a.ntrain} training / {a.nval} validation pixels (seed {a.data_seed}), standardised"
    lines = ["| model | iterations | val accuracy | time (s) |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {it} | {100 * acc:.2f} % | {t:.1f} |" for n, it, acc, t in rows]
    print(head)
    print("\n".join(lines))
    if a.out:
        with open(a.out, "w") as f:
            f.write(head + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
