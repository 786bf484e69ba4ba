"""Plugins that reuse built-ins (tests/test_kernel_plugin.py): safe reuse of inherited batched forms."""
import numpy as np
from numba import njit

from ocnet.plugin.kernels import KernelProblem, use_kernels
from ocnet_problems.peaks import Peaks
from tests.kernel_toy import KernelToy, toy_step, toy_step_adjoint
from tests.toy import LinearControl
from tests.toy_fast import LinearControlFast


class HalfStepPeaks(Peaks):
    """Peaks with another step, u + (h/2) tanh(K u + b), written at step level only: the ResNet's
    jitted batched forms (written for its own step) must not run; the generic loops take over."""

    def cache_size(self, data):
        return 0

    def step(self, n, h, theta, u, out, cache):
        w = self.width
        K, b = theta[:w * w].reshape(w, w), theta[w * w:]
        U = u.reshape(w, -1)
        out[:] = (U + 0.5 * h * np.tanh(K @ U + b[:, None])).ravel()

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        w = self.width
        K, b = theta[:w * w].reshape(w, w), theta[w * w:]
        U = u.reshape(w, -1)
        t = np.tanh(K @ U + b[:, None])
        L = lam_next.reshape(w, -1)
        r = 0.5 * h * (1 - t * t) * L
        lam[:] = (L + K.T @ r).ravel()
        grad_theta[:w * w] += (r @ U.T).ravel()
        grad_theta[w * w:] += r.sum(axis=1)


class StepOnlyPeaks(Peaks):
    """Overrides step but inherits step_adjoint from the ResNet, written for its own step: one line."""

    def step(self, n, h, theta, u, out, cache):
        HalfStepPeaks.step(self, n, h, theta, u, out, cache)


@njit(cache=True)
def wrong_adjoint(n, h, theta, u, cache, lam_next, lam, grad, work, args):
    """The toy's transposed step without the transpose of K (a wrong kernel)."""
    d = args[0]
    B = u.shape[0] // d
    c = h * (1.0 + 0.3 * np.sin(0.7 * n))
    q = work[:d * B]
    for s in range(q.shape[0]):
        q[s] = c * cache[s] * lam_next[s]
    K = theta[:d * d].reshape(d, d)
    if lam.shape[0]:
        np.dot(K, q.reshape(d, B), lam.reshape(d, B))
        for s in range(lam.shape[0]):
            lam[s] += lam_next[s]
    if grad.shape[0]:
        Q = q.reshape(d, B)
        gK = work[d * B:d * B + d * d].reshape(d, d)
        np.dot(Q, u.reshape(d, B).T, gK)
        for i in range(d):
            for j in range(d):
                grad[i * d + j] += gK[i, j]
            grad[d * d + i] += Q[i].sum()


class WrongKernelToy(KernelToy):
    """Replaces only the transposed kernel, wrongly: -check_adjoint fails, naming the kernels.
    (It says it keeps the step; without that line the run is refused at start-up: test_contract.)"""
    step_kernel = KernelToy.step_kernel
    step_adjoint_kernel = wrong_adjoint


class FasterPeaks(Peaks):
    """The same model as Peaks in another module and class (as a faster implementation would be):
    -load accepts Peaks' run folders (the model is its name and parameter shapes)."""


class KernelPeaks(Peaks):
    """Peaks' data, opening and classifier with a new block from two kernels, by ``use_kernels``
    (the documented way, docs/plugins/fast.md): here the toy's layer-dependent tanh step."""

    def __init__(self, values, comm):
        super().__init__(values, comm)
        w = self.width
        self.layer_param_size = w * w + w
        use_kernels(self, toy_step, toy_step_adjoint)

    def kernel_args(self, S):
        return (self.width, 0)

    def work_size(self, S):
        return S + self.width * self.width


class EmptyKernelProblem(KernelProblem):
    """A KernelProblem without kernels: one line at construction."""
    name = "nokernels"
    regularization_options = None


class PythonStep(LinearControl):
    """LinearControl with the factor 1.5 on h: the reference for PythonStepFast."""

    def step(self, n, h, theta, u, out, cache):
        LinearControl.step(self, n, 1.5 * h, theta, u, out, cache)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        LinearControl.step_adjoint(self, n, 1.5 * h, theta, u, cache, lam_next, lam, grad_theta)


class PythonStepFast(LinearControlFast):
    """A kernel plugin whose subclass writes its step in Python (LinearControl's, with a factor
    1.5 on h so that running the kernels' forms instead would show): the Python step runs."""

    def step(self, n, h, theta, u, out, cache):
        LinearControl.step(self, n, 1.5 * h, theta, u, out, cache)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        LinearControl.step_adjoint(self, n, 1.5 * h, theta, u, cache, lam_next, lam, grad_theta)


class PythonStepOnlyFast(LinearControlFast):
    """Overrides step in Python but keeps the kernels' transpose: one line."""

    def step(self, n, h, theta, u, out, cache):
        LinearControl.step(self, n, h, theta, u, out, cache)


class DampedLinearControl(LinearControl):
    """Another step at step level, with the parent's transpose (a plain-Python plugin, no batched
    forms): the gradient would be wrong; refused at start-up with one line."""

    def step(self, n, h, theta, u, out, cache):
        super().step(n, h, theta, u, out, cache)
        out *= 0.9


class CountingLinearControl(LinearControl):
    """A step that only wraps the parent's (it counts calls), and says that its transpose still
    holds: runs, with the parent's history."""
    step_adjoint = LinearControl.step_adjoint

    def step(self, n, h, theta, u, out, cache):
        self.calls = getattr(self, "calls", 0) + 1
        super().step(n, h, theta, u, out, cache)


class CountingFast(LinearControlFast):
    """A Python step that wraps a kernel plugin's (it counts calls) and says its transpose holds:
    super().step runs the kernels' step (it raised 'KernelProblem.__init__ was not called')."""
    step_adjoint = LinearControlFast.step_adjoint

    def step(self, n, h, theta, u, out, cache):
        self.calls = getattr(self, "calls", 0) + 1
        super().step(n, h, theta, u, out, cache)


class CountingPeaks(Peaks):
    """Wraps Peaks' step (either -block): ran into a RecursionError (single: the generic loops that
    replace the ResNet's batched forms called its step, which called them back) or was never called
    (double: the generated forms bound on the instance hid it)."""
    step_adjoint = Peaks.step_adjoint

    def step(self, n, h, theta, u, out, cache):
        self.calls = getattr(self, "calls", 0) + 1
        Peaks.step(self, n, h, theta, u, out, cache)


class HalfHPeaks(Peaks):
    """Peaks' block (either -block) taken with half the step size, with its transpose."""

    def step(self, n, h, theta, u, out, cache):
        Peaks.step(self, n, 0.5 * h, theta, u, out, cache)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        Peaks.step_adjoint(self, n, 0.5 * h, theta, u, cache, lam_next, lam, grad_theta)
