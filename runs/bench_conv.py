"""Time one gradient of the convolutional ResNet (opening conv + N residual conv layers + dense
classifier + cross-entropy): ocnet (Numba kernels, float64) against PyTorch autograd in float64
and float32, one thread, side by side in one run, on the same network and data.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python runs/bench_conv.py [--repeat 3]

PyTorch is used only if importable (``pip install torch==2.13.0``); it is never a dependency.
Before timing, the script checks that PyTorch's float64 loss and gradient are ocnet's.
"""
import argparse
import os

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")

import numpy as np  # noqa: E402
import petsc4py  # noqa: E402

petsc4py.init([])
from petsc4py import PETSc  # noqa: E402

from bench_gradient import best  # noqa: E402  (runs/ is the script's folder)
from ocnet.run.cli import framework_options  # noqa: E402
from ocnet.base.grid import LayerGrid  # noqa: E402
from ocnet.optim.objective import ReducedObjective  # noqa: E402
from ocnet_problems.resnet import Classification, ConvResNet  # noqa: E402

COMM = PETSc.COMM_WORLD.tompi4py()


class Synthetic(ConvResNet):
    def __init__(self, values, comm, side, batch, nclasses=10):
        rng = np.random.default_rng(0)
        data = Classification(rng.uniform(0, 1, (side * side, batch)), rng.integers(0, nclasses, batch))
        super().__init__(values, comm, (side, side, 1), nclasses, {"train": data})


def build(C, side, batch, N, act):
    opts = framework_options()
    ConvResNet.declare_options(opts)
    values = {o.name: o.default for o in opts.options}
    values.update(N=N, channels=C, activation=act, gamma_tik=0.0, gamma_ddt=0.0, gamma_class=0.0)
    pb = Synthetic(values, COMM, side, batch)
    return ReducedObjective(LayerGrid.from_comm(N, 1.0, COMM), pb, COMM)


def torch_gradient_fn(obj, x, dtype, act):
    """PyTorch's gradient of the same network (NCHW, conv2d with padding 1) as a closure."""
    import torch

    torch.set_num_threads(1)
    pb = obj.problem
    g, th = obj.design.split(x.getArray(readonly=True))
    C, H, W, cin = pb.channels, pb.H, pb.W, pb.cin
    K2o, bo, Wc, c = pb.split_global(g)
    K2s, bs = pb.split_layers(th)

    def conv_weight(K2, cout, ci):  # K2[co, (ty*3+tx)*ci + c] -> (cout, ci, 3, 3)
        return K2.reshape(cout, 3, 3, ci).transpose(0, 3, 1, 2)

    P = [conv_weight(K2o, C, cin), bo, np.stack([conv_weight(K, C, C) for K in K2s]), bs, Wc, c]
    T = [torch.tensor(np.ascontiguousarray(a), dtype=dtype, requires_grad=True) for a in P]
    data = pb.datasets["train"]
    X = torch.tensor(data.X.T.reshape(-1, H, W, cin).transpose(0, 3, 1, 2).copy(), dtype=dtype)
    y = torch.tensor(data.y)
    h = obj.grid.h
    sig = {"tanh": torch.tanh, "relu": torch.relu,
           "smoothrelu": lambda z: torch.where(z <= -0.1, torch.zeros_like(z),
                                               torch.where(z >= 0.1, z, 2.5 * z * z + 0.5 * z + 0.025))}[act]
    conv2d = torch.nn.functional.conv2d

    def run():
        for t in T:
            t.grad = None
        Wo, bo_, Ks, bs_, Wc_, c_ = T
        u = sig(conv2d(X, Wo, bo_, padding=1))
        for k in range(Ks.shape[0]):
            u = u + h * sig(conv2d(u, Ks[k], bs_[k], padding=1))
        feats = u.permute(0, 2, 3, 1).reshape(u.shape[0], -1)  # ocnet's (H, W, C) feature order
        loss = torch.nn.functional.cross_entropy(feats @ Wc_.T + c_, y)
        loss.backward()
        return loss.item()

    def gradient():  # in ocnet's design order
        gWo, gbo, gKs, gbs, gWc, gc = (t.grad.double().numpy() for t in T)
        gK2o = gWo.transpose(0, 2, 3, 1).reshape(C, 9 * cin)
        gK2s = gKs.transpose(0, 1, 3, 4, 2).reshape(len(K2s), -1)
        return np.concatenate([gK2o.ravel(), gbo, gWc.ravel(), gc, np.hstack([gK2s, gbs]).ravel()])
    return run, gradient


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--channels", default="4,8")
    ap.add_argument("--activations", default="smoothrelu")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--N", type=int, default=16)
    ap.add_argument("--side", type=int, default=28)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    print(f"one gradient, {a.side}x{a.side} images, batch {a.batch}, N = {a.N}, 1 thread, best of {a.repeat} (s)")
    print(f"{'C':>2} {'act':>10} | {'ocnet f64':>9} {'torch f64':>9} {'torch f32':>9} | "
          f"{'f64/ocnet':>9} {'f32/ocnet':>9} | {'check (rel. diff f64)':>21}")
    for act in a.activations.split(","):
        for C in map(int, a.channels.split(",")):
            obj = build(C, a.side, a.batch, a.N, act)
            x = obj.design.initial(0)
            gv = x.duplicate()
            t_oc = best(lambda: obj.evaluate(x, gv), a.repeat) / 1e3
            t64 = t32 = float("nan")
            check = "no torch"
            if torch is not None:
                run64, grad64 = torch_gradient_fn(obj, x, torch.float64, act)
                J = obj.evaluate(x, gv)
                Jt = run64()
                g, gt = gv.getArray(readonly=True), grad64()
                check = f"J {abs(J - Jt) / abs(J):.0e}, g {np.abs(g - gt).max() / np.abs(g).max():.0e}"
                t64 = best(run64, a.repeat) / 1e3
                t32 = best(torch_gradient_fn(obj, x, torch.float32, act)[0], a.repeat) / 1e3
            print(f"{C:2d} {act:>10} | {t_oc:9.3f} {t64:9.3f} {t32:9.3f} | {t64 / t_oc:9.2f} {t32 / t_oc:9.2f} | "
                  f"{check:>21}", flush=True)
    if torch is None:
        print("(PyTorch not installed: pip install torch==2.13.0 for its columns)")


if __name__ == "__main__":
    main()
