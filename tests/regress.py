"""A regression plugin (written by a new-user tester from the docs alone, 2026-12-06): a neural
ODE  x in R^2 -> y = f(x), a smooth scalar target, squared-error loss, mini-batches, metrics
other than accuracy (rmse, r2), a predict; the fast path (KernelProblem, two kernels).

u[0]   = K_in x + b_in                        (global parameters)
u[n+1] = u[n] + h tanh(K_n u[n] + b_n)         (layer parameters theta_n = (K_n, b_n))
y_hat  = c . u[N] + c0                         (global parameters)
J      = 1/2 mean (y_hat - y)^2 + regularisation
"""
import numpy as np
from numba import njit

from ocnet.plugin.kernels import KernelProblem
from ocnet.plugin.activations import tanh_activate


def target(X):
    return np.sin(X[0]) * np.cos(0.8 * X[1]) + 0.1 * X[0] * X[1]


class Data:
    def __init__(self, X, Y):
        self.X, self.Y = X, Y          # X (2, B), Y (B,)


@njit(cache=True)
def ode_step(n, h, theta, u, out, cache, work, args):
    w = args[0]
    U = u.reshape(w, -1)
    O = out.reshape(w, -1)
    D = cache.reshape(w, -1)
    Z = work.reshape(w, -1)
    K = theta[:w * w].reshape(w, w)
    b = theta[w * w:]
    np.dot(K, U, Z)
    tanh_activate(Z, b, Z, D)          # Z = tanh(K U + b), D = tanh'
    for i in range(w):
        for s in range(U.shape[1]):
            O[i, s] = U[i, s] + h * Z[i, s]


@njit(cache=True)
def ode_step_adjoint(n, h, theta, u, cache, lam_next, lam, grad, work, args):
    w = args[0]
    U = u.reshape(w, -1)
    D = cache.reshape(w, -1)
    L = lam_next.reshape(w, -1)
    M = work.reshape(w, -1)
    B = U.shape[1]
    for i in range(w):
        for s in range(B):
            M[i, s] = D[i, s] * L[i, s]
    if lam.size:
        K = theta[:w * w].reshape(w, w)
        Lm = lam.reshape(w, -1)
        np.dot(K.T.copy(), M, Lm)
        for i in range(w):
            for s in range(B):
                Lm[i, s] = L[i, s] + h * Lm[i, s]
    if grad.size:
        for i in range(w):
            for j in range(w):
                acc = 0.0
                for s in range(B):
                    acc += M[i, s] * U[j, s]
                grad[i * w + j] += h * acc
            acc = 0.0
            for s in range(B):
                acc += M[i, s]
            grad[w * w + i] += h * acc


class NeuralODERegression(KernelProblem):
    name = "odereg"
    step_kernel = ode_step
    step_adjoint_kernel = ode_step_adjoint
    data_options = ("ntrain", "nval", "data_seed")

    @classmethod
    def declare_options(cls, opts):
        opts.add("width", int, 8, "state width", group=cls.name, bounds="[1,inf)")
        opts.add("ntrain", int, 1000, "training samples", group=cls.name, bounds="[1,inf)")
        opts.add("nval", int, 200, "validation samples", group=cls.name, bounds="[1,inf)")
        opts.add("data_seed", int, 1, "seed of the samples", group=cls.name, bounds="[0,inf)")
        opts.add("init_scale", float, 0.1, "std of initial layer weights", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_tik", float, 1e-5, "Tikhonov weight", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 1e-5, "smoothness weight", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        w = self.width = values["width"]
        self.init_scale = values["init_scale"]
        self.layer_param_size = w * w + w
        self.global_param_size = 2 * w + w + w + 1
        rng = np.random.default_rng(values["data_seed"])

        def sample(m):
            X = rng.uniform(-2.0, 2.0, (2, m))
            return Data(np.ascontiguousarray(X), target(X))

        self.datasets = {"train": sample(values["ntrain"]), "val": sample(values["nval"])}

    # --- global parameter layout: K_in (w,2), b_in (w), c (w), c0
    def _split(self, g):
        w = self.width
        Kin = g[:2 * w].reshape(w, 2)
        bin_ = g[2 * w:3 * w]
        c = g[3 * w:4 * w]
        c0 = g[4 * w:4 * w + 1]
        return Kin, bin_, c, c0

    def state_size(self, data):
        return self.width * data.X.shape[1]

    def cache_size(self, data):
        return self.width * data.X.shape[1]

    def work_size(self, S):
        return S

    def kernel_args(self, S):
        return (self.width,)

    def data_size(self, data):
        return data.X.shape[1]

    def subset(self, data, idx):
        return Data(np.ascontiguousarray(data.X[:, idx]), data.Y[idx])

    def initial_layer_parameters(self, n, rng):
        w = self.width
        th = np.zeros(self.layer_param_size)
        th[:w * w] = self.init_scale * rng.standard_normal(w * w)
        return th

    def initial_global_parameters(self, rng):
        w = self.width
        g = np.zeros(self.global_param_size)
        g[:2 * w] = rng.standard_normal(2 * w)
        g[3 * w:4 * w] = rng.standard_normal(w) / np.sqrt(w)
        return g

    def opening(self, g, data, u0):
        Kin, bin_, _, _ = self._split(g)
        u0[:] = (Kin @ data.X + bin_[:, None]).ravel()

    def opening_adjoint(self, g, data, lam0, grad_g):
        w = self.width
        L = lam0.reshape(w, -1)
        grad_g[:2 * w] += (L @ data.X.T).ravel()
        grad_g[2 * w:3 * w] += L.sum(axis=1)

    def _predict(self, g, uN):
        _, _, c, c0 = self._split(g)
        return c @ uN.reshape(self.width, -1) + c0[0]

    def terminal(self, g, data, uN, lamN, grad_g):
        w = self.width
        _, _, c, _ = self._split(g)
        U = uN.reshape(w, -1)
        B = U.shape[1]
        R = self._predict(g, uN) - data.Y
        lamN[:] = (np.outer(c, R) / B).ravel()
        grad_g[3 * w:4 * w] += U @ R / B
        grad_g[4 * w] += R.sum() / B
        return 0.5 * float(R @ R) / B

    def metrics(self, g, data, uN):
        R = self._predict(g, uN) - data.Y
        var = float(np.var(data.Y))
        return {"rmse": float(np.sqrt(np.mean(R * R))), "r2": 1.0 - float(np.mean(R * R)) / var}

    def predict(self, g, uN):
        return self._predict(g, uN)


class WrongPredictLength(NeuralODERegression):
    """predict returns 5 values whatever the data (-predictions must not write them as the samples')."""
    def predict(self, g, uN):
        return super().predict(g, uN)[:5]


class WithSampleColumns(NeuralODERegression):
    """sample_columns: the target (written) and two columns -predictions must leave out."""
    def sample_columns(self, data):
        return {"target": data.Y, "prediction": data.Y, "short": data.Y[:3]}

    def prediction_columns(self, g, uN):
        """Twice the prediction (written) and two columns -predictions must leave out."""
        y = self._predict(g, uN)
        return {"double": 2 * y, "target": y, "text": ["a"] * y.size}


class ArrayMetric(NeuralODERegression):
    """A metric that is an array, one that is a string (history.csv cannot record them: one warning
    each; the string was an internal error) and a numpy integer (a column)."""
    def metrics(self, g, data, uN):
        return dict(super().metrics(g, data, uN), residuals=self._predict(g, uN) - data.Y, note="hello",
                    count=np.int64(data.Y.shape[-1]))


class NoneTerminal(NeuralODERegression):
    """terminal returns None (an internal error, another one on 2 ranks)."""
    def terminal(self, g, data, uN, lamN, grad_g):
        super().terminal(g, data, uN, lamN, grad_g)


class ListMetrics(NeuralODERegression):
    """metrics returns a list, not a dict."""
    def metrics(self, g, data, uN):
        return [1.0]


class SubsetNone(NeuralODERegression):
    """subset set to None as an attribute (read as: no mini-batches)."""
    subset = None


class TrainOnly(NeuralODERegression):
    """No "val" data set (a control problem's usual set-up): the training metrics are shown."""
    def __init__(self, values, comm):
        super().__init__(values, comm)
        del self.datasets["val"]
