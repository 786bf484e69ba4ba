"""The two-layer residual block as two kernels (ocnet.plugin.kernels): ``-block double``.

    u[n+1] = u[n] + h W2[n] sigma(W1[n] u[n] + b1[n])        theta[n] = (W1, b1, W2)

W1 (q, w), b1 (q,), W2 (w, q), q the hidden width (``-hidden_width``, default 2w), stored in
that order, row-major, in theta (p = 2wq + q).  States are (w, batch) feature-major like the
single block's.  The step keeps a = sigma(z) and d = sigma'(z), z = W1 u + b1, as its cache
(2 q batch doubles), so the transposed step needs no product for them:

    r = h (W2^T lam_next) * d                   (q, batch)
    lam = lam_next + W1^T r
    grad W1 += r u^T,  grad b1 += r 1,  grad W2 += h lam_next a^T

(the chain rule of the step above).  The products go to BLAS through Numba's ``np.dot``; the
activation is ocnet.plugin.activations.activate.  ``args`` = (w, q, activation code).
"""
import numpy as np
from numba import njit

from ocnet.plugin.activations import activate, add_row_sums


@njit(cache=True)
def double_step(n, h, theta, u, out, cache, work, args):
    """out = u + h W2 sigma(W1 u + b1); cache = (sigma(z), sigma'(z))."""
    w, q, act = args
    U = u.reshape(w, -1)
    B = U.shape[1]
    W1 = theta[:q * w].reshape(q, w)
    b1 = theta[q * w:q * w + q]
    W2 = theta[q * w + q:].reshape(w, q)
    A = cache[:q * B].reshape(q, B)
    D = cache[q * B:].reshape(q, B)
    np.dot(W1, U, A)
    activate(act, A, b1, A, D)
    O = out.reshape(w, B)
    np.dot(W2, A, O)
    for s in range(out.shape[0]):
        out[s] = u[s] + h * out[s]


@njit(cache=True)
def double_step_adjoint(n, h, theta, u, cache, lam_next, lam, grad, work, args):
    """lam = lam_next + W1^T r, r = h (W2^T lam_next) * sigma'; grad += (r u^T, r 1, h lam_next a^T)."""
    w, q, act = args
    B = u.shape[0] // w
    W1 = theta[:q * w].reshape(q, w)
    W2 = theta[q * w + q:].reshape(w, q)
    A = cache[:q * B].reshape(q, B)
    D = cache[q * B:]
    Ln = lam_next.reshape(w, B)
    R = work[:q * B].reshape(q, B)
    np.dot(W2.T, Ln, R)
    r = R.ravel()
    for s in range(r.shape[0]):
        r[s] = h * r[s] * D[s]
    if lam.shape[0]:
        np.dot(W1.T, R, lam.reshape(w, B))
        for s in range(lam.shape[0]):
            lam[s] += lam_next[s]
    if grad.shape[0]:
        g1 = work[q * B:q * B + q * w].reshape(q, w)
        g2 = work[q * B + q * w:q * B + 2 * q * w].reshape(w, q)
        np.dot(R, u.reshape(w, B).T, g1)
        np.dot(Ln, A.T, g2)
        o = q * w
        for i in range(q):
            for j in range(w):
                grad[i * w + j] += g1[i, j]
        add_row_sums(R, grad[o:o + q])
        o2 = o + q
        for i in range(w):
            for j in range(q):
                grad[o2 + i * q + j] += h * g2[i, j]
