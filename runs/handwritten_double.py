"""Benchmark baseline, outside the framework: the two-layer residual block on Peaks with all nine
batched forms written by hand in Numba (as a user who knows Numba would, after dense_kernels).

    u[n+1] = u[n] + h W2[n] sigma(W1[n] u[n] + b1[n])        theta[n] = (W1 (q,w), b1 (q,), W2 (w,q))

Same parameters, initial design, cache layout (sigma(z), sigma'(z)) and arithmetic as the built-in
``-block double`` (problems/resnet/double_kernels.py), so both give the same iterates; it differs
only in how the batched forms are written: here every form is its own fused jitted loop over
(layers, width, batch) arrays (the forcing added in the update's pass, gradients of a layer
accumulated in one temporary), there they are generated from two kernels.

    -problem handwritten_double:HandwrittenDouble   (with runs/ on PYTHONPATH; runs/bench_compare.py)

Options as Peaks' (-width, -hidden_width, -activation, ...); -block is ignored (always double).
"""
import numpy as np
from numba import njit

from ocnet.plugin.activations import activate, add_row_sums
from ocnet_problems.peaks import Peaks


@njit(cache=True)
def _fwd(W1, b1, W2, h, act, u, out, a, d, t, F, forced, minus):
    """out = u + h W2 sigma(W1 u + b1) (+ F) [minus: out -= ...]; a, d = sigma, sigma'."""
    np.dot(W1, u, a)
    activate(act, a, b1, a, d)
    np.dot(W2, a, t)
    w, B = u.shape
    for i in range(w):
        ui, oi, ti = u[i], out[i], t[i]
        if minus:
            for s in range(B):
                oi[s] = oi[s] - (ui[s] + h * ti[s])
        elif forced:
            fi = F[i]
            for s in range(B):
                oi[s] = (ui[s] + h * ti[s]) + fi[s]
        else:
            for s in range(B):
                oi[s] = ui[s] + h * ti[s]


@njit(cache=True)
def _adj(W1, W2, h, u, a, d, Ln, out, r, t, F, forced, minus, want_lam, grad, gW1, gb1, gW2, g1, g2):
    """r = h (W2^T Ln) * d; out = Ln + W1^T r (+ F) [minus: out -= Ln + W1^T r];
    with ``grad``: gW1 += r u^T, gb1 += r 1, gW2 += h Ln a^T."""
    np.dot(W2.T, Ln, r)
    q, B = r.shape
    for i in range(q):
        ri, di = r[i], d[i]
        for s in range(B):
            ri[s] = h * ri[s] * di[s]
    if want_lam:
        np.dot(W1.T, r, t)
        w = t.shape[0]
        for i in range(w):
            li, ti, oi = Ln[i], t[i], out[i]
            if minus:
                for s in range(B):
                    oi[s] = oi[s] - (ti[s] + li[s])
            elif forced:
                fi = F[i]
                for s in range(B):
                    oi[s] = (ti[s] + li[s]) + fi[s]
            else:
                for s in range(B):
                    oi[s] = ti[s] + li[s]
    if grad:
        np.dot(r, u.T, g1)
        np.dot(Ln, a.T, g2)
        gW1 += g1
        add_row_sums(r, gb1)
        w = g2.shape[0]
        for i in range(w):
            for j in range(q):
                gW2[i, j] += h * g2[i, j]


@njit(cache=True)
def sweeps_k(act, runs, W1s, b1s, W2s, h, U, C, F, forced, keep, Aout, arows):
    q = W1s.shape[1]
    w, B = U.shape[1], U.shape[2]
    t = np.empty((w, B))
    scr = np.empty((2 * q, B))
    for i in range(runs.shape[0]):
        for k in range(runs[i, 0], runs[i, 1] + 1):
            c = C[k] if keep else scr
            _fwd(W1s[k], b1s[k], W2s[k], h, act, U[k - 1], U[k], c[:q], c[q:], t, F[k] if forced else t, forced,
                 False)
        if arows.shape[0] and arows[i] >= 0:
            k = runs[i, 1] + 1
            c = C[k] if keep else scr
            _fwd(W1s[k], b1s[k], W2s[k], h, act, U[k - 1], Aout[arows[i]], c[:q], c[q:], t, F[k] if forced else t,
                 forced, False)


@njit(cache=True)
def sweep_k(act, W1s, b1s, W2s, h, U, C, F, forced):
    q = W1s.shape[1]
    w, B = U.shape[1], U.shape[2]
    t = np.empty((w, B))
    for k in range(W1s.shape[0]):
        _fwd(W1s[k], b1s[k], W2s[k], h, act, U[k], U[k + 1], C[k, :q], C[k, q:], t, F[k] if forced else t, forced,
             False)


@njit(cache=True)
def steps_k(act, rows, W1s, b1s, W2s, h, U, C, out, out_rows, F, forced, keep, minus):
    q = W1s.shape[1]
    w, B = U.shape[1], U.shape[2]
    t = np.empty((w, B))
    scr = np.empty((2 * q, B))
    for i in range(rows.shape[0]):
        r = rows[i]
        c = C[r] if keep else scr
        _fwd(W1s[r], b1s[r], W2s[r], h, act, U[r - 1], out[out_rows[i]], c[:q], c[q:], t, F[r] if forced else t,
             forced, minus)


@njit(cache=True)
def sweeps_adjoint_k(runs, W1s, W2s, h, U, C, L, F, forced, grad, gW1, gb1, gW2, Aout, arows):
    q, w = W1s.shape[1], W1s.shape[2]
    B = L.shape[2]
    r = np.empty((q, B))
    t = np.empty((w, B))
    g1 = np.empty((q, w))
    g2 = np.empty((w, q))
    for i in range(runs.shape[0]):
        for k in range(runs[i, 1], runs[i, 0] - 1, -1):
            _adj(W1s[k], W2s[k], h, U[k], C[k, :q], C[k, q:], L[k + 1], L[k], r, t, F[k] if forced else t, forced,
                 False, True, grad, gW1[k] if grad else g1, gb1[k] if grad else g1[0], gW2[k] if grad else g2, g1, g2)
        if arows.shape[0] and arows[i] >= 0:
            k = runs[i, 0] - 1
            _adj(W1s[k], W2s[k], h, U[k], C[k, :q], C[k, q:], L[k + 1], Aout[arows[i]], r, t, F[k] if forced else t,
                 forced, False, True, grad, gW1[k] if grad else g1, gb1[k] if grad else g1[0],
                 gW2[k] if grad else g2, g1, g2)


@njit(cache=True)
def steps_adjoint_k(rows, W1s, W2s, h, U, C, L, out, out_rows, F, forced, minus):
    q, w = W1s.shape[1], W1s.shape[2]
    B = L.shape[2]
    r = np.empty((q, B))
    t = np.empty((w, B))
    g1 = np.empty((q, w))
    g2 = np.empty((w, q))
    for i in range(rows.shape[0]):
        k = rows[i]
        _adj(W1s[k], W2s[k], h, U[k], C[k, :q], C[k, q:], L[k + 1], out[out_rows[i]], r, t, F[k] if forced else t,
             forced, minus, True, False, g1, g1[0], g2, g1, g2)


@njit(cache=True)
def param_gradient_k(rows, all_rows, W1s, W2s, h, U, C, L, gW1, gb1, gW2):
    q, w = W1s.shape[1], W1s.shape[2]
    B = L.shape[2]
    r = np.empty((q, B))
    t = np.empty((w, B))
    g1 = np.empty((q, w))
    g2 = np.empty((w, q))
    n = W1s.shape[0] if all_rows else rows.shape[0]
    for i in range(n):
        k = i if all_rows else rows[i]
        _adj(W1s[k], W2s[k], h, U[k], C[k, :q], C[k, q:], L[k + 1], t, r, t, t, False, False, False, True,
             gW1[k], gb1[k], gW2[k], g1, g2)


class HandwrittenDouble(Peaks):
    """Peaks with the two-layer block, every batched form hand-written (a benchmark baseline)."""

    name = "peaks"  # the same model as -problem peaks -block double (its run folders load either way)

    def __init__(self, values, comm):
        super().__init__(dict(values, block="single"), comm)  # the data, opening and classifier
        self.block = "double"
        w = self.width
        self.hidden = q = values["hidden_width"] or 2 * w
        self.layer_param_size = 2 * w * q + q

    def initial_layer_parameters(self, n, rng):  # as ResNet's -block double
        w, q, s = self.width, self.hidden, self.values["init_layer"]
        W1 = rng.standard_normal((q, w)) * s / np.sqrt(w)
        W2 = rng.standard_normal((w, q)) * s / np.sqrt(q)
        return np.concatenate([W1.ravel(), np.zeros(q), W2.ravel()])

    def cache_size(self, data):
        return 2 * self.hidden * data.batch

    # ---- views ---------------------------------------------------------------------------
    def _split(self, thetas):
        w, q = self.width, self.hidden
        nl = thetas.shape[0]
        return (thetas[:, :q * w].reshape(nl, q, w), thetas[:, q * w:q * w + q],
                thetas[:, q * w + q:].reshape(nl, w, q))

    def _params(self, thetas):
        return tuple(np.ascontiguousarray(a) for a in self._split(np.ascontiguousarray(thetas)))

    def _st(self, A):
        return A.reshape(A.shape[0], self.width, A.shape[1] // self.width)

    def _ct(self, C):
        return C.reshape(C.shape[0], 2 * self.hidden, C.shape[1] // (2 * self.hidden))

    def _ahead(self, ahead, L):
        if ahead is None:
            return self._st(L[:0]), np.zeros(0, np.int64)
        return self._st(ahead[0]), np.asarray(ahead[1], np.int64)

    # ---- the nine forms ----------------------------------------------------------------------
    def step(self, n, h, theta, u, out, cache):
        U = np.stack([u, out])
        self.sweep(n, h, theta[None], U, cache[None])
        out[:] = U[1]

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        L = np.stack([lam, lam_next])
        self.sweep_adjoint(n, h, theta[None], np.stack([u, u]), cache[None], L, grad_theta[None])
        lam[:] = L[0]

    def sweep(self, n0, h, thetas, U, C, F=None):
        W1s, b1s, W2s = self._params(thetas)
        sweep_k(self.act, W1s, b1s, W2s, h, self._st(U), self._ct(C), self._st(U[:0] if F is None else F),
                F is not None)

    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True, ahead=None):
        W1s, b1s, W2s = self._params(thetas)
        sweeps_k(self.act, np.asarray(runs, np.int64).reshape(-1, 2), W1s, b1s, W2s, h, self._st(U), self._ct(C),
                 self._st(U[:0] if F is None else F), F is not None, cache, *self._ahead(ahead, U))

    def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True, minus=False):
        W1s, b1s, W2s = self._params(thetas)
        steps_k(self.act, np.asarray(rows, np.int64), W1s, b1s, W2s, h, self._st(U), self._ct(C), self._st(out),
                np.asarray(out_rows, np.int64), self._st(U[:0] if F is None else F), F is not None, cache, minus)

    def _grads(self, G):
        gW1, gb1, gW2 = self._split(G)
        return np.zeros(gW1.shape), np.zeros(gb1.shape), np.zeros(gW2.shape)

    def _add_grads(self, G, parts):
        for dst, src in zip(self._split(G), parts):
            dst += src

    def sweep_adjoint(self, n0, h, thetas, U, C, Lam, G, F=None):
        W1s, _, W2s = self._params(thetas)
        parts = self._grads(G)
        runs = np.array([[0, thetas.shape[0] - 1]], np.int64)
        sweeps_adjoint_k(runs, W1s, W2s, h, self._st(U), self._ct(C), self._st(Lam),
                         self._st(Lam[:0] if F is None else F), F is not None, True, *parts, self._st(Lam[:0]),
                         np.zeros(0, np.int64))
        self._add_grads(G, parts)

    def parameter_gradient(self, n0, h, thetas, U, C, Lam, G, rows=None):
        W1s, _, W2s = self._params(thetas)
        parts = self._grads(G)
        param_gradient_k(np.zeros(0, np.int64) if rows is None else np.asarray(rows, np.int64), rows is None,
                         W1s, W2s, h, self._st(U), self._ct(C), self._st(Lam), *parts)
        self._add_grads(G, parts)

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None, grad=None, ahead=None):
        W1s, _, W2s = self._params(thetas)
        parts = self._grads(thetas[:0]) if grad is None else self._grads(grad)
        sweeps_adjoint_k(np.asarray(runs, np.int64).reshape(-1, 2), W1s, W2s, h, self._st(U), self._ct(C),
                         self._st(Lam), self._st(Lam[:0] if F is None else F), F is not None, grad is not None,
                         *parts, *self._ahead(ahead, Lam))
        if grad is not None:
            self._add_grads(grad, parts)

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None, minus=False):
        W1s, _, W2s = self._params(thetas)
        steps_adjoint_k(np.asarray(rows, np.int64), W1s, W2s, h, self._st(U), self._ct(C), self._st(Lam),
                        self._st(out), np.asarray(out_rows, np.int64), self._st(Lam[:0] if F is None else F),
                        F is not None, minus)
