"""Plugins that fail on purpose, for the robustness tests."""
import numpy as np

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

    def step(self, n, h, theta, u, out, cache):
        FailsLater.calls += 1
        if FailsLater.calls >= self.values["fail_call"] and self.comm.Get_rank() == self.values["fail_rank"]:
            raise ZeroDivisionError("deliberate failure in step")
        LinearControl.step(self, n, h, theta, u, out, cache)


class WrongInitialShape(LinearControl):
    """initial_layer_parameters returns one value too few (a plugin's shape bug)."""

    def initial_layer_parameters(self, n, rng):
        return rng.standard_normal(self.layer_param_size - 1)


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
