"""Peaks: the paper's 2-D, 5-class benchmark (level sets of MATLAB's peaks function)."""
import os

import numpy as np

from .resnet import Classification, ResNet

BOX = 3.0


def peaks(x, y):
    return (3 * (1 - x) ** 2 * np.exp(-x**2 - (y + 1) ** 2)
            - 10 * (x / 5 - x**3 - y**5) * np.exp(-x**2 - y**2)
            - np.exp(-(x + 1) ** 2 - y**2) / 3)


def _levels(nclasses):
    """Class thresholds: quantiles of peaks on a fine grid, so classes have equal area."""
    t = np.linspace(-BOX, BOX, 601)
    X, Y = np.meshgrid(t, t)
    return np.quantile(peaks(X, Y), np.linspace(0, 1, nclasses + 1)[1:-1])


def label(points, nclasses=5):
    return np.searchsorted(_levels(nclasses), peaks(points[0], points[1])).astype(np.int64)


def sample(n, rng, nclasses=5):
    X = rng.uniform(-BOX, BOX, size=(2, n))
    return Classification(X, label(X, nclasses))


class Peaks(ResNet):
    name = "peaks"
    #: options that select data, not the model: -load may evaluate saved parameters on other data
    data_options = ("ntrain", "nval", "data_seed")

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("ntrain", int, 5000, "training points on [-3,3]^2", group=cls.name, bounds="[1,inf)")
        opts.add("nval", int, 200, "validation points", group=cls.name, bounds="[0,inf)")
        opts.add("data_seed", int, 1, "seed of the generated data set", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        rng = np.random.default_rng(values["data_seed"])
        data = {"train": sample(values["ntrain"], rng)}
        if values["nval"]:
            data["val"] = sample(values["nval"], rng)
        super().__init__(values, comm, nin=2, nclasses=5, datasets=data)

    def classification(self, X):
        """Points X (n, 2) as the network's data, labelled with their true Peaks class (for
        ``forward_outputs``/``metrics`` on new points; tester 44 had to find the data class).
        Raises OcnetError for another shape or a non-finite coordinate (predicted as class 0)."""
        from ocnet.base.errors import OcnetError
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != 2:
            raise OcnetError(f"classification: points of shape {X.shape}, Peaks takes (n, 2)"
                             + (": X.T" if X.ndim == 2 and X.shape[0] == 2 else ""))
        if not np.isfinite(X).all():
            raise OcnetError(f"classification: point {int(np.argwhere(~np.isfinite(X))[0][0])} (counted from 0) "
                             "holds NaN or Inf")
        return Classification(np.ascontiguousarray(X.T), label(X.T))

    def sample_columns(self, data):
        """The generated points' coordinates and true class: predictions_<set>.csv is readable alone."""
        return {"x": data.X[0], "y": data.X[1], "label": data.y}

    def plot(self, folder, predict):
        """``decision.png``: decision regions of the trained network beside the true classes."""
        t = np.linspace(-BOX, BOX, 161)
        X, Y = np.meshgrid(t, t)
        grid = Classification(np.vstack([X.ravel(), Y.ravel()]), label(np.vstack([X.ravel(), Y.ravel()])))
        pred = predict(grid)
        if pred is None:
            return
        path = os.path.join(folder, "decision.png")
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 4.2))
        ext = (-BOX, BOX, -BOX, BOX)
        for a, lab, title in ((ax[0], grid.y, "true classes"), (ax[1], pred, "network")):
            a.imshow(lab.reshape(X.shape), origin="lower", extent=ext, cmap="viridis", vmin=0, vmax=4)
            a.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
