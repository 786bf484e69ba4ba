"""Dahlquist test problem with a control per layer, implicit Euler:
u[n+1] = (u[n] + h theta[n]) / (1 - h lam),  u[0] = g,  J = 1/2 (u[N] - target)^2 + regularisation.
A scalar linear problem for MGRIT convergence studies (the exact two-level theory applies)."""
import numpy as np

from ocnet.plugin.problem import ControlProblem


class Dahlquist(ControlProblem):
    name = "dahlquist"
    layer_param_size = 1
    global_param_size = 1

    @classmethod
    def declare_options(cls, opts):
        opts.add("lambda", float, -1.0, "decay rate lambda (implicit Euler is stable for lambda <= 0)", group=cls.name,
                 bounds="(-inf,inf)")
        opts.add("target", float, 0.5, "target value of u(T)", group=cls.name, bounds="(-inf,inf)")
        opts.add("gamma_tik", float, 1e-4, "Tikhonov weight", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 0.0, "smoothness weight", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        self.lam = values["lambda"]
        self.datasets = {"train": values["target"]}

    def state_size(self, data):
        return 1

    def initial_global_parameters(self, rng):
        return np.ones(1)

    def opening(self, g, data, u0):
        u0[:] = g

    def opening_adjoint(self, g, data, lam0, grad_g):
        grad_g += lam0

    def step(self, n, h, theta, u, out, cache):
        out[:] = (u + h * theta) / (1.0 - h * self.lam)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        lam[:] = lam_next / (1.0 - h * self.lam)
        grad_theta += h * lam

    def terminal(self, g, data, uN, lamN, grad_g):
        r = uN - data
        lamN[:] = r
        return 0.5 * float(r @ r)
