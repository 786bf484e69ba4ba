"""The paper's residual network as a control problem (Guenther et al., SIMODS 2020).

    u[0]   = sigma(W_o x + b_o)                       dense opening layer
    u[n+1] = u[n] + h sigma(K[n] u[n] + b[n])         theta[n] = (K[n], b[n])     (-block single)
    u[n+1] = u[n] + h W2[n] sigma(W1[n] u[n] + b1[n]) theta[n] = (W1, b1, W2)    (-block double)
    J      = CE(softmax(W_c u[N] + c), y)             mean cross-entropy
           + gamma_tik/2 sum|theta[n]|^2 + gamma_ddt/2 sum|(theta[n]-theta[n-1])/h|^2
           + gamma_tik/2 |(W_o,b_o)|^2 + gamma_class/2 |(W_c,c)|^2

States are (width, batch) feature-major; the single block's hand-written batched forms live in
problems.resnet.dense_kernels, the double block's two kernels in problems.resnet.double_kernels
(its batched forms are generated from them by ocnet.plugin.kernels).

Reusing a member's data, opening and classifier with a new block (docs/plugins/fast.md): subclass
the problem (e.g. Peaks) and call ``ocnet.plugin.kernels.use_kernels(self, step, step_adjoint)``
in ``__init__`` after setting ``layer_param_size``, with ``cache_size``, ``kernel_args``,
``work_size`` and ``initial_layer_parameters`` for the new step -- as ``-block double`` does.
"""
from dataclasses import dataclass

import numpy as np

from . import classifier, dense_kernels as kernels, double_kernels
from ocnet.base.errors import OcnetError
from ocnet.plugin.kernels import GeneratedForms, use_kernels
from ocnet.plugin.problem import defining_class
from ocnet.plugin.problem import ControlProblem

#: residual blocks of the dense family (-block)
BLOCKS = ("single", "double")


#: the label of a sample whose class is not known (new data to score): no accuracy, no label column
UNLABELLED = -1


@dataclass
class Classification:
    """Features (nin, batch), feature-major, and integer labels (batch,) (all UNLABELLED: unknown)."""

    X: np.ndarray
    y: np.ndarray

    @property
    def batch(self):
        return self.X.shape[1]

    @property
    def labelled(self):
        return not (self.y.size and self.y[0] == UNLABELLED)


class ResNet(ControlProblem):
    name = "resnet"
    # how the model is trained, not what it is (-load may train on with other values): the
    # classifier's Tikhonov weight, and the initial weights' scales, which the loaded ones replace
    training_options = ("gamma_class", "init_open", "init_layer", "init_class")
    default_width = 8
    #: -block and its hidden width (0: the single block); set in __init__
    block = "single"
    hidden = 0

    @classmethod
    def declare_options(cls, opts):
        g = cls.name
        opts.add("width", int, cls.default_width, "network width (state features per sample)", group=g,
                 bounds="[1,inf)")
        opts.add("activation", str, "smoothrelu", "activation sigma", choices=tuple(kernels.ACTIVATIONS), group=g)
        opts.add("block", str, "single", "residual block: single u + h sigma(K u + b), or double "
                 "u + h W2 sigma(W1 u + b1) with -hidden_width hidden features", choices=BLOCKS, group=g)
        opts.add("hidden_width", int, 0, "hidden features of -block double (0: 2 * width)", group=g,
                 bounds="[0,inf)")
        opts.add("gamma_tik", float, 1e-7, "Tikhonov weight on layer and opening parameters", group=g,
                 bounds="[0,inf)")
        opts.add("gamma_ddt", float, 1e-5, "smoothness weight on (theta[n]-theta[n-1])/h", group=g,
                 bounds="[0,inf)")
        opts.add("gamma_class", float, 1e-7, "Tikhonov weight on the classifier", group=g, bounds="[0,inf)")
        opts.add("init_open", float, 1.0, "std of the initial opening weights", group=g, bounds="[0,inf)")
        opts.add("init_layer", float, 1.0, "std (times 1/sqrt(width)) of initial layer weights", group=g,
                 bounds="[0,inf)")
        opts.add("init_class", float, 1.0, "std (times 1/sqrt(width)) of initial classifier weights", group=g,
                 bounds="[0,inf)")

    def __init__(self, values, comm, nin, nclasses, datasets):
        super().__init__(values, comm)
        self.width = w = values["width"]
        self.activation = values["activation"]
        self.act = kernels.ACTIVATIONS[self.activation]
        self.gamma_tik = values["gamma_tik"]
        self.gamma_class = values["gamma_class"]
        self.nin, self.nclasses = nin, nclasses
        self.datasets = datasets
        self.block = values.get("block", "single")
        if self.block == "double":  # every form generated from the two kernels (ocnet.plugin.kernels)
            q = self.hidden = values["hidden_width"] or 2 * w
            self.layer_param_size = 2 * w * q + q
            k = (double_kernels.double_step, double_kernels.double_step_adjoint)
            if any(defining_class(type(self), n) not in (ResNet, ControlProblem) for n in ("step", "step_adjoint")):
                # a subclass's own step (or one wrapping this one): nothing bound on the instance,
                # where it would hide the subclass's step; ResNet.step runs the block for super()
                # and the generic loops run the batched forms (ocnet.plugin.problem.guard_forms)
                self._block_forms = GeneratedForms(self, *k)
            else:
                self._block_forms = use_kernels(self, *k)
        else:
            if values.get("hidden_width"):  # an option given is honoured or reported
                raise OcnetError(f"-hidden_width {values['hidden_width']} applies to -block double only "
                                 "(the single block has no hidden layer)")
            self.hidden = 0
            self.layer_param_size = w * w + w
        self.n_open = w * nin + w
        self.global_param_size = self.n_open + nclasses * w + nclasses

    # ---- parameter views ------------------------------------------------------------------
    def split_layers(self, thetas):
        w = self.width
        nl = thetas.shape[0]
        return thetas[:, : w * w].reshape(nl, w, w), thetas[:, w * w:]

    def split_global(self, g):
        w, nin, C = self.width, self.nin, self.nclasses
        Wo = g[: w * nin].reshape(w, nin)
        bo = g[w * nin: self.n_open]
        Wc = g[self.n_open: self.n_open + C * w].reshape(C, w)
        c = g[self.n_open + C * w:]
        return Wo, bo, Wc, c

    def initial_layer_parameters(self, n, rng):
        w = self.width
        if self.block == "double":  # W1 ~ N(0, init_layer^2/w), b1 = 0, W2 ~ N(0, init_layer^2/q)
            q, s = self.hidden, self.values["init_layer"]
            W1 = rng.standard_normal((q, w)) * s / np.sqrt(w)
            W2 = rng.standard_normal((w, q)) * s / np.sqrt(q)
            return np.concatenate([W1.ravel(), np.zeros(q), W2.ravel()])
        K = rng.standard_normal((w, w)) * self.values["init_layer"] / np.sqrt(w)
        return np.concatenate([K.ravel(), np.zeros(w)])

    def initial_global_parameters(self, rng):
        w, C = self.width, self.nclasses
        Wo = rng.standard_normal((w, self.nin)) * self.values["init_open"]
        Wc = rng.standard_normal((C, w)) * self.values["init_class"] / np.sqrt(w)
        return np.concatenate([Wo.ravel(), np.zeros(w), Wc.ravel(), np.zeros(C)])

    def subset(self, data, idx):
        return Classification(np.ascontiguousarray(data.X[:, idx]), data.y[idx])

    def data_size(self, data):
        return data.batch

    # ---- sizes ----------------------------------------------------------------------------
    def state_size(self, data):
        return self.width * data.batch

    def cache_size(self, data):
        if self.block == "double":  # sigma(z) and sigma'(z) of the hidden layer
            return 2 * self.hidden * data.batch
        return self.width * data.batch

    # ---- the two kernels' constants and scratch (-block double; ocnet.plugin.kernels) ------
    def kernel_args(self, S):
        return (self.width, self.hidden, self.act)

    def work_size(self, S):
        return self.hidden * (S // self.width) + 2 * self.hidden * self.width

    def _states(self, A):
        return A.reshape(A.shape[0], self.width, A.shape[1] // self.width)

    # ---- maps -----------------------------------------------------------------------------
    def opening(self, g, data, u0):
        Wo, bo, _, _ = self.split_global(g)
        z = Wo @ data.X
        u = u0.reshape(self.width, -1)
        kernels.activate_update(self.act, z, bo, 1.0, np.zeros_like(z), u, np.empty_like(z))

    def opening_adjoint(self, g, data, lam0, grad_g):
        Wo, bo, _, _ = self.split_global(g)
        gWo, gbo, _, _ = self.split_global(grad_g)
        z = Wo @ data.X
        d = np.empty_like(z)
        kernels.activate_update(self.act, z, bo, 1.0, np.zeros_like(z), np.empty_like(z), d)
        r = d * lam0.reshape(self.width, -1)
        gWo += r @ data.X.T
        gbo += r.sum(axis=1)

    def sweep(self, n0, h, thetas, U, C, F=None):
        Ks, bs = self.split_layers(thetas)
        kernels.sweep(self.activation, Ks, bs, h, self._states(U), self._states(C),
                      None if F is None else self._states(F))

    def sweep_adjoint(self, n0, h, thetas, U, C, Lam, G, F=None):
        Ks, _ = self.split_layers(thetas)
        gKs, gbs = self.split_layers(G)
        kernels.sweep_adjoint(Ks, h, self._states(U), self._states(C), self._states(Lam), gKs, gbs,
                              None if F is None else self._states(F))

    def parameter_gradient(self, n0, h, thetas, U, C, Lam, G, rows=None):
        gKs, gbs = self.split_layers(G)
        kernels.param_gradient(h, self._states(U), self._states(C), self._states(Lam), gKs, gbs, rows)

    # batched forms for MGRIT: one jitted call per relaxation, no Python per layer
    def _layers(self, thetas):
        Ks, bs = self.split_layers(thetas)
        return np.ascontiguousarray(Ks), np.ascontiguousarray(bs)

    def _ahead(self, ahead, L):
        """(array, rows) of a sweeps look-ahead (ControlProblem.sweeps), in kernel form."""
        if ahead is None:
            return self._states(L[:0]), np.zeros(0, np.int64)
        return self._states(ahead[0]), np.asarray(ahead[1], np.int64)

    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True, ahead=None):
        Ks, bs = self._layers(thetas)
        st = self._states
        kernels.sweeps_kernel(self.act, np.asarray(runs, np.int64).reshape(-1, 2), Ks, bs, h, st(U), st(C),
                              st(U[:0]) if F is None else st(F), F is not None, cache, *self._ahead(ahead, U))

    def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True, minus=False):
        Ks, bs = self._layers(thetas)
        st = self._states
        kernels.steps_kernel(self.act, np.asarray(rows, np.int64), Ks, bs, h, st(U), st(C), st(out),
                             np.asarray(out_rows, np.int64), st(U[:0]) if F is None else st(F), F is not None,
                             cache, minus)

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None, grad=None, ahead=None):
        Ks, _ = self._layers(thetas)
        st = self._states
        runs = np.asarray(runs, np.int64).reshape(-1, 2)
        Fs = st(Lam[:0]) if F is None else st(F)
        if grad is None:
            kernels.sweeps_adjoint_kernel(runs, Ks, h, st(C[:0]), st(C), st(Lam), Fs, F is not None, False,
                                          Ks[:0], Ks[:0, 0], *self._ahead(ahead, Lam))
        else:
            gKs, gbs = self.split_layers(grad)
            kernels.sweeps_adjoint_grad(runs, Ks, h, st(U), st(C), st(Lam), Fs, F is not None, gKs, gbs,
                                        *self._ahead(ahead, Lam))

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None, minus=False):
        Ks, _ = self._layers(thetas)
        st = self._states
        kernels.steps_adjoint_kernel(np.asarray(rows, np.int64), Ks, h, st(C), st(Lam), st(out),
                                     np.asarray(out_rows, np.int64), st(Lam[:0]) if F is None else st(F),
                                     F is not None, minus)

    # the class's forms (type(self).sweep, ConvResNet's for the conv block), not the instance's: a
    # subclass's step wrapping this one (super().step) has its batched forms replaced on the
    # instance by loops over its step, which would call back here (a RecursionError)
    def step(self, n, h, theta, u, out, cache):
        forms = self.__dict__.get("_block_forms")
        if forms is not None:  # (-block double)
            return forms.step(n, h, theta, u, out, cache)
        U = np.stack([u, out])
        type(self).sweep(self, n, h, theta[None], U, cache[None])
        out[:] = U[1]

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        forms = self.__dict__.get("_block_forms")
        if forms is not None:
            return forms.step_adjoint(n, h, theta, u, cache, lam_next, lam, grad_theta)
        L = np.stack([lam, lam_next])
        type(self).sweep_adjoint(self, n, h, theta[None], u[None], cache[None], L, grad_theta[None])
        lam[:] = L[0]

    def features(self, uN):
        """The classifier's input (features, batch) from the flat final state ``uN``: the state itself
        here; a member may reduce it (the convolutional one average-pools)."""
        return uN.reshape(self.width, -1)

    def features_adjoint(self, lamF, lamN):
        """Set the flat ``lamN`` to the transpose of ``features`` applied to ``lamF`` (features * batch)."""
        lamN[:] = lamF

    def _logits(self, g, uN):
        _, _, Wc, c = self.split_global(g)
        return classifier.logits(Wc, c, self.features(uN))

    def terminal(self, g, data, uN, lamN, grad_g):
        _, _, Wc, c = self.split_global(g)
        _, _, gWc, gc = self.split_global(grad_g)
        feats = self.features(uN)
        if feats.shape[0] == self.width:
            return classifier.cross_entropy(Wc, c, feats, data.y, lamN, gWc, gc)
        lamF = np.empty(feats.size)
        loss = classifier.cross_entropy(Wc, c, feats, data.y, lamF, gWc, gc)
        self.features_adjoint(lamF, lamN)
        return loss

    def predict(self, g, uN):
        return np.argmax(self._logits(g, uN), axis=0)

    def prediction_columns(self, g, uN):
        """The softmax probability of each class, ``p_0`` ... ``p_<C-1>`` (class indices)."""
        _, _, Wc, c = self.split_global(g)
        P = classifier.probabilities(Wc, c, self.features(uN))
        return {f"p_{k}": P[k] for k in range(P.shape[0])}

    def metrics(self, g, data, uN):
        return {"accuracy": float(np.mean(self.predict(g, uN) == data.y))} if data.labelled else {}

    def sample_columns(self, data):
        return {"label": data.y} if data.labelled else {}  # (the true class, beside the prediction)

    def global_regularization(self, g, grad_g):
        o, n = self.n_open, self.global_param_size
        grad_g[:o] += self.gamma_tik * g[:o]
        grad_g[o:n] += self.gamma_class * g[o:n]
        return 0.5 * self.gamma_tik * g[:o] @ g[:o] + 0.5 * self.gamma_class * g[o:n] @ g[o:n]
