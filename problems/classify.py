"""Classification of users' own data files with the dense ResNet (``-problem classify``).

Features and labels come from files (problems/datafiles.py: .npz, .npy, .mat, CSV or
whitespace text such as the paper's .dat files), a training file and either a validation file or
a seeded stratified split (``-val_fraction``).  Features are standardised with the training
set's per-feature mean and standard deviation (``-standardize 0``: as read).  The data are read
and checked in ``__init__`` (on rank 0, then broadcast), before the run folder is made, so bad
input writes nothing.  Plots: ``confusion.png``, and ``decision.png`` for 2-D features.
"""
import os
import sys

import numpy as np

from ocnet.base.errors import OcnetError
from ocnet.base.options import path
from . import datafiles
from .resnet import UNLABELLED, Classification, ResNet


#: classes up to which confusion.png writes the count in each cell and a tick per class
CONFUSION_TEXT = 30


class LabelledResNet(ResNet):
    """A dense ResNet on labelled samples given as tables X (n, f), y (n,): standardisation from
    the training set, class-count checks and a confusion-matrix plot (shared by the problems that
    read data rather than generate it)."""

    #: class names for plots (None: the class indices)
    class_names = None

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("standardize", bool, True, "standardise features by the training set's mean and std", group=cls.name)

    def setup_data(self, values, comm, train, val, nclasses=0):
        """``train``/``val``: (X (n, f), y (n,)) or None for val; ``nclasses`` 0: max label + 1.

        Raises OcnetError for a single training class, labels >= nclasses and a feature count
        that differs between training and validation."""
        (Xtr, ytr) = train
        classes = np.unique(ytr)
        if classes.size < 2:
            raise OcnetError(f"the training labels hold a single class ({classes[0]}); classification needs at least 2")
        C = nclasses or int(ytr.max()) + 1
        if not values.get("nclasses", 1):  # (-nclasses 0: automatic) the class count is recorded as the
            values["nclasses"] = C        # model's (params.json): -load builds C outputs whatever classes
            #                               a scoring run's training file holds
        for name, part in (("training", train), ("validation", val)):
            if part is None:
                continue
            X, y = part
            if y.max() >= C:
                i = int(np.argmax(y))
                src = f"-nclasses {C}" if nclasses else f"the training classes 0..{C - 1}"
                from petsc4py import PETSc
                loaded = (" (the loaded model's class count: with -load the training file only stands in for "
                          f"the training data; give one whose labels are within 0..{C - 1})"
                          if nclasses and PETSc.Options().hasName("load") else "")
                raise OcnetError(f"{name} label {y[i]} (row {i}) is out of range of {src}{loaded}")
            if X.shape[1] != Xtr.shape[1]:
                raise OcnetError(f"validation features have {X.shape[1]} columns, training features {Xtr.shape[1]}")
        if values["standardize"]:
            self.mean, self.scale = datafiles.standardiser(Xtr)
        else:
            self.mean, self.scale = np.zeros(Xtr.shape[1]), np.ones(Xtr.shape[1])
        self.raw = {"train": train} if val is None else {"train": train, "val": val}
        datasets = {k: self.classification(X, y) for k, (X, y) in self.raw.items()}
        ResNet.__init__(self, values, comm, nin=Xtr.shape[1], nclasses=C, datasets=datasets)

    def model_state(self):
        """The input standardisation the parameters were trained with (saved with them)."""
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    def set_model_state(self, state):
        """A loaded model keeps the standardisation it was trained with, whatever the training file
        now is: the data sets are rebuilt with it.  Raises OcnetError for another feature count."""
        mean, scale = np.asarray(state["mean"], float), np.asarray(state["scale"], float)
        if mean.shape != self.mean.shape or scale.shape != self.scale.shape:
            raise OcnetError(f"-load: the model was trained on {mean.size} features, the data have {self.mean.size}")
        self.mean, self.scale = mean, scale
        self.datasets = {k: self.classification(X, y) for k, (X, y) in self.raw.items()}

    def classification(self, X, y=None):
        """Samples X (n, f) as the network's data: standardised with the model's statistics,
        feature-major (f, n); labels y (n,) or None (unlabelled: scored, no accuracy).  Raises
        OcnetError for another shape or feature count and for NaN/Inf (a NaN sample was scored)."""
        X = np.asarray(X)
        f = self.mean.size
        if X.ndim != 2 or X.shape[1] != f:
            raise OcnetError(f"classification: X has shape {X.shape}, the model takes (samples, {f}) "
                             f"features{' (transposed?)' if X.ndim == 2 and X.shape[0] == f else ''}")
        X = datafiles.as_features(X, "classification")
        Z = np.ascontiguousarray(((X - self.mean) / self.scale).T)
        return Classification(Z, np.full(X.shape[0], UNLABELLED, np.int64) if y is None else y)

    def plot_confusion(self, folder, predict):
        """``confusion.png``: confusion matrices (counts) of the training and validation sets."""
        parts = [(k, self.datasets[k].y, predict(self.datasets[k])) for k in ("train", "val")
                 if k in self.datasets and self.datasets[k].labelled]
        if parts[0][2] is None:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import ConfusionMatrixDisplay

        labels = np.arange(self.nclasses)
        # counts in the cells and a tick per class up to CONFUSION_TEXT classes; the figure's size
        # is capped (1681 classes, from a wrong label column, took > 10 min and 21 GB before)
        size = min(4.5 + 0.25 * self.nclasses, 12.0)
        few = self.nclasses <= CONFUSION_TEXT
        fig, axes = plt.subplots(1, len(parts), figsize=(size * len(parts), size), squeeze=False)
        for ax, (name, y, pred) in zip(axes[0], parts):
            ConfusionMatrixDisplay.from_predictions(
                y, pred, labels=labels, ax=ax, colorbar=False, include_values=few,
                display_labels=self.class_names if few else None,
                xticks_rotation="vertical" if self.class_names else "horizontal")
            if not few:
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"{name}: accuracy {np.mean(pred == y):.3f}")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "confusion.png"), dpi=100, bbox_inches="tight")
        plt.close(fig)


def label_warnings(y, nclasses, source):
    """Lines that say the training labels ``y`` (n,) look read from the wrong place: classes
    without a training sample (e.g. 1-based labels read as 0-based), or about as many classes as
    samples (a feature column taken for the labels).  Both trained silently before."""
    out = []
    C = nclasses or int(y.max()) + 1
    counts = np.bincount(y, minlength=C)
    if C > max(20, y.size // 4):
        out.append(f"{C} classes from {y.size} training samples (labels from {source}): is that the label "
                   "column? (-label_column, -train_labels, -y_name)")
    elif (counts == 0).any():
        empty = np.flatnonzero(counts == 0)
        hint = "; labels 1..C need -label_base 1" if empty.tolist() == [0] else ""
        out.append(f"class{'es' if empty.size > 1 else ''} {', '.join(map(str, empty[:10]))}"
                   f"{' ...' if empty.size > 10 else ''} of 0..{C - 1} {'have' if empty.size > 1 else 'has'} no "
                   f"training sample (labels from {source}){hint}")
    return out


class FileClassification(LabelledResNet):
    name = "classify"
    data_options = ("train_file", "train_labels", "val_file", "val_labels", "val_unlabelled", "val_fraction",
                    "split_seed", "x_name", "y_name", "label_column", "label_base", "skip_rows")
    split_options = ("val_fraction", "split_seed")  # -val_fraction splits the training file (see __init__)

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        g = cls.name
        opts.add("train_file", path, None, "training data: .npz, .npy, .mat, or CSV/whitespace text (.csv, .dat, ...)",
                 group=g)
        opts.add("train_labels", path, None, "training labels in their own file (integers or one-hot rows); "
                 "default: -y_name of a .npz/.mat file, else -label_column of the table", group=g)
        opts.add("val_file", path, None, "validation data, same format (or use -val_fraction)", group=g)
        opts.add("val_labels", path, None, "validation labels in their own file", group=g)
        opts.add("val_unlabelled", bool, False, "the -val_file holds features only (new samples to score with "
                 "-load and -predictions: no validation accuracy)", group=g)
        opts.add("val_fraction", float, 0.0, "without -val_file: this fraction of the training file becomes "
                 "the validation set (stratified by class, seeded by -split_seed)", group=g,
                 bounds="[0,1)")
        opts.add("split_seed", int, 1, "seed of the -val_fraction split", group=g, bounds="[0,inf)")
        opts.add("x_name", str, "X", "variable of the features in a .npz/.mat file", group=g)
        opts.add("y_name", str, "y", "variable of the labels in a .npz/.mat file", group=g)
        opts.add("label_column", int, -1, "column of the labels in a table without labels file (-1: last)", group=g,
                 bounds="(-inf,inf)")
        opts.add("label_base", int, 0, "smallest class label (e.g. 1 for MATLAB's 1..C); labels become 0..C-1", group=g,
                 bounds="[0,inf)")
        opts.add("skip_rows", int, 0, "header lines to skip in text files", group=g, bounds="[0,inf)")
        opts.add("nclasses", int, 0, "number of classes (0: largest training label + 1)", group=g,
                 bounds="[0,inf)")

    def __init__(self, values, comm):
        v = values
        if v["val_fraction"] > 0 and v["val_file"]:
            raise OcnetError("give -val_file or -val_fraction, not both")
        if not v["val_fraction"]:  # validation from its own file (or none): no split to compare on -load
            self.split_options = ()
        datafiles.check_validation_options(v, comm)
        if not v["train_file"]:
            raise OcnetError("-problem classify needs -train_file (see docs/user/data.md)")
        train, val = datafiles.on_root(comm, lambda: self.read(v))
        if comm.Get_rank() == 0:
            for line in self.unused_layout_options(v) + label_warnings(train[1], v["nclasses"],
                                                                        self.label_source(v)):
                print(f"ocnet: warning: {line}", file=sys.stderr, flush=True)
        self.setup_data(values, comm, train, val, nclasses=v["nclasses"])

    @staticmethod
    def unused_layout_options(v):
        """Lines naming the file-layout options given (not at their defaults) that no file read
        uses, e.g. -label_column with .npz files (it was ignored silently)."""
        kind = lambda f: {".npz": "keyed", ".mat": "keyed", ".npy": "array"}.get(
            os.path.splitext(f)[1].lower(), "text") if f else None
        val_labelled = v["val_file"] and not v["val_unlabelled"]
        files = [kind(v["train_file"]), kind(v["train_labels"]), kind(v["val_file"]), kind(v["val_labels"])]
        tables = [kind(f) for f, lab in ((v["train_file"], v["train_labels"]),
                                         (v["val_file"] if val_labelled else None, v["val_labels"])) if f and not lab]
        uses = {"label_column": any(t in ("text", "array") for t in tables),
                "skip_rows": "text" in files,
                "x_name": kind(v["train_file"]) == "keyed" or kind(v["val_file"]) == "keyed",
                "y_name": "keyed" in tables or kind(v["train_labels"]) == "keyed" or kind(v["val_labels"]) == "keyed"}
        defaults = {"label_column": -1, "skip_rows": 0, "x_name": "X", "y_name": "y"}
        why = {"label_column": "labels come from a labels file or a .npz/.mat variable",
               "skip_rows": "no text file is read", "x_name": "no .npz/.mat features file is read",
               "y_name": "no .npz/.mat file holds the labels"}
        return [f"-{k} {v[k]} is not used: {why[k]}" for k, used in uses.items() if v[k] != defaults[k] and not used]

    @staticmethod
    def label_source(v):
        """Where the training labels were read from (for warnings)."""
        if v["train_labels"]:
            return f"the file -train_labels {v['train_labels']}"
        if os.path.splitext(v["train_file"])[1].lower() in (".npz", ".mat"):
            return f"the variable '{v['y_name']}' of {v['train_file']} (-y_name)"
        col = "the last column" if v["label_column"] == -1 else f"column {v['label_column']}"
        return f"{col} of {v['train_file']} (-label_column, which counts columns from 0)"

    @staticmethod
    def read(v):
        """(train, val) pairs (X, y) from the files named by the options ``v`` (rank 0)."""
        kw = dict(x_name=v["x_name"], y_name=v["y_name"], label_column=v["label_column"],
                  skip_rows=v["skip_rows"], label_base=v["label_base"])
        train = datafiles.read_labelled(v["train_file"], v["train_labels"], what="-train_file", **kw)
        val = None
        if v["val_file"] and v["val_unlabelled"]:  # features only: labels unknown (-1)
            X = datafiles.as_features(datafiles.read_array(v["val_file"], "-val_file", v["x_name"], "x_name",
                                                           v["skip_rows"]), "-val_file")
            val = (X, np.full(X.shape[0], UNLABELLED, np.int64))
        elif v["val_file"]:
            val = datafiles.read_labelled(v["val_file"], v["val_labels"], what="-val_file", **kw)
        elif v["val_fraction"] > 0:
            X, y = train
            n_val = int(round(v["val_fraction"] * y.shape[0]))
            tr, va = datafiles.stratified_split(y, n_val, v["split_seed"])
            train, val = (X[tr], y[tr]), (X[va], y[va])
        return train, val

    def plot(self, folder, predict):
        """``confusion.png``; for 2-D features also ``decision.png``: the predicted class over the
        training data's bounding box, with the validation (else training) samples on top."""
        self.plot_confusion(folder, predict)
        if self.nin != 2:
            return
        shown = "val" if "val" in self.raw and self.datasets["val"].labelled else "train"
        X, y = self.raw[shown]
        lo, hi = self.raw["train"][0].min(axis=0), self.raw["train"][0].max(axis=0)
        pad = 0.05 * (hi - lo)
        t0 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 161)
        t1 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 161)
        G0, G1 = np.meshgrid(t0, t1)
        pred = predict(self.classification(np.column_stack([G0.ravel(), G1.ravel()])))
        if pred is None:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 5))
        kw = dict(cmap="viridis", vmin=0, vmax=self.nclasses - 1)
        ax.imshow(pred.reshape(G0.shape), origin="lower", extent=(t0[0], t0[-1], t1[0], t1[-1]), aspect="auto",
                  alpha=0.6, **kw)
        ax.scatter(X[:, 0], X[:, 1], c=y, s=8, edgecolors="k", linewidths=0.3, **kw)
        ax.set_title("decision regions; points: " + ("validation" if shown == "val" else "training") + " samples")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "decision.png"), dpi=100)
        plt.close(fig)
