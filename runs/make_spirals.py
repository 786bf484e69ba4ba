"""Three interleaved spiral arms in the plane (170 points each, noise 0.03), a classification set
that deep ResNets and one-shot find harder than Peaks (docs/user/adaptive-oneshot.md):

    .venv/bin/python runs/make_spirals.py OUT      # writes OUT/spirals_X.npy (510, 2), OUT/spirals_y.npy (510,)
    .venv/bin/ocnet -problem classify -train_file OUT/spirals_X.npy -train_labels OUT/spirals_y.npy \\
        -val_fraction 0.4 -N 256 -mode oneshot

Seeded (numpy's default_rng(0)): the same points on every machine."""
import os
import sys

import numpy as np


def spirals(n=170, arms=3, noise=0.03, seed=0):
    """(X (arms n, 2), y (arms n,)) in shuffled order: arm k at angle t + 2 pi k / arms, radius t / (3 pi)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for k in range(arms):
        t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
        a = t + 2 * np.pi * k / arms
        X.append(np.column_stack([t * np.cos(a), t * np.sin(a)]) / (3 * np.pi) + noise * rng.standard_normal((n, 2)))
        y.append(np.full(n, k))
    X, y = np.vstack(X), np.concatenate(y)
    p = rng.permutation(len(y))
    return X[p], y[p]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python runs/make_spirals.py OUT")
    os.makedirs(sys.argv[1], exist_ok=True)
    X, y = spirals()
    np.save(os.path.join(sys.argv[1], "spirals_X.npy"), X)
    np.save(os.path.join(sys.argv[1], "spirals_y.npy"), y)
    print(f"wrote {sys.argv[1]}/spirals_X.npy {X.shape}, spirals_y.npy {y.shape}")
