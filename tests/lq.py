"""A linear-quadratic control plugin with a closed-form optimum (a new-user tester's): a damped
two-mass spring chain x = (p1, p2, v1, v2) steered by a force on each mass, explicit Euler,
x[n+1] = x[n] + h (A x[n] + B u[n]), u[n] in R^2 the layer parameters, J = 1/2 |x[N] - x_T|^2
plus the default layer regularisation.  ``optimum(values)`` solves the regularised normal
equations of the same discrete problem with numpy."""
import numpy as np

from ocnet.plugin.problem import ControlProblem

X0 = np.array([1.0, -0.5, 0.0, 0.0])
XT = np.array([0.0, 0.5, 0.0, 0.0])


def system(k, c):
    """(A (4, 4), B (4, 2)) of the chain with spring stiffness k and damping c."""
    A = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [-2 * k, k, -c, 0], [k, -k, 0, -c]], float)
    return A, np.array([[0, 0], [0, 0], [1, 0], [0, 1]], float)


class Data:
    def __init__(self, x0, target):
        self.x0, self.target = x0, target


class SpringMass(ControlProblem):
    name = "springmass"
    option_defaults = {"N": 64, "T": 4.0}

    @classmethod
    def declare_options(cls, opts):
        opts.add("spring_k", float, 1.0, "spring stiffness", group=cls.name, bounds="[0,inf)")
        opts.add("damping", float, 0.1, "damping coefficient", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_tik", float, 1e-3, "Tikhonov weight", group=cls.name, bounds="[0,inf)")
        opts.add("gamma_ddt", float, 0.0, "smoothness weight", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        self.A, self.B = system(values["spring_k"], values["damping"])
        self.layer_param_size, self.global_param_size = 2, 0
        self.datasets = {"train": Data(X0, XT)}

    def state_size(self, data):
        return 4

    def opening(self, g, data, u0):
        u0[:] = data.x0

    def step(self, n, h, theta, u, out, cache):
        out[:] = u + h * (self.A @ u + self.B @ theta)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        lam[:] = lam_next + h * (self.A.T @ lam_next)
        grad_theta += h * (self.B.T @ lam_next)

    def terminal(self, g, data, uN, lamN, grad_g):
        r = uN - data.target
        lamN[:] = r
        return 0.5 * float(r @ r)

    def metrics(self, g, data, uN):
        return {"dist": float(np.linalg.norm(uN - data.target))}


def optimum(values):
    """(controls (N, 2), J) minimising 1/2 |S u + r0|^2 + gamma_tik/2 |u|^2 + gamma_ddt/2
    sum_{n=1}^{N-1} |(u[n] - u[n-1])/h|^2, x[N] = M^N x0 + S u by superposition (M = I + h A)."""
    N, h = values["N"], values["T"] / values["N"]
    A, B = system(values["spring_k"], values["damping"])
    M = np.eye(4) + h * A
    powers = [np.eye(4)]
    for _ in range(N):
        powers.append(M @ powers[-1])
    S = np.hstack([powers[N - 1 - n] @ (h * B) for n in range(N)])  # (4, 2N)
    r0 = powers[N] @ X0 - XT
    D = np.kron(np.diff(np.eye(N), axis=0), np.eye(2))  # (2(N-1), 2N): u[n] - u[n-1]
    H = S.T @ S + values["gamma_tik"] * np.eye(2 * N) + values["gamma_ddt"] / h**2 * D.T @ D
    u = np.linalg.solve(H, -S.T @ r0)
    J = 0.5 * np.sum((S @ u + r0) ** 2) + 0.5 * values["gamma_tik"] * u @ u \
        + 0.5 * values["gamma_ddt"] / h**2 * np.sum((D @ u) ** 2)
    return u.reshape(N, 2), J
