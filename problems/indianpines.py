"""Indian Pines (``-problem indianpines``): the paper's hyperspectral test problem (Guenther et al.
2020, section 4.2), 16 classes of land cover from the 145 x 145 AVIRIS scene.

Data: Baumgardner, Biehl & Landgrebe (2015), "220 Band AVIRIS Hyperspectral Image Data Set: June
12, 1992 Indian Pine Test Site 3", Purdue University Research Repository, doi:10.4231/R7RX991C,
CC BY 3.0.  By default the 200-band "corrected" cube and its ground truth as shipped in the
tensorly wheel (``tensorly.datasets.load_indian_pines``); ``-data_dir`` reads the standard .mat
files instead (``Indian_pines_corrected.mat`` or the 220-band ``Indian_pines.mat``, and
``Indian_pines_gt.mat``; .npy files of the same names also work).

Samples are the labelled pixels (ground truth 1..16 -> classes 0..15) in column-major (MATLAB)
order, split seeded and stratified into ``-ntrain`` / ``-nval`` (the paper: 4000 / 2000).  Plot:
``classmap.png``, the predicted class of every pixel of the scene beside the ground truth, and
``confusion.png``.
"""
import os

import numpy as np

from ocnet.base.errors import OcnetError
from ocnet.base.options import path
from . import datafiles
from .classify import LabelledResNet

CLASS_NAMES = ("Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees",
               "Grass-pasture-mowed", "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill",
               "Soybean-clean", "Wheat", "Woods", "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers")
CUBES = (("Indian_pines_corrected", "indian_pines_corrected"), ("Indian_pines", "indian_pines"))
GROUND_TRUTH = ("Indian_pines_gt", "indian_pines_gt")
PREDICT_CHUNK = 4096  # pixels per forward solve of the class map (bounds its trajectory's memory)


def _read(folder, stem, key):
    """The array of ``folder/stem.mat`` (variable ``key``) or ``folder/stem.npy``; None if neither exists."""
    for ext in (".mat", ".npy"):
        path = os.path.join(folder, stem + ext)
        if os.path.isfile(path):
            return datafiles.read_array(path, "-data_dir", key, None)
    return None


def load_scene(data_dir=None):
    """(cube (rows, cols, bands), ground truth (rows, cols) ints, 0 = unlabelled).

    ``data_dir`` None: the copy in the tensorly package.  Raises OcnetError for a missing folder
    or file and for shapes that do not fit together."""
    if data_dir is None:
        try:
            from tensorly.datasets import load_indian_pines
        except ImportError:
            raise OcnetError("-problem indianpines needs the tensorly package (runs/bootstrap.sh installs it) "
                             "or -data_dir with the .mat files") from None
        bunch = load_indian_pines()
        cube, gt = np.asarray(bunch.tensor), np.asarray(bunch.ticks[0])
    else:
        if not os.path.isdir(data_dir):
            raise OcnetError(f"-data_dir: no folder '{data_dir}'")
        cube = next((a for a in (_read(data_dir, s, k) for s, k in CUBES) if a is not None), None)
        if cube is None:
            raise OcnetError(f"-data_dir: '{data_dir}' holds neither Indian_pines_corrected.mat nor Indian_pines.mat")
        gt = _read(data_dir, *GROUND_TRUTH)
        if gt is None:
            raise OcnetError(f"-data_dir: '{data_dir}' holds no Indian_pines_gt.mat")
    if cube.ndim != 3 or gt.shape != cube.shape[:2]:
        raise OcnetError(f"Indian Pines: cube of shape {cube.shape} and ground truth of shape {gt.shape} do not fit")
    return cube, gt.astype(np.int64)


def labelled_pixels(cube, gt):
    """Spectra X (n, bands) and classes y (n,) = gt - 1 of the labelled pixels, column-major order,
    and their flat column-major pixel indices (n,)."""
    flat_gt = gt.ravel(order="F")
    pix = np.flatnonzero(flat_gt > 0)
    X = cube.reshape(-1, cube.shape[2], order="F")[pix].astype(np.float64)
    return X, flat_gt[pix] - 1, pix


class IndianPines(LabelledResNet):
    name = "indianpines"
    # the configuration of the documented result (docs/user/data.md, formerly runs/indianpines.opts):
    # the paper's split and network (N 27, T 20, width = 200 bands, tanh); measured regularisation
    # (88.65 % with gamma_tik 1e-2, gamma_class 1e-3 against 87.3 % with the paper's 1e-7) and a
    # near-identity start (opening std 1/sqrt(200), layers 0.1/sqrt(width)); the MGRIT settings
    # that its one-shot run needed (coarsening factor 4, FCF-relaxation)
    option_defaults = {"ntrain": 4000, "nval": 2000, "data_seed": 1, "N": 27, "T": 20, "width": 200,
                       "activation": "tanh", "gamma_tik": 1e-2, "gamma_ddt": 1e-7, "gamma_class": 1e-3,
                       "init_open": 0.07, "init_layer": 0.1, "mgrit_cfactor": 4, "mgrit_relax": "FCF",
                       "tao_type": "lmvm", "tao_max_it": 300}
    default_width = 200
    class_names = CLASS_NAMES
    data_options = ("data_dir", "ntrain", "nval", "data_seed")
    split_options = ("ntrain", "nval", "data_seed")  # a stratified split of the scene's labelled pixels

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        g = cls.name
        opts.add("data_dir", path, None, "folder with Indian_pines_corrected.mat (or Indian_pines.mat) and "
                 "Indian_pines_gt.mat (default: the copy in the tensorly package)", group=g)
        opts.add("ntrain", int, 4000, "training pixels (seeded stratified split of the labelled pixels)", group=g,
                 bounds="[1,inf)")
        opts.add("nval", int, 2000, "validation pixels", group=g, bounds="[0,inf)")
        opts.add("data_seed", int, 1, "seed of the training/validation split", group=g, bounds="[0,inf)")

    def __init__(self, values, comm):
        v = values
        train, val, self.scene_shape, self.gt, self.bands = datafiles.on_root(comm, lambda: self.read(v))
        self.setup_data(values, comm, train, val, nclasses=len(CLASS_NAMES))

    @staticmethod
    def read(v):
        cube, gt = load_scene(v["data_dir"])
        if gt.max() > len(CLASS_NAMES):
            raise OcnetError(f"Indian Pines: ground truth label {gt.max()} is out of range 0..{len(CLASS_NAMES)}")
        X, y, _ = labelled_pixels(cube, gt)
        n_val = v["nval"]
        if n_val == 0:
            if v["ntrain"] > y.size:
                raise OcnetError(f"-ntrain {v['ntrain']}: only {y.size} pixels are labelled")
            tr = np.sort(np.random.default_rng(v["data_seed"]).permutation(y.size)[: v["ntrain"]])
            val = None
        else:
            tr, va = datafiles.stratified_split(y, n_val, v["data_seed"], n_train=v["ntrain"], what="-ntrain/-nval")
            val = (X[va], y[va])
        # the cube is kept (as float32 spectra) for the class map of the whole scene
        return (X[tr], y[tr]), val, gt.shape, gt, cube.reshape(-1, cube.shape[2], order="F").astype(np.float32)

    def plot(self, folder, predict):
        """``confusion.png`` and ``classmap.png``: ground truth beside the predicted class of every
        pixel (unlabelled ones included) and beside the prediction on the labelled pixels."""
        self.plot_confusion(folder, predict)
        parts = []
        for a in range(0, self.bands.shape[0], PREDICT_CHUNK):
            parts.append(predict(self.classification(self.bands[a:a + PREDICT_CHUNK].astype(np.float64))))
        if parts[0] is None:
            return
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap

        pred = np.concatenate(parts).reshape(self.scene_shape, order="F") + 1
        gt = self.gt
        cmap = ListedColormap(["black"] + [plt.get_cmap("tab20")(i) for i in range(len(CLASS_NAMES))])
        masked = np.where(gt > 0, pred, 0)
        acc = np.mean(pred[gt > 0] == gt[gt > 0])
        fig, ax = plt.subplots(1, 3, figsize=(15, 5.2))
        for a, img, title in ((ax[0], gt, "ground truth"), (ax[1], pred, "network, every pixel"),
                              (ax[2], masked, f"network, labelled pixels (accuracy {acc:.3f})")):
            im = a.imshow(img, cmap=cmap, vmin=-0.5, vmax=len(CLASS_NAMES) + 0.5, interpolation="nearest")
            a.set_title(title)
            a.set_xticks([])
            a.set_yticks([])
        cb = fig.colorbar(im, ax=ax, ticks=range(len(CLASS_NAMES) + 1), fraction=0.025)
        cb.ax.set_yticklabels(["unlabelled", *CLASS_NAMES], fontsize=7)
        fig.savefig(os.path.join(folder, "classmap.png"), dpi=100, bbox_inches="tight")
        plt.close(fig)
