"""Jitted row operations on level arrays (rows = states of points), without the temporaries
numpy's fancy indexing creates: MGRIT's C-point updates touch a quarter of a trajectory that is
far larger than the caches, so every avoided copy counts.  Reductions use a fixed order (eight
interleaved partial sums), so a row's norm does not depend on the rank that computes it."""
import numpy as np
from numba import njit


@njit(cache=True)
def copy_rows(dst, drows, src, srows):
    """dst[drows[i]] = src[srows[i]]."""
    for i in range(drows.shape[0]):
        d, s = dst[drows[i]], src[srows[i]]
        for k in range(d.shape[0]):
            d[k] = s[k]


@njit(cache=True)
def sub_rows(dst, drows, src):
    """dst[drows[i]] -= src[i]."""
    for i in range(drows.shape[0]):
        d, s = dst[drows[i]], src[i]
        for k in range(d.shape[0]):
            d[k] -= s[k]


@njit(cache=True)
def blend_rows(dst, drows, src, srows, w):
    """dst[drows[i]] = (1-w)*dst[drows[i]] + w*src[srows[i]]  (weighted C-relaxation)."""
    for i in range(drows.shape[0]):
        d, s = dst[drows[i]], src[srows[i]]
        for k in range(d.shape[0]):
            d[k] = (1.0 - w) * d[k] + w * s[k]


@njit(cache=True)
def _sumsq(x, y, use_y):
    acc = np.zeros(8)
    n = x.shape[0]
    m = n - n % 8
    for s in range(0, m, 8):
        for t in range(8):
            v = x[s + t] - y[s + t] if use_y else x[s + t]
            acc[t] += v * v
    tail = 0.0
    for s in range(m, n):
        v = x[s] - y[s] if use_y else x[s]
        tail += v * v
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail


@njit(cache=True)
def residual_sumsq(phi, prows, U, rows, out):
    """out[i, 0] = |phi[prows[i]] - U[rows[i]]|^2, out[i, 1] = |U[rows[i]]|^2."""
    for i in range(rows.shape[0]):
        u = U[rows[i]]
        out[i, 0] = _sumsq(phi[prows[i]], u, True)
        out[i, 1] = _sumsq(u, u, False)
