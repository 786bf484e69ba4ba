"""The README's plugin example, verbatim below this docstring (tests/test_contract.py keeps them
identical): a linear ODE on a batch of samples, written only against the step-level contract (no
jitted sweeps) to exercise the defaults."""
import numpy as np
from ocnet.plugin.problem import ControlProblem


class Data:
    """Samples: initial values X and targets Y, both (dim, batch)."""
    def __init__(self, X, Y):
        self.X, self.Y = X, Y


class LinearControl(ControlProblem):
    """u[n+1] = u[n] + h (A u[n] + θ[n]) per sample,  u[0] = x + g,  J = ½ mean |u[N] − y|² + regularisation."""
    name = "linear"

    @classmethod
    def declare_options(cls, opts):            # become PETSc options: -dim, -gamma_tik, ...
        opts.add("dim", int, 3, "state dimension", group=cls.name, bounds="[1,inf)")
        # the weights of the default layer_regularization, named by regularization_options
        # (default ("gamma_tik", "gamma_ddt"); None: no layer regularisation)
        opts.add("gamma_tik", float, 1e-3, "Tikhonov weight", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 1e-3, "smoothness weight", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)        # reads the regularisation weights
        d = values["dim"]
        rng = np.random.default_rng(7)
        self.A = -np.eye(d) + 0.3 * rng.standard_normal((d, d))
        self.layer_param_size = self.global_param_size = d
        shift = rng.standard_normal((d, 1))

        def sample(n):                         # y = x/2 + shift + noise
            X = rng.standard_normal((d, n))
            return Data(X, 0.5 * X + shift + 0.1 * rng.standard_normal((d, n)))

        self.datasets = {"train": sample(64), "val": sample(32)}   # 'val': evaluated each iteration

    def state_size(self, data):                # states are (dim, batch), flattened
        return self.layer_param_size * data.X.shape[1]

    def data_size(self, data):                 # data_size + subset: -batch_size works
        return data.X.shape[1]

    def subset(self, data, idx):
        return Data(data.X[:, idx], data.Y[:, idx])

    def initial_layer_parameters(self, n, rng):
        return rng.standard_normal(self.layer_param_size)

    def initial_global_parameters(self, rng):
        return rng.standard_normal(self.global_param_size)

    def opening(self, g, data, u0):                        # u[0] = E(g) = x + g
        u0[:] = (data.X + g[:, None]).ravel()

    def opening_adjoint(self, g, data, lam0, grad_g):      # grad_g += (dE/dg)ᵀ λ[0]
        grad_g += lam0.reshape(len(g), -1).sum(axis=1)

    def step(self, n, h, theta, u, out, cache):            # out = Φ_n(u; θ)
        U = u.reshape(len(theta), -1)
        out[:] = (U + h * (self.A @ U + theta[:, None])).ravel()

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        L = lam_next.reshape(len(theta), -1)
        lam[:] = (L + h * self.A.T @ L).ravel()            # (∂Φ/∂u)ᵀ λ[n+1]
        grad_theta += h * L.sum(axis=1)                    # (∂Φ/∂θ)ᵀ λ[n+1]

    def terminal(self, g, data, uN, lamN, grad_g):         # L(u[N]); λ[N] = ∂L/∂u[N]
        R = uN.reshape(data.Y.shape) - data.Y
        lamN[:] = R.ravel() / R.shape[1]
        return 0.5 * np.sum(R * R) / R.shape[1]

    def metrics(self, g, data, uN):                        # "accuracy" goes to history.csv
        R = uN.reshape(data.Y.shape) - data.Y
        return {"accuracy": float(np.mean(np.abs(R).max(axis=0) < 0.5)), "rmse": float(np.sqrt(np.mean(R * R)))}
