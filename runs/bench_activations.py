"""Speed of ocnet's public activations (ocnet.plugin.activations) against numpy's, side by side.

    .venv/bin/python runs/bench_activations.py [--rows 16] [--batch 5000] [--reps 7] [--number 50]

For each activation: sigma(z + b) and sigma'(z + b) of a (rows, batch) array with a per-row bias,
by ``activations.activate`` (one jitted call) and by numpy (the obvious vectorised expressions:
np.tanh and 1 - t^2; np.maximum and x > 0; np.clip for SmoothReLU), timed interleaved, best of
--reps runs of --number calls, CPU time of the process (other work on a shared machine does not
count).  Prints both times per call, the ratio numpy / ocnet, and the
largest difference of the two results (ulp-level for tanh, 0 for the others).
"""
import argparse
import os
import sys
import time
import timeit

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ocnet.plugin.activations import ACTIVATIONS, activate  # noqa: E402


def numpy_tanh(z, b):
    a = np.tanh(z + b[:, None])
    return a, 1.0 - a * a


def numpy_relu(z, b):
    x = z + b[:, None]
    return np.maximum(x, 0.0), (x > 0.0).astype(np.float64)


def numpy_smoothrelu(z, b):
    x = z + b[:, None]
    c = np.clip(x, -0.1, 0.1)
    return (2.5 * c + 0.5) * c + 0.025 + np.maximum(x - 0.1, 0.0), 5.0 * c + 0.5


NUMPY = {"tanh": numpy_tanh, "relu": numpy_relu, "smoothrelu": numpy_smoothrelu}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--number", type=int, default=50)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    z = rng.standard_normal((a.rows, a.batch))
    b = rng.standard_normal(a.rows) * 0.1
    out, d = np.empty_like(z), np.empty_like(z)
    print(f"# (rows, batch) = ({a.rows}, {a.batch}); best of {a.reps} x {a.number} calls; sigma and sigma' both")
    print(f"{'activation':12s} {'numpy us':>10s} {'ocnet us':>10s} {'numpy/ocnet':>12s} {'max |diff|':>11s}")
    for name, code in ACTIVATIONS.items():
        activate(code, z, b, out, d)  # compile (or load from the cache)
        fn = NUMPY[name]
        tn, to = [], []
        for _ in range(a.reps):  # interleaved
            tn.append(timeit.Timer(lambda: fn(z, b), timer=time.process_time).timeit(a.number) / a.number)
            to.append(timeit.Timer(lambda: activate(code, z, b, out, d), timer=time.process_time).timeit(a.number)
                      / a.number)
        ra, rd = fn(z, b)
        diff = max(np.abs(ra - out).max(), np.abs(rd - d).max())
        print(f"{name:12s} {1e6 * min(tn):10.1f} {1e6 * min(to):10.1f} {min(tn) / min(to):12.2f} {diff:11.1e}")


if __name__ == "__main__":
    main()
