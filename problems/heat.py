"""1-D heat equation u_t = kappa u_xx + theta(t) b(x) on (0,1), zero Dirichlet ends, implicit Euler:
(I - h kappa L) u[n+1] = u[n] + h theta[n] b,  u[0] = sin(pi x),  J = dx/2 |u[N] - target|^2 + reg.
One control amplitude per layer; the step is a tridiagonal solve (factorised once per step size)."""
import numpy as np
from scipy.linalg import solve_banded

from ocnet.plugin.problem import ControlProblem


class Heat(ControlProblem):
    name = "heat"
    layer_param_size = 1
    global_param_size = 0

    @classmethod
    def declare_options(cls, opts):
        opts.add("nx", int, 64, "interior grid points", group=cls.name, bounds="[1,inf)")
        opts.add("kappa", float, 0.1, "diffusivity", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_tik", float, 1e-4, "Tikhonov weight", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 1e-4, "smoothness weight", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        nx = values["nx"]
        self.nx, self.kappa = nx, values["kappa"]
        self.dx = 1.0 / (nx + 1)
        self.x = np.arange(1, nx + 1) * self.dx
        self.b = np.exp(-100 * (self.x - 0.3) ** 2)
        self.datasets = {"train": 0.5 * np.sin(2 * np.pi * self.x) ** 2}
        self._bands = {}

    def state_size(self, data):
        return self.nx

    def _ab(self, h):
        """Banded form of I - h kappa L (symmetric, so it is its own transpose)."""
        if h not in self._bands:
            r = h * self.kappa / self.dx**2
            ab = np.empty((3, self.nx))
            ab[0], ab[1], ab[2] = -r, 1 + 2 * r, -r
            self._bands[h] = ab
        return self._bands[h]

    def opening(self, g, data, u0):
        u0[:] = np.sin(np.pi * self.x)

    def step(self, n, h, theta, u, out, cache):
        out[:] = solve_banded((1, 1), self._ab(h), u + h * theta[0] * self.b)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        lam[:] = solve_banded((1, 1), self._ab(h), lam_next)
        grad_theta += h * (self.b @ lam)

    def terminal(self, g, data, uN, lamN, grad_g):
        r = uN - data
        lamN[:] = self.dx * r
        return 0.5 * self.dx * float(r @ r)
