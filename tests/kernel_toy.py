"""A plugin written only as two jitted kernels (ocnet.plugin.kernels): every batched form is
generated.  A layer-dependent residual step with a cache (sigma'):

    u[n+1] = u[n] + h c_n tanh(K[n] u[n] + b[n]),   c_n = 1 + 0.3 sin(0.7 n),   theta = (K, b)

on states (d, batch); u[0] = x + g, J = 1/2 mean |u[N] - y|^2 + regularisation.  ``-toy_act``
picks the activation (the public ocnet.plugin.activations)."""
import numpy as np
from numba import njit

from ocnet.plugin.activations import ACTIVATIONS, activate
from ocnet.plugin.kernels import KernelProblem
from ocnet.plugin.problem import ControlProblem


@njit(cache=True)
def toy_step(n, h, theta, u, out, cache, work, args):
    d, act = args
    U = u.reshape(d, -1)
    B = U.shape[1]
    K = theta[:d * d].reshape(d, d)
    z = work[:d * B].reshape(d, B)
    np.dot(K, U, z)
    activate(act, z, theta[d * d:], z, cache.reshape(d, B))
    c = h * (1.0 + 0.3 * np.sin(0.7 * n))
    zf = z.ravel()
    for s in range(u.shape[0]):
        out[s] = u[s] + c * zf[s]


@njit(cache=True)
def toy_step_adjoint(n, h, theta, u, cache, lam_next, lam, grad, work, args):
    d = args[0]
    B = u.shape[0] // d
    c = h * (1.0 + 0.3 * np.sin(0.7 * n))
    q = work[:d * B]
    for s in range(q.shape[0]):
        q[s] = c * cache[s] * lam_next[s]
    Q = q.reshape(d, B)
    K = theta[:d * d].reshape(d, d)
    if lam.shape[0]:
        L = lam.reshape(d, B)
        np.dot(K.T, Q, L)
        for s in range(lam.shape[0]):
            lam[s] += lam_next[s]
    if grad.shape[0]:
        gK = work[d * B:d * B + d * d].reshape(d, d)
        np.dot(Q, u.reshape(d, B).T, gK)
        for i in range(d):
            for j in range(d):
                grad[i * d + j] += gK[i, j]
            acc = 0.0
            for s in range(B):
                acc += Q[i, s]
            grad[d * d + i] += acc


class Data:
    def __init__(self, X, Y):
        self.X, self.Y = X, Y


class KernelToy(KernelProblem):
    name = "kerneltoy"
    step_kernel = toy_step
    step_adjoint_kernel = toy_step_adjoint

    @classmethod
    def declare_options(cls, opts):
        opts.add("dim", int, 3, "state dimension", group=cls.name, bounds="[1,inf)")
        opts.add("nsamples", int, 24, "training samples", group=cls.name, bounds="[1,inf)")
        opts.add("toy_act", str, "tanh", "activation", choices=tuple(ACTIVATIONS), group=cls.name)
        opts.add("gamma_tik", float, 1e-3, "Tikhonov weight", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 1e-3, "smoothness weight", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        d = self.dim = values["dim"]
        self.layer_param_size = d * d + d
        self.global_param_size = d
        rng = np.random.default_rng(3)
        X = rng.standard_normal((d, values["nsamples"]))
        self.datasets = {"train": Data(X, np.tanh(X[::-1]) + 0.1 * rng.standard_normal(X.shape))}

    def kernel_args(self, S):
        return (self.dim, ACTIVATIONS[self.values["toy_act"]])

    def work_size(self, S):
        return S + self.dim * self.dim

    def state_size(self, data):
        return data.X.size

    def cache_size(self, data):
        return data.X.size

    def initial_layer_parameters(self, n, rng):
        return 0.5 * rng.standard_normal(self.layer_param_size)

    def initial_global_parameters(self, rng):
        return 0.1 * rng.standard_normal(self.global_param_size)

    def opening(self, g, data, u0):
        u0[:] = (data.X + g[:, None]).ravel()

    def opening_adjoint(self, g, data, lam0, grad_g):
        grad_g += lam0.reshape(len(g), -1).sum(axis=1)

    def terminal(self, g, data, uN, lamN, grad_g):
        R = uN.reshape(data.Y.shape) - data.Y
        lamN[:] = R.ravel() / R.shape[1]
        return 0.5 * np.sum(R * R) / R.shape[1]


# ---- kernels called in a way they cannot take (the error report names the plugin's kernel) -------
class ShortKernelArgs(KernelToy):
    """kernel_args returns 1 value where toy_step unpacks 2."""
    def kernel_args(self, S):
        return (self.dim,)


@njit(cache=True)
def short_step(n, h, theta, u, out, cache, args):  # no work argument
    out[:] = u


class ShortSignature(KernelToy):
    step_kernel = short_step
    step_adjoint_kernel = KernelToy.step_adjoint_kernel  # (the pair is this class's: else refused first)


# ---- kernels that write outside the arrays ocnet hands them (tester 43: a crash in the C heap) -----
@njit(cache=True)
def flat_step(n, h, theta, u, out, cache, work, args):
    for s in range(u.shape[0]):  # the cache written flat, one value per state entry
        z = np.tanh(theta[0] * u[s])
        cache[s] = 1.0 - z * z
        out[s] = u[s] + h * z


class ForgottenCache(KernelToy):
    """cache_size left at ControlProblem's default 0 (flat_step writes S values into it)."""
    step_kernel = flat_step
    step_adjoint_kernel = KernelToy.step_adjoint_kernel  # (the pair is this class's)
    cache_size = ControlProblem.cache_size  # (KernelToy's undone: the default, 0)


class HalfCache(KernelToy):
    """toy_step reshapes its cache to (d, batch): half the size raises ValueError inside Numba."""
    def cache_size(self, data):
        return data.X.size // 2


class SmallWork(KernelToy):
    """work_size below what toy_step takes (work[:d*B].reshape(d, B)): Numba's reshape raises."""
    def work_size(self, S):
        return 3


@njit(cache=True)
def scratch_step(n, h, theta, u, out, cache, work, args):
    for s in range(u.shape[0]):  # scratch written flat, one value per state entry, into work
        work[s] = np.tanh(theta[0] * u[s])
    for s in range(u.shape[0]):
        cache[s] = 1.0 - work[s] * work[s]
        out[s] = u[s] + h * work[s]


class ForgottenWork(ForgottenCache):
    """work_size left at KernelProblem's default 0 for a kernel that writes S values of scratch."""
    step_kernel = scratch_step
    step_adjoint_kernel = KernelToy.step_adjoint_kernel

    def cache_size(self, data):
        return data.X.size

    work_size = KernelProblem.work_size  # (KernelToy's undone: the default, 0)


class CapWork(KernelToy):
    """work_size enough for two samples but capped below what the run's batch needs (tester 51:
    the start-up check on two samples passed, the run corrupted the heap)."""
    def work_size(self, S):
        return min(S + self.dim * self.dim, 40)

    def data_size(self, data):  # (subsets: the start-up check steps two samples first)
        return data.X.shape[1]

    def subset(self, data, idx):
        return Data(data.X[:, idx], data.Y[:, idx])
