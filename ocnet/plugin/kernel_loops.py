"""Template of the compiled batched forms that ``ocnet.plugin.kernels`` builds from two kernels.

Not imported as is: ``kernels.compile_forms`` copies this source into a module of its own per
kernel pair (file name = a hash of the kernels' source files), sets the globals ``STEP`` and
``STEP_ADJOINT`` to the plugin's jitted kernels before the first call, and Numba caches the
compiled loops next to that file (``cache=True``), so the kernels are inlined into the loops
and a second run loads them from disk.  The loops release the GIL (``nogil=True``): while a kernel
runs, ocnet's signal watcher thread (ocnet.base.signals) can still end the process on a second
signal.

Kernel signatures (flat C-contiguous float64 rows; ``args`` the plugin's constant tuple):

    STEP(n, h, theta, u, out, cache, work, args)                 out[:] = Phi_n(u; theta, h), cache filled
    STEP_ADJOINT(n, h, theta, u, cache, lam_next, lam, grad, work, args)
        lam[:] = (dPhi_n/du)^T lam_next  (skipped when lam.size == 0)
        grad  += (dPhi_n/dtheta)^T lam_next  (skipped when grad.size == 0)

Row arrays that MGRIT hands over back to front (adjoint levels) arrive flipped, with a flag:
``_row(X, k, rev)`` is row k of the original array.  Every loop below is the contract's
semantics (CONTRACT.md, "Batched forms") written once.
"""
import numpy as np
from numba import njit

STEP = None
STEP_ADJOINT = None


@njit(inline="always")
def _row(X, k, rev):
    return X[X.shape[0] - 1 - k] if rev else X[k]


@njit(inline="always")
def _add(a, b):
    for s in range(a.shape[0]):
        a[s] += b[s]


@njit(inline="always")
def _sub(a, b):
    for s in range(a.shape[0]):
        a[s] = a[s] - b[s]


@njit(cache=True, nogil=True)
def sweep(n0, h, thetas, U, C, F, forced, nwork, args):
    """U[k+1] = Phi_{n0+k}(U[k]) (+ F[k]), C[k] its cache, k = 0..K-1."""
    work = np.empty(nwork)
    for k in range(thetas.shape[0]):
        STEP(n0 + k, h, thetas[k], U[k], U[k + 1], C[k], work, args)
        if forced:
            _add(U[k + 1], F[k])


@njit(cache=True, nogil=True)
def sweep_adjoint(n0, h, thetas, U, C, Lam, G, F, forced, nwork, args):
    """Lam[k] = (dPhi_{n0+k}/du at U[k])^T Lam[k+1] (+ F[k]) backwards, G[k] += (dPhi/dtheta)^T Lam[k+1]."""
    work = np.empty(nwork)
    for k in range(thetas.shape[0] - 1, -1, -1):
        STEP_ADJOINT(n0 + k, h, thetas[k], U[k], C[k], Lam[k + 1], Lam[k], G[k], work, args)
        if forced:
            _add(Lam[k], F[k])


@njit(cache=True, nogil=True)
def parameter_gradient(n0, h, thetas, U, C, Lam, G, rows, all_rows, nwork, args):
    """G[k] += (dPhi_{n0+k}/dtheta)^T Lam[k+1] for every k (all_rows) or the k in ``rows``."""
    work = np.empty(nwork)
    none = np.empty(0)
    n = thetas.shape[0] if all_rows else rows.shape[0]
    for i in range(n):
        k = i if all_rows else rows[i]
        STEP_ADJOINT(n0 + k, h, thetas[k], U[k], C[k], Lam[k + 1], none, G[k], work, args)


@njit(cache=True, nogil=True)
def sweeps(runs, ns, h, thetas, U, C, F, forced, keep, A, arows, nwork, args):
    """For each run (a, b), k = a..b: U[k] = Phi_{ns[k]}(U[k-1]) (+ F[k]), cache C[k] (``keep``
    false: a scratch row); where arows[i] >= 0 also the look-ahead step into A[arows[i]]."""
    work = np.empty(nwork)
    scratch = np.empty(C.shape[1])
    for i in range(runs.shape[0]):
        for k in range(runs[i, 0], runs[i, 1] + 1):
            STEP(ns[k], h, thetas[k], U[k - 1], U[k], C[k] if keep else scratch, work, args)
            if forced:
                _add(U[k], F[k])
        if arows.shape[0] and arows[i] >= 0:
            k = runs[i, 1] + 1
            STEP(ns[k], h, thetas[k], U[k - 1], A[arows[i]], C[k] if keep else scratch, work, args)
            if forced:
                _add(A[arows[i]], F[k])


@njit(cache=True, nogil=True)
def steps(rows, ns, h, thetas, U, C, out, out_rows, F, forced, keep, minus, nwork, args):
    """out[out_rows[i]] = Phi_{ns[r]}(U[r-1]) (+ F[r]), r = rows[i]; ``minus``: out[..] -= the step."""
    work = np.empty(nwork)
    scratch = np.empty(C.shape[1])
    tmp = np.empty(U.shape[1] if minus else 0)
    for i in range(rows.shape[0]):
        r = rows[i]
        o = out[out_rows[i]]
        if minus:
            STEP(ns[r], h, thetas[r], U[r - 1], tmp, C[r] if keep else scratch, work, args)
            _sub(o, tmp)
        else:
            STEP(ns[r], h, thetas[r], U[r - 1], o, C[r] if keep else scratch, work, args)
            if forced:
                _add(o, F[r])


@njit(cache=True, nogil=True)
def sweeps_adjoint(runs, ns, h, thetas, U, C, Lam, lrev, F, forced, frev, G, grad, A, arows, nwork, args):
    """For each run (a, b), k = b..a: Lam[k] = (dPhi_{ns[k]}/du at U[k])^T Lam[k+1] (+ F[k]), with
    ``grad`` also G[k] += (dPhi/dtheta)^T Lam[k+1]; where arows[i] >= 0 the look-ahead step
    k = a-1 into A[arows[i]] (and its gradient)."""
    work = np.empty(nwork)
    none = np.empty(0)
    for i in range(runs.shape[0]):
        for k in range(runs[i, 1], runs[i, 0] - 1, -1):
            lk = _row(Lam, k, lrev)
            STEP_ADJOINT(ns[k], h, thetas[k], U[k], C[k], _row(Lam, k + 1, lrev), lk, G[k] if grad else none,
                         work, args)
            if forced:
                _add(lk, _row(F, k, frev))
        if arows.shape[0] and arows[i] >= 0:
            k = runs[i, 0] - 1
            a = A[arows[i]]
            STEP_ADJOINT(ns[k], h, thetas[k], U[k], C[k], _row(Lam, k + 1, lrev), a, G[k] if grad else none,
                         work, args)
            if forced:
                _add(a, _row(F, k, frev))


@njit(cache=True, nogil=True)
def steps_adjoint(rows, ns, h, thetas, U, C, Lam, lrev, out, out_rows, F, forced, frev, minus, nwork, args):
    """out[out_rows[i]] = (dPhi_{ns[k]}/du at U[k])^T Lam[k+1] (+ F[k]), k = rows[i]; ``minus``: -=."""
    work = np.empty(nwork)
    none = np.empty(0)
    tmp = np.empty(U.shape[1] if minus else 0)
    for i in range(rows.shape[0]):
        k = rows[i]
        o = out[out_rows[i]]
        if minus:
            STEP_ADJOINT(ns[k], h, thetas[k], U[k], C[k], _row(Lam, k + 1, lrev), tmp, none, work, args)
            _sub(o, tmp)
        else:
            STEP_ADJOINT(ns[k], h, thetas[k], U[k], C[k], _row(Lam, k + 1, lrev), o, none, work, args)
            if forced:
                _add(o, _row(F, k, frev))


@njit(cache=True, nogil=True)
def one_step(n, h, theta, u, out, cache, nwork, args):
    """``step`` from Python: one kernel call with its own work array."""
    STEP(n, h, theta, u, out, cache, np.empty(nwork), args)


@njit(cache=True, nogil=True)
def one_step_adjoint(n, h, theta, u, cache, lam_next, lam, grad, nwork, args):
    """``step_adjoint`` from Python."""
    STEP_ADJOINT(n, h, theta, u, cache, lam_next, lam, grad, np.empty(nwork), args)
