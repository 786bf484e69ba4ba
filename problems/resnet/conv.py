"""The convolutional residual network as a control problem (Guenther et al., SIMODS 2020, Sec. 5.3).

    u[0]   = sigma(conv3x3(x; K_o) + b_o)                   opening: C_in -> C channels
    u[n+1] = u[n] + h sigma(conv3x3(u[n]; K[n]) + b[n])     theta[n] = (K[n], b[n])
    J      = CE(softmax(W_c P u[N] + c), y)                 dense classifier on C*H*W/p^2 features
           + gamma_tik/2 sum|theta[n]|^2 + gamma_ddt/2 sum|(theta[n]-theta[n-1])/h|^2
           + gamma_tik/2 |(K_o,b_o)|^2 + gamma_class/2 |(W_c,c)|^2

conv3x3 mixes all channels (K[n] is C x C x 3 x 3) with zero padding.  The bias is per channel
(C numbers per layer, as in CNN practice and PyTorch's conv2d); the paper's code adds a bias per
pixel and channel (C*H*W numbers), which ties the parameters to the image size and adds many
parameters that the 3x3 filters do not need.

P is p x p average pooling of every channel (``-pool p``, p dividing H and W; p = 1, the default, is
the identity, the issue's dense classifier on all C*H*W features).  Pooling cuts the classifier's
weights by p^2 and makes its features locally shift-invariant, as the pooling before a CNN's dense
layers does; P is linear, so the terminal adjoint is P^T (each pooled derivative spread evenly,
divided by p^2, over its p x p pixels).

States are (H, W, C, batch) with the batch innermost (see ``conv_kernels``); a data set's
features are (H*W*C_in, batch) in the same (H, W, C_in) order.  theta[n] holds K[n] as the kernel
matrix (C, 3, 3, C) = K2[co, ty, tx, ci] = K[co, ci, ty, tx], then b[n] (C,).  The classifier,
cross-entropy, data handling and regularisers are the dense member's (``ResNet``), with
``width`` = C*H*W state features per sample.
"""
import numpy as np

from . import conv_kernels as kernels
from .dense import ResNet
from ocnet.base.errors import OcnetError
from ocnet.base.options import OptionSet
from ocnet.plugin.problem import ControlProblem


class ConvResNet(ResNet):
    name = "convresnet"
    default_channels = 4

    @classmethod
    def declare_options(cls, opts):
        dense = OptionSet()
        super().declare_options(dense)  # activation, regularisation weights, initial scales
        for o in dense.options:
            if o.name == "width":
                opts.add("channels", int, cls.default_channels, "channels C of the residual layers", group=o.group,
                         bounds="[1,inf)")
                opts.add("pool", int, 1, "p x p average pooling of u[N] before the classifier (p divides H and W)",
                         group=o.group, bounds="[1,inf)")
                continue
            o.help = {"init_open": "std (times 1/sqrt(9*C_in)) of the initial opening weights",
                      "init_layer": "std (times 1/sqrt(9*channels)) of the initial layer weights",
                      "init_class": "std (times 1/sqrt(C*H*W/pool^2)) of the initial classifier weights"}.get(o.name, o.help)
            opts.options.append(o)

    def __init__(self, values, comm, shape, nclasses, datasets):
        """``shape``: (H, W, C_in) of the images; ``datasets``: Classification with X (H*W*C_in, batch).

        Raises OcnetError when ``-pool`` does not divide H and W."""
        ControlProblem.__init__(self, values, comm)  # layer_weights from -gamma_tik, -gamma_ddt
        C = self.channels = values["channels"]
        self.H, self.W, self.cin = shape
        self.activation = values["activation"]
        self.act = kernels.ACTIVATIONS[self.activation]
        self.gamma_tik = values["gamma_tik"]  # the opening's Tikhonov weight (global_regularization)
        self.gamma_class = values["gamma_class"]
        self.width = self.H * self.W * C  # state features per sample
        p = self.pool = values["pool"]
        if self.H % p or self.W % p:
            raise OcnetError(f"-pool {p} does not divide the {self.H} x {self.W} images")
        self.nfeat = self.width // (p * p)  # the classifier's input features per sample
        self.nin, self.nclasses = self.H * self.W * self.cin, nclasses
        self.datasets = datasets
        self.layer_param_size = 9 * C * C + C
        self.n_open = 9 * self.cin * C + C
        self.global_param_size = self.n_open + nclasses * self.nfeat + nclasses

    # ---- parameter views ------------------------------------------------------------------
    def split_layers(self, thetas):
        """Kernel matrices (nl, C, 9C) and biases (nl, C) as views of ``thetas``."""
        C = self.channels
        nl = thetas.shape[0]
        return thetas[:, : 9 * C * C].reshape(nl, C, 9 * C), thetas[:, 9 * C * C:]

    def split_global(self, g):
        """(K2_o (C, 9 C_in), b_o (C,), W_c (classes, C*H*W/p^2), c (classes,)) as views of ``g``."""
        C, ncl, o = self.channels, self.nclasses, self.n_open
        K2o = g[: 9 * self.cin * C].reshape(C, 9 * self.cin)
        bo = g[9 * self.cin * C: o]
        Wc = g[o: o + ncl * self.nfeat].reshape(ncl, self.nfeat)
        return K2o, bo, Wc, g[o + ncl * self.nfeat:]

    def initial_layer_parameters(self, n, rng):
        C = self.channels
        K = rng.standard_normal(9 * C * C) * self.values["init_layer"] / np.sqrt(9 * C)
        return np.concatenate([K, np.zeros(C)])

    def initial_global_parameters(self, rng):
        C, ncl = self.channels, self.nclasses
        Ko = rng.standard_normal(9 * self.cin * C) * self.values["init_open"] / np.sqrt(9 * self.cin)
        Wc = rng.standard_normal(ncl * self.nfeat) * self.values["init_class"] / np.sqrt(self.nfeat)
        return np.concatenate([Ko, np.zeros(C), Wc, np.zeros(ncl)])

    # ---- array views ----------------------------------------------------------------------
    def _states(self, A):
        """Rows of flat states as (rows, H, W, C, batch)."""
        return A.reshape(A.shape[0], self.H, self.W, self.channels, A.shape[1] // self.width)

    def _images(self, data):
        return data.X.reshape(self.H, self.W, self.cin, -1)

    def _layers(self, thetas):
        K2s, bs = self.split_layers(thetas)
        K2s = np.ascontiguousarray(K2s)
        return K2s, np.ascontiguousarray(bs), kernels.flip_transpose(K2s, self.channels)

    def features(self, uN):
        """(C*H*W/p^2, batch) p x p average-pooled final state, in (H/p, W/p, C) order."""
        p, B = self.pool, uN.size // self.width
        if p == 1:
            return uN.reshape(self.width, B)
        u = uN.reshape(self.H // p, p, self.W // p, p, self.channels, B)
        return u.mean(axis=(1, 3)).reshape(self.nfeat, B)

    def features_adjoint(self, lamF, lamN):
        p, C = self.pool, self.channels
        B = lamF.size // self.nfeat
        f = lamF.reshape(self.H // p, 1, self.W // p, 1, C, B) / (p * p)
        lamN.reshape(self.H // p, p, self.W // p, p, C, B)[:] = f

    # ---- maps -----------------------------------------------------------------------------
    def opening(self, g, data, u0):
        K2o, bo, _, _ = self.split_global(g)
        u = self._states(u0[None])[0]
        kernels.opening_kernel(self.act, np.ascontiguousarray(K2o), bo.copy(), self._images(data), u,
                               np.empty_like(u))

    def opening_adjoint(self, g, data, lam0, grad_g):
        K2o, bo, _, _ = self.split_global(g)
        gK2o, gbo, _, _ = self.split_global(grad_g)
        tK, tb = np.zeros(K2o.shape), np.zeros(bo.shape)
        kernels.opening_adjoint_kernel(self.act, np.ascontiguousarray(K2o), bo.copy(), self._images(data),
                                       self._states(lam0[None])[0], tK, tb)
        gK2o += tK
        gbo += tb

    def sweep(self, n0, h, thetas, U, C, F=None):
        K2s, bs, _ = self._layers(thetas)
        st = self._states
        kernels.sweeps_kernel(self.act, np.array([[1, thetas.shape[0]]], np.int64), K2s, bs, h, st(U), st(C),
                              st(U[:0]) if F is None else st(F), F is not None, True, 1)

    def sweep_adjoint(self, n0, h, thetas, U, C, Lam, G, F=None):
        K2s, _, K2ts = self._layers(thetas)
        gK2, gb = np.zeros((thetas.shape[0],) + K2s.shape[1:]), np.zeros((thetas.shape[0], self.channels))
        st = self._states
        kernels.sweep_adjoint_kernel(K2s, K2ts, h, st(U), st(C), st(Lam), gK2, gb,
                                     st(Lam[:0]) if F is None else st(F), F is not None)
        gK, gbs = self.split_layers(G)
        gK += gK2
        gbs += gb

    def parameter_gradient(self, n0, h, thetas, U, C, Lam, G):
        gK2 = np.zeros((thetas.shape[0], self.channels, 9 * self.channels))
        gb = np.zeros((thetas.shape[0], self.channels))
        st = self._states
        kernels.param_gradient_kernel(h, st(U), st(C), st(Lam), gK2, gb)
        gK, gbs = self.split_layers(G)
        gK += gK2
        gbs += gb

    # batched forms for MGRIT: one jitted call per relaxation, no Python per layer
    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True):
        K2s, bs, _ = self._layers(thetas)
        st = self._states
        kernels.sweeps_kernel(self.act, np.asarray(runs, np.int64).reshape(-1, 2), K2s, bs, h, st(U), st(C),
                              st(U[:0]) if F is None else st(F), F is not None, cache, 0)

    def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True):
        K2s, bs, _ = self._layers(thetas)
        st = self._states
        kernels.steps_kernel(self.act, np.asarray(rows, np.int64), K2s, bs, h, st(U), st(C), st(out),
                             np.asarray(out_rows, np.int64), st(U[:0]) if F is None else st(F), F is not None,
                             cache)

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None):
        _, _, K2ts = self._layers(thetas)
        st = self._states
        kernels.sweeps_adjoint_kernel(np.asarray(runs, np.int64).reshape(-1, 2), K2ts, h, st(C), st(Lam),
                                      st(Lam[:0]) if F is None else st(F), F is not None)

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None):
        _, _, K2ts = self._layers(thetas)
        st = self._states
        kernels.steps_adjoint_kernel(np.asarray(rows, np.int64), K2ts, h, st(C), st(Lam), st(out),
                                     np.asarray(out_rows, np.int64), st(Lam[:0]) if F is None else st(F),
                                     F is not None)
