"""Run folders: options used, history.csv, plots, and the final parameters (reloadable)."""
import csv
import json
import os

import numpy as np
from petsc4py import PETSc

from .errors import OcnetError, collective_check

HISTORY_COLUMNS = ["iteration", "objective", "gradient_norm", "train_accuracy", "val_accuracy", "wall_time",
                   "step_length", "state_residual", "adjoint_residual", "val_state_residual"]
PARAMS = "params.petsc"
META = "params.json"


def prepare(path, comm):
    ok, msg = True, ""
    if comm.Get_rank() == 0:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            ok, msg = False, f"cannot create run folder '{path}': {e.strerror}"
    collective_check(comm, comm.bcast(ok), comm.bcast(msg))


def write_options(path, comm):
    if comm.Get_rank() == 0:
        with open(os.path.join(path, "options.txt"), "w") as f:
            for k, v in sorted(PETSc.Options().getAll().items()):
                f.write(f"-{k} {v}\n".replace(" \n", "\n"))


def write_history(path, rows, comm):
    if comm.Get_rank() != 0:
        return
    cols = list(HISTORY_COLUMNS) + [k for r in rows for k in r if k not in HISTORY_COLUMNS]
    cols = list(dict.fromkeys(cols))
    tmp = os.path.join(path, "history.csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="nan")
        w.writeheader()
        for r in rows:
            w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    os.replace(tmp, os.path.join(path, "history.csv"))


def plot_history(path, rows, comm):
    if comm.Get_rank() != 0 or not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [r["iteration"] for r in rows]
    residuals = [k for k in HISTORY_COLUMNS if k.endswith("residual")
                 and np.isfinite([r.get(k, np.nan) for r in rows]).any()]  # MGRIT modes only
    fig, ax = plt.subplots(1, 3 + bool(residuals), figsize=(13 + 4 * bool(residuals), 3.8))
    ax[0].semilogy(it, [r["objective"] for r in rows])
    ax[0].set_title("objective")
    ax[1].semilogy(it, [r["gradient_norm"] for r in rows])
    ax[1].set_title("gradient norm")
    for key in ("train_accuracy", "val_accuracy"):
        ax[2].plot(it, [r.get(key, np.nan) for r in rows], label=key)
    ax[2].set_title("accuracy")
    ax[2].legend()
    for key in residuals:
        ax[3].semilogy(it, [r.get(key, np.nan) for r in rows], label=key)
    if residuals:
        ax[3].set_title("MGRIT residual")
        ax[3].legend()
    for a in ax:
        a.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(os.path.join(path, "training.png"), dpi=100)
    plt.close(fig)


def save_params(path, x, meta, comm):
    """Binary PETSc Vec (global order is rank-count free) + JSON of what it belongs to."""
    tmp = os.path.join(path, PARAMS + ".tmp")
    viewer = PETSc.Viewer().createBinary(tmp, mode="w", comm=x.getComm())
    x.view(viewer)
    viewer.destroy()
    if comm.Get_rank() == 0:
        os.replace(tmp, os.path.join(path, PARAMS))
        for extra in (tmp + ".info",):
            if os.path.exists(extra):
                os.remove(extra)
        with open(os.path.join(path, META), "w") as f:
            json.dump(meta, f, indent=1)
    comm.Barrier()


def load_params(source, x, meta, comm):
    """Load parameters from a run folder (or a params.petsc file) into ``x``; checks they fit."""
    folder = source if os.path.isdir(source) else os.path.dirname(source) or "."
    vec_file = os.path.join(source, PARAMS) if os.path.isdir(source) else source
    meta_file = os.path.join(folder, META)
    collective_check(comm, os.path.isfile(vec_file), f"-load: no parameter file '{vec_file}'")
    saved = None
    if os.path.isfile(meta_file):
        try:
            with open(meta_file) as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            collective_check(comm, False, f"-load: unreadable '{meta_file}': {e}")
    if saved is not None:
        for key in ("problem", "N", "global_size"):
            if saved.get(key) != meta.get(key):
                raise OcnetError(f"-load: '{source}' holds parameters for {key}={saved.get(key)}, this run has {key}={meta.get(key)}")
    viewer = PETSc.Viewer().createBinary(vec_file, mode="r", comm=x.getComm())
    try:
        x.load(viewer)
    except PETSc.Error:
        raise OcnetError(f"-load: '{vec_file}' is not a parameter file of this run's size") from None
    finally:
        viewer.destroy()
