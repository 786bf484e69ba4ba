"""Optimal control of a 1-D advection-diffusion-reaction (Fisher-KPP) PDE.

u_t = nu u_xx - a u_x + r u (1 - u) + sum_k theta_k(t) b_k(x),  x in (0,1), u = 0 at both ends.
Time stepping (one layer = one time step): IMEX Euler, linear part (diffusion + upwind advection)
implicit, reaction + control explicit.  The state per sample is the nx grid values plus one
accumulator c of the running tracking cost  c += h * 1/2 dx |u_n - y_d(t_n)|^2.
J = mean_samples [ c_N + alpha/2 dx |u_N - y_T|^2 ] + regularisation.

A plugin a new-user test wrote from the docs alone (not a classifier; a state of a few hundred
unknowns per sample); tests/test_stopping.py runs it.
"""
import numpy as np
from numba import njit

from ocnet.plugin.kernels import KernelProblem


@njit(cache=True)
def target(x, t):
    c = 0.3 + 0.4 * t
    return 0.6 * np.exp(-((x - c) / 0.1) ** 2)


@njit(cache=True)
def tri_solve(sub, diag, sup, rhs, cp, out):
    """Thomas algorithm; constant coefficients sub/diag/sup; cp scratch."""
    n = rhs.size
    cp[0] = sup / diag
    out[0] = rhs[0] / diag
    for i in range(1, n):
        m = diag - sub * cp[i - 1]
        cp[i] = sup / m
        out[i] = (rhs[i] - sub * out[i - 1]) / m
    for i in range(n - 2, -1, -1):
        out[i] -= cp[i] * out[i + 1]


@njit(cache=True)
def implicit_matrix(h, nu, adv, dx):
    """(sub, diag, sup) of I - h (diffusion + upwind advection), constant along the grid."""
    return -h * (nu / dx ** 2 + adv / dx), 1.0 + h * (2.0 * nu / dx ** 2 + adv / dx), -h * nu / dx ** 2


@njit(cache=True)
def pde_step(n, h, theta, u, out, cache, work, args):
    nx, nu, adv, react, dx, hfine, B, x = args
    ns = u.size // (nx + 1)
    U = u.reshape(ns, nx + 1)
    O = out.reshape(ns, nx + 1)
    sub, diag, sup = implicit_matrix(h, nu, adv, dx)
    rhs = work[:nx]
    cp = work[nx:2 * nx]
    t = n * hfine
    p = theta.size
    for s in range(ns):
        cost = 0.0
        for i in range(nx):
            ui = U[s, i]
            f = react * ui * (1.0 - ui)
            for k in range(p):
                f += B[i, k] * theta[k]
            rhs[i] = ui + h * f
            d = ui - target(x[i], t)
            cost += d * d
        tri_solve(sub, diag, sup, rhs, cp, O[s, :nx])
        O[s, nx] = U[s, nx] + h * 0.5 * dx * cost


@njit(cache=True)
def pde_step_adjoint(n, h, theta, u, cache, lam_next, lam, grad, work, args):
    nx, nu, adv, react, dx, hfine, B, x = args
    ns = u.size // (nx + 1)
    U = u.reshape(ns, nx + 1)
    Ln = lam_next.reshape(ns, nx + 1)
    sub_m, diag, sup_m = implicit_matrix(h, nu, adv, dx)  # (its transpose: sub and sup swapped)
    z = work[:nx]
    cp = work[nx:2 * nx]
    t = n * hfine
    p = theta.size
    for s in range(ns):
        tri_solve(sup_m, diag, sub_m, Ln[s, :nx], cp, z)
        mc = Ln[s, nx]
        if lam.size:
            L = lam.reshape(ns, nx + 1)
            for i in range(nx):
                ui = U[s, i]
                L[s, i] = z[i] * (1.0 + h * react * (1.0 - 2.0 * ui)) + mc * h * dx * (ui - target(x[i], t))
            L[s, nx] = mc
        if grad.size:
            for k in range(p):
                acc = 0.0
                for i in range(nx):
                    acc += B[i, k] * z[i]
                grad[k] += h * acc


class Data:
    def __init__(self, U0):
        self.U0 = U0                     # (ns, nx)


class ReactionDiffusion(KernelProblem):
    name = "rdpde"
    data_options = ("ntrain", "nval", "data_seed")
    split_options = ("ntrain", "nval", "data_seed")
    step_kernel = pde_step
    step_adjoint_kernel = pde_step_adjoint

    @classmethod
    def declare_options(cls, opts):
        g = cls.name
        opts.add("nx", int, 200, "interior grid points", group=g, bounds="[3,inf)")
        opts.add("nu", float, 0.01, "diffusion", group=g, bounds="[0,inf)")
        opts.add("adv", float, 0.5, "advection speed (>= 0, upwind)", group=g, bounds="[0,inf)")
        opts.add("react", float, 1.0, "Fisher reaction rate", group=g, bounds="[0,inf)")
        opts.add("nact", int, 5, "number of actuators (controls per time step)", group=g, bounds="[1,inf)")
        opts.add("alpha", float, 1.0, "terminal tracking weight", group=g, bounds="[0,inf)")
        opts.add("ntrain", int, 2, "training initial conditions", group=g, bounds="[1,inf)")
        opts.add("nval", int, 1, "validation initial conditions", group=g, bounds="[0,inf)")
        opts.add("data_seed", int, 1, "seed of the initial conditions", group=g, bounds="[0,inf)")
        opts.add("gamma_tik", float, 1e-4, "Tikhonov weight", group=g, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 1e-6, "smoothness weight", group=g, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        self.nx = nx = values["nx"]
        self.nu, self.adv, self.react = values["nu"], values["adv"], values["react"]
        self.alpha = values["alpha"]
        self.dx = 1.0 / (nx + 1)
        self.x = np.arange(1, nx + 1) * self.dx
        self.T, self.N = values["T"], values["N"]
        self.hfine = self.T / self.N
        p = values["nact"]
        centres = (np.arange(p) + 0.5) / p
        self.B = np.ascontiguousarray(np.exp(-((self.x[:, None] - centres[None, :]) / 0.08) ** 2))
        self.layer_param_size = p
        self.global_param_size = 0
        rng = np.random.default_rng(values["data_seed"])
        ntot = values["ntrain"] + values["nval"]
        pool = np.zeros((ntot, nx))
        for s in range(ntot):                       # random smooth initial bumps
            c, w, a = rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.15), rng.uniform(0.3, 0.8)
            pool[s] = a * np.exp(-((self.x - c) / w) ** 2)
        nt = values["ntrain"]
        self.datasets = {"train": Data(pool[:nt])}
        if values["nval"]:
            self.datasets["val"] = Data(pool[nt:])
        self.yT = np.array([target(xi, self.T) for xi in self.x])

    def kernel_args(self, S):
        return (self.nx, self.nu, self.adv, self.react, self.dx, self.hfine, self.B, self.x)

    def work_size(self, S):
        return 2 * self.nx

    def state_size(self, data):
        return data.U0.shape[0] * (self.nx + 1)

    def data_size(self, data):
        return data.U0.shape[0]

    def subset(self, data, idx):
        return Data(data.U0[idx])

    def opening(self, g, data, u0):
        U = u0.reshape(-1, self.nx + 1)
        U[:, :self.nx] = data.U0
        U[:, self.nx] = 0.0

    def terminal(self, g, data, uN, lamN, grad_g):
        U = uN.reshape(-1, self.nx + 1)
        ns = U.shape[0]
        R = U[:, :self.nx] - self.yT[None, :]
        L = lamN.reshape(-1, self.nx + 1)
        L[:, :self.nx] = self.alpha * self.dx * R / ns
        L[:, self.nx] = 1.0 / ns
        return float(np.sum(U[:, self.nx]) / ns + 0.5 * self.alpha * self.dx * np.sum(R * R) / ns)

    def metrics(self, g, data, uN):
        U = uN.reshape(-1, self.nx + 1)
        R = U[:, :self.nx] - self.yT[None, :]
        rmse = np.sqrt(np.mean(R * R, axis=1))
        return {"terminal_rmse": float(rmse.mean()), "running_cost": float(U[:, self.nx].mean())}

    def predict(self, g, uN):
        U = uN.reshape(-1, self.nx + 1)
        R = U[:, :self.nx] - self.yT[None, :]
        return np.sqrt(np.mean(R * R, axis=1))        # per sample: terminal rmse
