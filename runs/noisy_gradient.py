"""Reference for one-shot's inexact gradients: runs ocnet (1 rank) with the given options and adds to
every gradient a random error of relative size NOISE (default 0.01), isotropic and independent
from one evaluation to the next:

    g~ = g + NOISE |g| z / |z|,   z ~ N(0, I) (numpy default_rng(SEED), default 123)

Whether an optimisation slows down with it tells whether the *size* of a one-shot gradient error
(runs/calibrate_adaptive.py measures it) or its *structure* costs the iterations.
Usage: NOISE=0.01 python runs/noisy_gradient.py -options_file runs/paper_peaks.opts <data files> -mode serial -quiet
(options after -options_file override the file's)
"""
import os
import sys

import petsc4py

petsc4py.init(sys.argv)  # before any import of petsc4py.PETSc, so that the options are read
import numpy as np  # noqa: E402

from ocnet.optim.objective import ReducedObjective  # noqa: E402

NOISE = float(os.environ.get("NOISE", "0.01"))
_rng = np.random.default_rng(int(os.environ.get("SEED", "123")))
_orig = ReducedObjective.evaluate


def _evaluate(self, x, grad=None):
    J = _orig(self, x, grad)
    if grad is not None:
        with grad as a:  # (the context manager drops the Vec's cached norms)
            z = _rng.standard_normal(a.shape)
            a += NOISE * np.linalg.norm(a) / np.linalg.norm(z) * z
    return J


ReducedObjective.evaluate = _evaluate

if __name__ == "__main__":
    from ocnet.run.cli import main
    sys.exit(main())
