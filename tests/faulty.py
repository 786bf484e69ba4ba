"""Plugins that fail on purpose, for the robustness tests."""
import os

import numpy as np
from numba import njit

from ocnet.plugin.activations import ACTIVATIONS
from ocnet.plugin.problem import ControlProblem
from tests.kernel_toy import KernelToy, toy_step
from tests.toy import LinearControl


class Poisoned(LinearControl):
    """LinearControl whose terminal value turns NaN from the ``nan_at``-th evaluation on (a run
    that goes non-finite after some good iterations).  Every rank counts the same evaluations."""

    name = "poisoned"
    data_options = ("nan_at",)  # not part of the model: -load may evaluate with another value

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("nan_at", int, 5, "evaluation from which the objective is NaN", group=cls.name, bounds="[0,inf)")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        self.count = 0

    def terminal(self, g, data, uN, lamN, grad_g):
        self.count += 1
        value = super().terminal(g, data, uN, lamN, grad_g)
        return np.nan if self.count >= self.values["nan_at"] else value


class FailsOnRank(LinearControl):
    """Raises a plain Python error in ``step`` on one rank only (a bug in a plugin)."""

    name = "fails"

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("fail_rank", int, 1, "rank whose step raises", group=cls.name, bounds="[0,inf)")

    step_adjoint = LinearControl.step_adjoint  # (the step below wraps LinearControl's)

    def step(self, n, h, theta, u, out, cache):
        if self.comm.Get_rank() == self.values["fail_rank"]:
            raise ZeroDivisionError("deliberate failure in step")
        super().step(n, h, theta, u, out, cache)


class FailsLater(FailsOnRank):
    """Raises in ``step`` on one rank from its ``-fail_call``-th step on (a bug that shows mid-run)."""

    calls = 0

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("fail_call", int, 2000, "the step call that raises", group=cls.name, bounds="[1,inf)")

    step_adjoint = LinearControl.step_adjoint  # (the step below wraps LinearControl's)

    def step(self, n, h, theta, u, out, cache):
        FailsLater.calls += 1
        if FailsLater.calls >= self.values["fail_call"] and self.comm.Get_rank() == self.values["fail_rank"]:
            raise ZeroDivisionError("deliberate failure in step")
        LinearControl.step(self, n, h, theta, u, out, cache)


class WrongInitialShape(LinearControl):
    """initial_layer_parameters returns one value too few (a plugin's shape bug)."""

    def initial_layer_parameters(self, n, rng):
        return rng.standard_normal(self.layer_param_size - 1)


class NoAdjoint(LinearControl):
    """Leaves step_adjoint to ControlProblem (a required method forgotten)."""
    step_adjoint = ControlProblem.step_adjoint


class NoSuperInit(LinearControl):
    """An __init__ that sets up everything but never calls ControlProblem's (tester 50)."""
    def __init__(self, values, comm):
        base = LinearControl.__new__(LinearControl)
        LinearControl.__init__(base, values, comm)
        vars(self).update({k: v for k, v in vars(base).items() if k != "layer_weights"})


class TerminalNoLam(LinearControl):
    """A terminal that returns the loss and never writes lamN: a zero gradient, 'converged' at
    iteration 0 (tester 50)."""
    def terminal(self, g, data, uN, lamN, grad_g):
        R = uN.reshape(data.Y.shape) - data.Y
        return 0.5 * np.sum(R * R) / R.shape[1]


class SignErrorGrad(LinearControl):
    """(dPhi/dtheta)^T with the wrong sign: lmvm's line search fails far from a minimum (tester 50)."""
    step = LinearControl.step

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        L = lam_next.reshape(len(theta), -1)
        lam[:] = (L + h * self.A.T @ L).ravel()
        grad_theta -= h * L.sum(axis=1)


class HalfStateSize(LinearControl):
    """state_size half what opening writes: numpy's broadcast error names no size (tester 50)."""
    def state_size(self, data):
        return super().state_size(data) // 2


class NoLayerParamSize(LinearControl):
    """layer_param_size deleted (a plugin that forgot to set it: ControlProblem's default 0)."""

    def __init__(self, values, comm):
        super().__init__(values, comm)
        self.p = self.layer_param_size
        del self.layer_param_size

    def initial_layer_parameters(self, n, rng):
        return rng.standard_normal(self.p)


class WrongTerminal(LinearControl):
    """terminal returns the per-sample losses instead of their mean (a plugin's shape bug)."""

    def terminal(self, g, data, uN, lamN, grad_g):
        super().terminal(g, data, uN, lamN, grad_g)
        R = uN.reshape(data.Y.shape) - data.Y
        return 0.5 * np.sum(R * R, axis=0)


class Fenced(LinearControl):
    """LinearControl whose objective is +inf once its global parameters g are farther than
    ``radius`` from where the run started (a state that overflows on a step too long, as a stiff
    ODE's does): line searches must shrink such trial steps."""

    name = "fenced"

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("radius", float, 1e300, "objective +inf farther than this from the first g", group=cls.name,
                 bounds="(0,inf]")

    def terminal(self, g, data, uN, lamN, grad_g):
        value = super().terminal(g, data, uN, lamN, grad_g)
        if not hasattr(self, "g0"):
            self.g0 = g.copy()
        return np.inf if np.linalg.norm(g - self.g0) > self.values["radius"] else value


class LossOverflow(LinearControl):
    """A finite final state whose terminal loss overflows (it is scaled by 1e200 before squaring):
    the error names the loss, not the adjoint that starts from it."""

    def terminal(self, g, data, uN, lamN, grad_g):
        value = super().terminal(g, data, uN, lamN, grad_g)
        lamN *= 1e200
        return value * 1e200 * 1e200


@njit(cache=True)
def _spin_step(n, h, theta, u, out, cache, work, args):
    """kernel_toy's step; at layer 3 with args[2][0] set, a loop that does not return in any
    test's lifetime (a plugin's inner solve that never converges)."""
    toy_step(n, h, theta, u, out, cache, work, (args[0], args[1]))
    if n == 3 and args[2][0] > 0.0:
        s = 0.0
        for i in range(10 ** 18):  # (float accumulation: not folded away by the compiler)
            s += i * 1e-9
        out[0] += s


class Spins(KernelToy):
    """A fast-path plugin (KernelProblem) whose step kernel spins at layer 3 from the second
    iteration on: ``metrics`` (once per iteration) arms it and creates the file named by
    OCNET_TEST_SPIN_MARK.  Python's signal handlers cannot run while it spins."""
    step_kernel = _spin_step
    step_adjoint_kernel = KernelToy.step_adjoint_kernel  # (_spin_step is the toy's step when it does not spin)

    def __init__(self, values, comm):
        super().__init__(values, comm)
        self.armed = np.zeros(1)

    def kernel_args(self, S):
        return (self.dim, ACTIVATIONS[self.values["toy_act"]], self.armed)

    def metrics(self, g, data, uN):
        if not self.armed[0]:
            self.armed[0] = 1.0
            mark = os.environ.get("OCNET_TEST_SPIN_MARK")
            if mark:
                open(mark, "w").close()
        return {}


class BigState(LinearControl):
    """States of 1e11 whose change with theta (h theta per step) is tiny against them: a central
    difference along a theta direction of theta's own size cannot resolve the transpose to the
    checker's tolerance (round-off); -check_adjoint scales its directions until they can."""
    offset = 1e11

    def opening(self, g, data, u0):
        super().opening(g, data, u0)
        u0 += self.offset


class HugeState(BigState):
    """States of OFFSET: beyond what a scaled direction resolves (at most 1e8-fold)."""
    offset = float(os.environ.get("OCNET_TEST_OFFSET", "1e25"))


class Stiff(LinearControl):
    """A = -stiffness * I: with h * stiffness < 2 the fine steps are stable (the layer-serial solve
    is finite), while the coarse steps of MGRIT (h * m) amplify by |1 - h m stiffness| > 1, so
    that its iterate overflows on long enough layer domains (many levels, factor 2)."""

    @classmethod
    def declare_options(cls, opts):
        super().declare_options(opts)
        opts.add("stiffness", float, 1.0, "the decay rate a of A = -a I", group=cls.name, bounds="(0,inf)")

        opts.add("nan_above", float, np.inf, "a step from a state with |u| above this returns NaN (a solver "
                 "inside the step that fails)", group=cls.name, bounds="(0,inf]")

    def __init__(self, values, comm):
        super().__init__(values, comm)
        self.A = -values["stiffness"] * np.eye(values["dim"])
        self.nan_above = values["nan_above"]

    step_adjoint = LinearControl.step_adjoint  # (the step below wraps LinearControl's, with its A)

    def step(self, n, h, theta, u, out, cache):
        super().step(n, h, theta, u, out, cache)
        if np.abs(u).max() > self.nan_above:
            out[:] = np.nan
