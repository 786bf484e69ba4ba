"""Numba kernels of the residual step u+ = u + h*sigma(K u + b) and its adjoint, for whole batches.

Layout is feature-major: a state is (width, batch), the batch contiguous and innermost (SIMD).
A whole block of layers runs inside one jitted loop (no Python per layer): the products
K u, K^T g and g u^T go to BLAS through Numba's ``np.dot`` (SciPy's BLAS), everything else is one
fused element-wise pass per layer.  The forward sweep keeps sigma'(K u + b) per layer, so the
adjoint needs no product for the activation.  All reductions have a fixed order, so a layer's
result does not depend on which rank computes it.
"""
import numpy as np
from numba import njit


# ---- activations: the framework's public ones (ocnet.plugin.activations), (sigma(x), sigma'(x)),
# branch-free so the loops vectorise (tanh has its own multi-pass kernel, _tanh_update, below).
# Kernels take the activation as an integer code (a loop-invariant branch, which the compiler
# unswitches): passing jitted functions as arguments breaks Numba's on-disk cache.
from ocnet.plugin.activations import ACTIVATIONS, LN2_HI, LN2_LO, LOG2E  # noqa: E402,F401
from ocnet.plugin.activations import relu as act_relu, smoothrelu as act_smoothrelu  # noqa: E402
from ocnet.plugin.activations import activation  # noqa: E402,F401
# the fused residual update out = u + h*act(z + b) (+ F), dsig = act'(z + b), and its tanh case
from ocnet.plugin.activations import residual_update as activate_update_forced  # noqa: E402
from ocnet.plugin.activations import tanh_residual_update as _tanh_update  # noqa: E402,F401


@njit(cache=True, error_model="numpy")
def activate_update(act, z, b, h, u, out, dsig):
    """out = u + h*act(z + b), dsig = act'(z + b), row-wise bias b."""
    activate_update_forced(act, z, b, h, u, out, dsig, z, False, False)


@njit(cache=True)
def _scale_rows(h, dsig, lam_next, g):
    w, B = g.shape
    for i in range(w):
        di, li, gi = dsig[i], lam_next[i], g[i]
        for s in range(B):
            gi[s] = h * di[s] * li[s]


@njit(cache=True)
def _add2(a, b, c, with_c):
    """a = (a + b) + c (with_c) or a + b, in one pass, rounded as two separate passes would."""
    w, B = a.shape
    for i in range(w):
        ai, bi, ci = a[i], b[i], c[i if with_c else 0]
        for s in range(B):
            v = ai[s] + bi[s]
            ai[s] = v + ci[s] if with_c else v


@njit(cache=True)
def sweep_kernel(act, Ks, bs, h, U, D, F, forced):
    """U[k+1] = U[k] + h*act(Ks[k] U[k] + bs[k]) (+ F[k] if forced), D[k] = act'(.)
    (U: (nl+1, w, B)); the forcing is MGRIT's coarse-level right-hand side."""
    z = np.empty(U.shape[1:])
    for k in range(Ks.shape[0]):
        np.dot(Ks[k], U[k], z)
        activate_update_forced(act, z, bs[k], h, U[k], U[k + 1], D[k], F[k] if forced else z, forced, False)


@njit(cache=True)
def sweep_adjoint_kernel(Ks, h, U, D, L, gKs, gbs, F, forced):
    """Backward over the block from L[-1]: g = h D[k]*L[k+1], L[k] = L[k+1] + Ks[k]^T g
    (+ F[k] if forced), gKs[k] += g U[k]^T, gbs[k] += g 1 (one run of sweeps_adjoint_kernel)."""
    runs = np.empty((1, 2), np.int64)
    runs[0, 0], runs[0, 1] = 0, Ks.shape[0] - 1
    sweeps_adjoint_kernel(runs, Ks, h, U, D, L, F, forced, True, gKs, gbs, L, runs[0, :0])


@njit(cache=True)
def param_gradient_kernel(h, U, D, L, gKs, gbs):
    """gKs[k] += g U[k]^T, gbs[k] += g 1 with g = h D[k]*L[k+1], for every k independently
    (the adjoint L is given at every layer, e.g. by MGRIT)."""
    param_gradient_rows_kernel(np.arange(D.shape[0]), h, U, D, L, gKs, gbs)


@njit(cache=True)
def sweeps_kernel(act, runs, Ks, bs, h, U, D, F, forced, keep, A, arows):
    """Several runs on one array (rows indexed by the point a step goes into): for each run
    (a, b) and k = a..b, U[k] = U[k-1] + h*act(Ks[k] U[k-1] + bs[k]) (+ F[k]), D[k] = act'(.)
    (``keep`` false: D goes to a cache-resident scratch, saving a third of the memory traffic);
    then, where arows[i] >= 0, the look-ahead step into row b+1 written to A[arows[i]] (the
    arithmetic of ``steps_kernel``; ``arows`` empty: none).
    The arithmetic of ``sweep_kernel``, so a one-run call reproduces it bitwise."""
    z = np.empty(U.shape[1:])
    scratch = np.empty(U.shape[1:])
    for i in range(runs.shape[0]):
        for k in range(runs[i, 0], runs[i, 1] + 1):
            np.dot(Ks[k], U[k - 1], z)
            activate_update_forced(act, z, bs[k], h, U[k - 1], U[k], D[k] if keep else scratch,
                                   F[k] if forced else z, forced, False)
        if arows.shape[0] and arows[i] >= 0:
            k = runs[i, 1] + 1
            np.dot(Ks[k], U[k - 1], z)
            activate_update_forced(act, z, bs[k], h, U[k - 1], A[arows[i]], D[k] if keep else scratch,
                                   F[k] if forced else z, forced, False)


@njit(cache=True)
def steps_kernel(act, rows, Ks, bs, h, U, D, out, out_rows, F, forced, keep, minus):
    """Independent steps into rows r = rows[i]: out[out_rows[i]] = U[r-1] + h*act(Ks[r] U[r-1]
    + bs[r]) (+ F[r]), D[r] = act'(.) (``keep`` false: D to scratch); ``minus``: out[out_rows[i]]
    minus that step instead."""
    z = np.empty(U.shape[1:])
    scratch = np.empty(U.shape[1:])
    for i in range(rows.shape[0]):
        r, o = rows[i], out_rows[i]
        np.dot(Ks[r], U[r - 1], z)
        activate_update_forced(act, z, bs[r], h, U[r - 1], out[o], D[r] if keep else scratch,
                               F[r] if forced else z, forced, minus)


@njit(cache=True)
def _layer_adjoint(Kk, h, Dk, Lnext, out, g, Fk, forced):
    """out = Lnext + Kk^T g (+ Fk) with g = h Dk*Lnext (left in ``g``): one transposed step."""
    _scale_rows(h, Dk, Lnext, g)
    np.dot(Kk.T, g, out)
    _add2(out, Lnext, Fk, forced)


@njit(cache=True)
def _gradient_add(g, Uk, gK, gb, ones, gKk, gbk):
    """gKk += g Uk^T, gbk += g 1 (through the temporaries gK, gb)."""
    np.dot(g, Uk.T, gK)
    np.dot(g, ones, gb)
    gKk += gK
    gbk += gb


@njit(cache=True)
def sweeps_adjoint_kernel(runs, Ks, h, U, D, L, F, forced, grad, gKs, gbs, A, arows):
    """Backward runs: for each run (a, b) and k = b..a, L[k] = L[k+1] + Ks[k]^T g (+ F[k]) with
    g = h D[k]*L[k+1]; with ``grad`` also each step's parameter gradient from that g,
    gKs[k] += g U[k]^T, gbs[k] += g 1 (the arithmetic of ``param_gradient_kernel``; without it U,
    gKs, gbs are not read); then, where arows[i] >= 0, the look-ahead step k = a-1 written to
    A[arows[i]] instead of L[k] (with its gradient too; ``arows`` empty: none)."""
    w, B = L.shape[1], L.shape[2]
    g = np.empty((w, B))
    gK = np.empty((w, w))
    gb = np.empty(w)
    ones = np.ones(B)
    for i in range(runs.shape[0]):
        for k in range(runs[i, 1], runs[i, 0] - 1, -1):
            _layer_adjoint(Ks[k], h, D[k], L[k + 1], L[k], g, F[k] if forced else g, forced)
            if grad:
                _gradient_add(g, U[k], gK, gb, ones, gKs[k], gbs[k])
        if arows.shape[0] and arows[i] >= 0:
            k = runs[i, 0] - 1
            _layer_adjoint(Ks[k], h, D[k], L[k + 1], A[arows[i]], g, F[k] if forced else g, forced)
            if grad:
                _gradient_add(g, U[k], gK, gb, ones, gKs[k], gbs[k])


@njit(cache=True)
def param_gradient_rows_kernel(rows, h, U, D, L, gKs, gbs):
    """``param_gradient_kernel`` for the layers k in ``rows`` only."""
    w, B = U.shape[1], U.shape[2]
    g = np.empty((w, B))
    gK = np.empty((w, w))
    gb = np.empty(w)
    ones = np.ones(B)
    for i in range(rows.shape[0]):
        k = rows[i]
        _scale_rows(h, D[k], L[k + 1], g)
        _gradient_add(g, U[k], gK, gb, ones, gKs[k], gbs[k])


@njit(cache=True)
def _sub_sum(a, z, b):
    """a = a - (z + b), rounded as z + b formed first (a transposed step subtracted from a)."""
    w, B = a.shape
    for i in range(w):
        ai, zi, bi = a[i], z[i], b[i]
        for s in range(B):
            ai[s] = ai[s] - (zi[s] + bi[s])


@njit(cache=True)
def steps_adjoint_kernel(rows, Ks, h, D, L, out, out_rows, F, forced, minus):
    """Independent transposed steps, k = rows[i]:
    out[out_rows[i]] = L[k+1] + Ks[k]^T (h D[k]*L[k+1]) (+ F[k]); ``minus``: out[out_rows[i]]
    minus that unforced step instead."""
    w, B = L.shape[1], L.shape[2]
    g = np.empty((w, B))
    z = np.empty((w, B)) if minus else g[:0]
    for i in range(rows.shape[0]):
        k, o = rows[i], out_rows[i]
        if minus:
            _scale_rows(h, D[k], L[k + 1], g)
            np.dot(Ks[k].T, g, z)
            _sub_sum(out[o], z, L[k + 1])
        else:
            _layer_adjoint(Ks[k], h, D[k], L[k + 1], out[o], g, F[k] if forced else g, forced)


def param_gradient(h, U, D, L, gKs, gbs, rows=None):
    """gKs, gbs += the parameter gradients of every layer (or of ``rows``), formed in zeroed
    temporaries first (so a layer's result does not depend on what gKs held)."""
    gK = np.zeros(gKs.shape)
    gb = np.zeros(gbs.shape)
    if rows is None:
        param_gradient_kernel(h, U, D, L, gK, gb)
    else:
        param_gradient_rows_kernel(np.asarray(rows, np.int64), h, U, D, L, gK, gb)
    gKs += gK
    gbs += gb


def sweeps_adjoint_grad(runs, Ks, h, U, D, L, F, forced, gKs, gbs, A, arows):
    """sweeps_adjoint_kernel with the gradients, formed as in ``param_gradient``."""
    gK = np.zeros(gKs.shape)
    gb = np.zeros(gbs.shape)
    sweeps_adjoint_kernel(runs, Ks, h, U, D, L, F, forced, True, gK, gb, A, arows)
    gKs += gK
    gbs += gb


def sweep(act_name, Ks, bs, h, U, D, F=None):
    forced = F is not None
    sweep_kernel(ACTIVATIONS[act_name], np.ascontiguousarray(Ks), np.ascontiguousarray(bs), h, U, D,
                 F if forced else U[:0], forced)


def sweep_adjoint(Ks, h, U, D, L, gKs, gbs, F=None):
    gK = np.zeros(gKs.shape)
    gb = np.zeros(gbs.shape)
    forced = F is not None
    sweep_adjoint_kernel(np.ascontiguousarray(Ks), h, U, D, L, gK, gb, F if forced else L[:0], forced)
    gKs += gK
    gbs += gb
