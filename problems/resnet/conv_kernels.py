"""Numba kernels of the convolutional residual step u+ = u + h*sigma(conv3x3(u; K) + b) and its
adjoint, for whole batches.

Layout: a state is (H, W, C, B): pixel-major, then channel, the batch contiguous and innermost.
At every pixel the (C, B) block is contiguous, so a 3x3 convolution with zero padding is, pixel by
pixel, one BLAS product (Numba's ``np.dot``) of the (C_out, 9 C_in) kernel matrix with the
(9 C_in, B) patch of the pixel's 3x3 neighbourhood (``im2col`` of one pixel, zero rows outside the
image); the bias, activation, sigma' and update are then one fused pass over the (C, B) block
while it is in cache (``dense_kernels.activate_update``, shared with the dense family, tanh kernel
included).  The forward sweep keeps sigma' per layer, so the adjoint needs no activation.  All
reductions run in one fixed order, so a layer's result does not depend on the rank computing it.

Kernel matrices: ``K2[co, (ty*3 + tx)*C_in + ci] = K[co, ci, ty, tx]``, the tap (ty, tx) reading
pixel (y+ty-1, x+tx-1) (cross-correlation, as PyTorch's conv2d).  The transposed convolution (the
adjoint) is the same operation with ``flip_transpose(K2)``:
``Kt2[ci, (ty*3 + tx)*C_out + co] = K[co, ci, 2-ty, 2-tx]``.
"""
import numpy as np
from numba import njit

from .dense_kernels import ACTIVATIONS, activate_update

__all__ = ["ACTIVATIONS", "flip_transpose"]


def flip_transpose(K2s, cin):
    """Kernel matrices of the transposed convolutions: (nl, C_out, 9 C_in) -> (nl, C_in, 9 C_out)."""
    nl, cout = K2s.shape[0], K2s.shape[1]
    K = K2s.reshape(nl, cout, 3, 3, cin)[:, :, ::-1, ::-1, :]
    return np.ascontiguousarray(K.transpose(0, 4, 2, 3, 1)).reshape(nl, cin, 9 * cout)


@njit(cache=True)
def im2col(src, y, x, P):
    """P[(ty*3 + tx)*C + c] = src[y+ty-1, x+tx-1, c], zero outside the image (src: (H, W, C, B),
    P: (9C, B))."""
    H, W, C, B = src.shape
    for ty in range(3):
        yy = y + ty - 1
        for tx in range(3):
            xx = x + tx - 1
            r0 = (ty * 3 + tx) * C
            inside = 0 <= yy < H and 0 <= xx < W
            for c in range(C):
                pr = P[r0 + c]
                if inside:
                    sr = src[yy, xx, c]
                    for s in range(B):
                        pr[s] = sr[s]
                else:
                    for s in range(B):
                        pr[s] = 0.0


@njit(cache=True)
def conv_activate(act, K2, b, h, src, base, out, dsig, P, z):
    """out = base + h*act(conv(src; K2) + b), dsig = act'(.) per pixel (the residual step with
    base = src; the opening layer with base = 0, h = 1)."""
    H, W = src.shape[0], src.shape[1]
    for y in range(H):
        for x in range(W):
            im2col(src, y, x, P)
            np.dot(K2, P, z)
            activate_update(act, z, b, h, base[y, x], out[y, x], dsig[y, x])


@njit(cache=True)
def _conv_add(Kt2, G, base, out, P, z, F, forced):
    """out = base + conv(G; Kt2) (+ F): the transposed step of the adjoint."""
    H, W, C, B = out.shape
    for y in range(H):
        for x in range(W):
            im2col(G, y, x, P)
            np.dot(Kt2, P, z)
            bo, oo = base[y, x], out[y, x]
            for c in range(C):
                zc, bc, oc = z[c], bo[c], oo[c]
                for s in range(B):
                    oc[s] = bc[s] + zc[s]
                if forced:
                    fc = F[y, x, c]
                    for s in range(B):
                        oc[s] += fc[s]


@njit(cache=True)
def _scaled(h, D, L, G):
    """G = h*D*L elementwise (the adjoint of the activation, sigma' kept from the forward sweep)."""
    d, l, g = D.reshape(-1), L.reshape(-1), G.reshape(-1)
    for i in range(g.shape[0]):
        g[i] = h * d[i] * l[i]


@njit(cache=True)
def correlate(G, src, gK2, gb, P, tK, ones, tb):
    """gK2 += sum over pixels of G[y, x] im2col(src)^T, gb += sum of G (the parameter gradient of
    a convolution with output adjoint G; pixels in a fixed order)."""
    H, W = src.shape[0], src.shape[1]
    for y in range(H):
        for x in range(W):
            im2col(src, y, x, P)
            g = G[y, x]
            np.dot(g, P.T, tK)
            np.dot(g, ones, tb)
            gK2 += tK
            gb += tb


@njit(cache=True)
def _layer_adjoint(K2t, h, Dk, Lnext, Lk, G, P, z, F, forced):
    _scaled(h, Dk, Lnext, G)
    _conv_add(K2t, G, Lnext, Lk, P, z, F, forced)


@njit(cache=True)
def sweeps_kernel(act, runs, K2s, bs, h, U, D, F, forced, keep, shift):
    """Several runs on one array: for each run (a, b) and k = a..b, with j = k - shift,
    U[k] = U[k-1] + h*act(conv(U[k-1]; K2s[j]) + bs[j]) (+ F[j]), D[j] = act'(.)
    (``keep`` false: D goes to a scratch; MGRIT will not read it).  U, D, F: (rows, H, W, C, B).
    shift 0: rows indexed by the point a step goes into (MGRIT); shift 1: by the step (a sweep)."""
    C, B = U.shape[3], U.shape[4]
    P = np.empty((9 * C, B))
    z = np.empty((C, B))
    scratch = np.empty(U.shape[1:])
    for i in range(runs.shape[0]):
        for k in range(runs[i, 0], runs[i, 1] + 1):
            j = k - shift
            conv_activate(act, K2s[j], bs[j], h, U[k - 1], U[k - 1], U[k], D[j] if keep else scratch, P, z)
            if forced:
                _add(U[k], F[j])


@njit(cache=True)
def steps_kernel(act, rows, K2s, bs, h, U, D, out, out_rows, F, forced, keep):
    """Independent steps into rows r = rows[i]: out[out_rows[i]] = U[r-1] + h*act(conv(U[r-1];
    K2s[r]) + bs[r]) (+ F[r]), D[r] = act'(.) (``keep`` false: D to scratch)."""
    C, B = U.shape[3], U.shape[4]
    P = np.empty((9 * C, B))
    z = np.empty((C, B))
    scratch = np.empty(U.shape[1:])
    for i in range(rows.shape[0]):
        r, o = rows[i], out_rows[i]
        conv_activate(act, K2s[r], bs[r], h, U[r - 1], U[r - 1], out[o], D[r] if keep else scratch, P, z)
        if forced:
            _add(out[o], F[r])


@njit(cache=True)
def _add(a, b):
    x, y = a.reshape(-1), b.reshape(-1)
    for i in range(x.shape[0]):
        x[i] += y[i]


@njit(cache=True)
def sweep_adjoint_kernel(K2s, K2ts, h, U, D, L, gK2s, gbs, F, forced):
    """Backward over the block from L[-1]: G = h D[k]*L[k+1], L[k] = L[k+1] + conv^T(G) (+ F[k]),
    gK2s[k] += sum_pixels G im2col(U[k])^T, gbs[k] += sum G.  U, D, L: (rows, H, W, C, B)."""
    C, B = U.shape[3], U.shape[4]
    P = np.empty((9 * C, B))
    z = np.empty((C, B))
    G = np.empty(U.shape[1:])
    tK = np.empty((C, 9 * C))
    tb = np.empty(C)
    ones = np.ones(B)
    for k in range(K2s.shape[0] - 1, -1, -1):
        _layer_adjoint(K2ts[k], h, D[k], L[k + 1], L[k], G, P, z, F[k] if forced else G, forced)
        correlate(G, U[k], gK2s[k], gbs[k], P, tK, ones, tb)


@njit(cache=True)
def param_gradient_kernel(h, U, D, L, gK2s, gbs):
    """gK2s[k] += sum_pixels G im2col(U[k])^T, gbs[k] += sum G with G = h D[k]*L[k+1], for every k
    independently (the adjoint L given at every layer, e.g. by MGRIT)."""
    C, B = U.shape[3], U.shape[4]
    P = np.empty((9 * C, B))
    G = np.empty(U.shape[1:])
    tK = np.empty((C, 9 * C))
    tb = np.empty(C)
    ones = np.ones(B)
    for k in range(D.shape[0]):
        _scaled(h, D[k], L[k + 1], G)
        correlate(G, U[k], gK2s[k], gbs[k], P, tK, ones, tb)


@njit(cache=True)
def sweeps_adjoint_kernel(runs, K2ts, h, D, L, F, forced):
    """Backward runs without gradients: for each run (a, b) and k = b..a,
    L[k] = L[k+1] + conv^T(h D[k]*L[k+1]) (+ F[k]) (the arithmetic of sweep_adjoint_kernel)."""
    C, B = L.shape[3], L.shape[4]
    P = np.empty((9 * C, B))
    z = np.empty((C, B))
    G = np.empty(L.shape[1:])
    for i in range(runs.shape[0]):
        for k in range(runs[i, 1], runs[i, 0] - 1, -1):
            _layer_adjoint(K2ts[k], h, D[k], L[k + 1], L[k], G, P, z, F[k] if forced else G, forced)


@njit(cache=True)
def steps_adjoint_kernel(rows, K2ts, h, D, L, out, out_rows, F, forced):
    """Independent transposed steps, k = rows[i]:
    out[out_rows[i]] = L[k+1] + conv^T(h D[k]*L[k+1]) (+ F[k])."""
    C, B = L.shape[3], L.shape[4]
    P = np.empty((9 * C, B))
    z = np.empty((C, B))
    G = np.empty(L.shape[1:])
    for i in range(rows.shape[0]):
        k, o = rows[i], out_rows[i]
        _layer_adjoint(K2ts[k], h, D[k], L[k + 1], out[o], G, P, z, F[k] if forced else G, forced)


@njit(cache=True)
def opening_kernel(act, K2, b, X, u0, dsig):
    """u0 = act(conv(X; K2) + b), dsig = act'(.): the opening layer (X: (H, W, C_in, B))."""
    cin, B = X.shape[2], X.shape[3]
    cout = K2.shape[0]
    P = np.empty((9 * cin, B))
    z = np.empty((cout, B))
    zero = np.zeros(u0.shape)
    conv_activate(act, K2, b, 1.0, X, zero, u0, dsig, P, z)


@njit(cache=True)
def opening_adjoint_kernel(act, K2, b, X, lam0, gK2, gb):
    """gK2 += sum_pixels (act'(.)*lam0) im2col(X)^T, gb += sum act'(.)*lam0."""
    cin, B = X.shape[2], X.shape[3]
    cout = K2.shape[0]
    u0 = np.empty(lam0.shape)
    D = np.empty(lam0.shape)
    opening_kernel(act, K2, b, X, u0, D)
    G = np.empty(lam0.shape)
    _scaled(1.0, D, lam0, G)
    P = np.empty((9 * cin, B))
    tK = np.empty((cout, 9 * cin))
    tb = np.empty(cout)
    correlate(G, X, gK2, gb, P, tK, np.ones(B), tb)
