"""A non-network plugin used by the tests: a scalar-field linear ODE with a control per layer,
written only against the step-level contract (no jitted sweeps), to exercise the defaults."""
import numpy as np

from ocnet.problem import ControlProblem


class Data:
    def __init__(self, target):
        self.target = target


class LinearControl(ControlProblem):
    """u[n+1] = u[n] + h (A u[n] + theta[n]);  u[0] = g;  J = 1/2 |u[N] - target|^2 + tanh-free reg."""

    name = "linear"

    @classmethod
    def declare_options(cls, opts):
        opts.add("dim", int, 3, "state dimension", group=cls.name, bounds="[1,inf)")
        opts.add("gamma_tik", float, 1e-3, "Tikhonov weight", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 1e-3, "smoothness weight", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        d = values["dim"]
        rng = np.random.default_rng(7)
        self.A = -np.eye(d) + 0.3 * rng.standard_normal((d, d))
        self.layer_param_size = d
        self.global_param_size = d
        self.gamma_tik, self.gamma_ddt = values["gamma_tik"], values["gamma_ddt"]
        self.datasets = {"train": Data(rng.standard_normal(d))}

    def state_size(self, data):
        return self.layer_param_size

    def initial_layer_parameters(self, n, rng):
        return rng.standard_normal(self.layer_param_size)

    def initial_global_parameters(self, rng):
        return rng.standard_normal(self.global_param_size)

    def opening(self, g, data, u0):
        u0[:] = g

    def opening_adjoint(self, g, data, lam0, grad_g):
        grad_g += lam0

    def step(self, n, h, theta, u, out, cache):
        out[:] = u + h * (self.A @ u + theta)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        lam[:] = lam_next + h * self.A.T @ lam_next
        grad_theta += h * lam_next

    def terminal(self, g, data, uN, lamN, grad_g):
        r = uN - data.target
        lamN[:] = r
        return 0.5 * r @ r
