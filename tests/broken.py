"""Deliberately wrong plugins: ``ocnet -check_adjoint`` must FAIL them (tests/test_adjcheck.py)."""
import numpy as np

from ocnet_problems.peaks import Peaks
from tests.toy import LinearControl


class UntransposedLinear(LinearControl):
    """The README example with A where A^T belongs: still 'trains', but the gradient is wrong."""
    step = LinearControl.step  # (its own transpose of this step, as a plugin's would be)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        L = lam_next.reshape(len(theta), -1)
        lam[:] = (L + h * self.A @ L).ravel()
        grad_theta += h * L.sum(axis=1)


class FineOnlyLinear(LinearControl):
    """A transposed step right only at the fine step size (it ignores its argument h): the
    layer-serial gradient is exact, adjoint MGRIT's coarse levels are wrong."""
    step = LinearControl.step  # (its own transpose of this step, as a plugin's would be)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        super().step_adjoint(n, self.values["T"] / self.values["N"], theta, u, cache, lam_next, lam, grad_theta)


class FineThetaZeroStart(LinearControl):
    """Zero-initialised controls and a theta transpose that uses the fine h (the u transpose is
    right): a tester's plugin of this kind passed -check_adjoint 'within the round-off', its theta
    directions (relative to theta = 0 plus noise) too small to change the step's output."""
    step = LinearControl.step  # (its own transpose of this step, as a plugin's would be)

    def initial_layer_parameters(self, n, rng):
        return np.zeros(self.layer_param_size)

    def initial_global_parameters(self, rng):  # (a small physical coefficient)
        return 1e-9 * rng.standard_normal(self.global_param_size)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        g = np.zeros_like(grad_theta)
        super().step_adjoint(n, h, theta, u, cache, lam_next, lam, g)
        grad_theta += g * (self.values["T"] / self.values["N"]) / h


class ZeroStart(LinearControl):
    """The correct plugin with zero-initialised controls: every check passes, none only to round-off."""
    initial_layer_parameters = FineThetaZeroStart.initial_layer_parameters
    initial_global_parameters = FineThetaZeroStart.initial_global_parameters

class AccumulatingLinear(LinearControl):
    """Adds into lam instead of overwriting it (the contract says lam[:] = ...)."""
    step = LinearControl.step  # (its own transpose of this step, as a plugin's would be)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        L = lam_next.reshape(len(theta), -1)
        lam += (L + h * self.A.T @ L).ravel()
        grad_theta += h * L.sum(axis=1)


class UntransposedPeaks(Peaks):
    """The ResNet whose layer-serial transposed sweep uses K[n] untransposed; MGRIT's batched
    transposed forms stay right (so the checker must tell which form is wrong)."""

    def sweep_adjoint(self, n0, h, thetas, U, C, Lam, G, F=None):
        Ks, _ = self.split_layers(thetas)
        Kt = np.ascontiguousarray(Ks.transpose(0, 2, 1))
        super().sweep_adjoint(n0, h, np.concatenate([Kt.reshape(len(Ks), -1), thetas[:, Ks[0].size:]], axis=1),
                              U, C, Lam, G, F)


class MisnamedWeights(LinearControl):
    """Declares its regularisation weights under its own names but does not say so: before
    regularization_options this silently trained without regularisation; now an error."""

    @classmethod
    def declare_options(cls, opts):
        opts.add("dim", int, 3, "state dimension", group=cls.name, bounds="[1,inf)")
        opts.add("tik", float, 1e-3, "Tikhonov weight", group=cls.name, bounds="[0,inf)")


class NamedWeights(MisnamedWeights):
    """The same, with its names declared: the default layer_regularization uses them."""
    regularization_options = ("tik", "tik")


class Unregularized(MisnamedWeights):
    """No layer regularisation, said explicitly."""
    regularization_options = None


class CrashingBatchedLinear(LinearControl):
    """A batched transposed form that raises: reported as that check's FAIL, the others still run."""

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None):
        raise ValueError("shapes do not match")


class NaNAdjointLinear(LinearControl):
    """A transposed step that yields NaN: must FAIL, never pass as 'no difference'."""
    step = LinearControl.step  # (its own transpose of this step, as a plugin's would be)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        super().step_adjoint(n, h, theta, u, cache, lam_next, lam, grad_theta)
        lam[0] = np.nan


class LookaheadIntoStatePeaks(Peaks):
    """The ResNet whose sweeps(ahead=) also writes the look-ahead step into U[b+1] (the C-point
    MGRIT relaxes separately) and drops it from the adjoint's look-ahead output."""

    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True, ahead=None):
        super().sweeps(runs, ns, h, thetas, U, C, F, cache, ahead)
        if ahead is not None:
            for (a, b), r in zip(runs, ahead[1]):
                if r >= 0:
                    U[b + 1] = ahead[0][r]

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None, grad=None, ahead=None):
        super().sweeps_adjoint(runs, ns, h, thetas, U, C, Lam, F, grad, ahead)
        if ahead is not None:
            ahead[0][ahead[1][ahead[1] >= 0]] = 0.0


class ReturningStepLinear(LinearControl):
    """PyMGRIT's habit: step returns the new state instead of writing it into out (trained
    silently on a state that never changed)."""
    def step(self, n, h, theta, u, out, cache):
        new = np.empty_like(u)
        super().step(n, h, theta, u, new, cache)
        return new

    step_adjoint = LinearControl.step_adjoint


class RebindingAdjointLinear(LinearControl):
    """step_adjoint rebinds lam (``lam = ...``) instead of writing into it."""
    step = LinearControl.step

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        L = lam_next.reshape(len(theta), -1)
        lam = (L + h * self.A.T @ L).ravel()  # noqa: F841  (the mistake under test)
        grad_theta += h * L.sum(axis=1)


class PaddedOpeningLinear(LinearControl):
    """A correct plugin whose opening writes only the first coordinate and leaves the others at
    the zeros ocnet allocates (a zero-padded lifting): the start-of-run check must pass it."""
    def opening(self, g, data, u0):
        U = u0.reshape(len(g), -1)
        U[0] = data.X[0] + g[0]
