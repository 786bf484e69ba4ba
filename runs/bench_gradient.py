"""Time one gradient evaluation of the paper's ResNet: ocnet (Numba kernels) vs plain numpy vs
PyTorch autograd (optional), side by side, single thread, float64, the same network and data.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python runs/bench_gradient.py [--repeat 7]

PyTorch is used only if importable (``pip install torch==2.13.0``); it is never a dependency.
"""
import argparse
import os
import time

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")

import numpy as np  # noqa: E402
import petsc4py  # noqa: E402

petsc4py.init([])
from petsc4py import PETSc  # noqa: E402

from ocnet.run.cli import framework_options  # noqa: E402
from ocnet.base.grid import LayerGrid  # noqa: E402
from ocnet.optim.objective import ReducedObjective  # noqa: E402
from ocnet_problems.resnet import Classification, ResNet  # noqa: E402

CASES = [(8, 5000, 32, 2, 5), (8, 5000, 256, 2, 5), (220, 4000, 29, 20, 10)]
COMM = PETSc.COMM_WORLD.tompi4py()


class Synthetic(ResNet):
    def __init__(self, values, comm, nin, nclasses, batch):
        rng = np.random.default_rng(0)
        data = Classification(rng.uniform(-1, 1, (nin, batch)), rng.integers(0, nclasses, batch))
        super().__init__(values, comm, nin, nclasses, {"train": data})


def build(width, batch, N, nin, C, act):
    opts = framework_options()
    ResNet.declare_options(opts)
    values = {o.name: o.default for o in opts.options}
    values.update(N=N, width=width, activation=act)
    pb = Synthetic(values, COMM, nin, C, batch)
    return ReducedObjective(LayerGrid.from_comm(N, 1.0, COMM), pb, COMM)


def unpack(obj, x):
    g, th = obj.design.split(x.getArray(readonly=True))
    pb = obj.problem
    Ks, bs = pb.split_layers(th)
    Wo, bo, Wc, c = pb.split_global(g)
    return [a.copy() for a in (Wo, bo, Ks, bs, Wc, c)]


def np_act(name):
    if name == "tanh":
        return np.tanh, lambda z, s: 1 - s * s
    if name == "relu":
        return lambda z: np.maximum(z, 0), lambda z, s: (z > 0).astype(z.dtype)
    return (lambda z: np.where(z <= -0.1, 0, np.where(z >= 0.1, z, 2.5 * z * z + 0.5 * z + 0.025)),
            lambda z, s: np.where(z <= -0.1, 0, np.where(z >= 0.1, 1, 5 * z + 0.5)))


def numpy_gradient(P, X, y, h, act):
    """Plain numpy forward + hand-written backward (losses and Tikhonov terms as ocnet)."""
    Wo, bo, Ks, bs, Wc, c = P
    s, ds = np_act(act)
    z0 = Wo @ X + bo[:, None]
    U = [s(z0)]
    Z = []
    for K, b in zip(Ks, bs):
        z = K @ U[-1] + b[:, None]
        Z.append(z)
        U.append(U[-1] + h * s(z))
    logits = Wc @ U[-1] + c[:, None]
    logits -= logits.max(0)
    e = np.exp(logits)
    S = e.sum(0)
    B = X.shape[1]
    loss = np.sum(np.log(S) - logits[y, np.arange(B)]) / B
    Pm = e / S
    Pm[y, np.arange(B)] -= 1
    Pm /= B
    gWc, gc = Pm @ U[-1].T, Pm.sum(1)
    lam = Wc.T @ Pm
    gK, gb = np.empty_like(Ks), np.empty_like(bs)
    for k in range(len(Ks) - 1, -1, -1):
        gz = h * ds(Z[k], None if act != "tanh" else np.tanh(Z[k])) * lam
        gK[k] = gz @ U[k].T
        gb[k] = gz.sum(1)
        lam = lam + Ks[k].T @ gz
    gz0 = ds(z0, U[0]) * lam
    return loss, (gz0 @ X.T, gz0.sum(1), gK, gb, gWc, gc)


def torch_gradient_fn(P, X, y, h, act):
    import torch

    torch.set_num_threads(1)
    T = [torch.tensor(a, requires_grad=True) for a in P]
    Xt, yt = torch.tensor(X.T.copy()), torch.tensor(y)
    sig = {"tanh": torch.tanh, "relu": torch.relu,
           "smoothrelu": lambda z: torch.where(z <= -0.1, torch.zeros_like(z),
                                               torch.where(z >= 0.1, z, 2.5 * z * z + 0.5 * z + 0.025))}[act]

    def run():
        for t in T:
            t.grad = None
        Wo, bo, Ks, bs, Wc, c = T
        u = sig(Xt @ Wo.T + bo)
        for k in range(Ks.shape[0]):
            u = u + h * sig(u @ Ks[k].T + bs[k])
        loss = torch.nn.functional.cross_entropy(u @ Wc.T + c, yt)
        loss.backward()
        return loss.item()
    return run


def best(f, repeat):
    f()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return min(ts) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--activations", default="smoothrelu,tanh")
    a = ap.parse_args()
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    print(f"one gradient evaluation, float64, 1 thread, best of {a.repeat} (ms)")
    print(f"{'width':>5} {'batch':>5} {'N':>4} {'act':>10} | {'ocnet':>8} {'numpy':>8} {'torch':>8} | "
          f"{'numpy/ocnet':>11} {'torch/ocnet':>11}")
    for act in a.activations.split(","):
        for width, batch, N, nin, C in CASES:
            obj = build(width, batch, N, nin, C, act)
            x = obj.design.initial(0)
            gv = x.duplicate()
            t_oc = best(lambda: obj.evaluate(x, gv), a.repeat)
            data = obj.problem.datasets["train"]
            P = unpack(obj, x)
            h = 1.0 / N
            lo, _ = numpy_gradient(P, data.X, data.y, h, act)
            t_np = best(lambda: numpy_gradient(P, data.X, data.y, h, act), a.repeat)
            t_th = float("nan")
            if have_torch:
                f = torch_gradient_fn(P, data.X, data.y, h, act)
                t_th = best(f, a.repeat)
            print(f"{width:5d} {batch:5d} {N:4d} {act:>10} | {t_oc:8.2f} {t_np:8.2f} {t_th:8.2f} | "
                  f"{t_np / t_oc:11.2f} {t_th / t_oc:11.2f}", flush=True)
    if not have_torch:
        print("(PyTorch not installed: pip install torch==2.13.0 for its column)")


if __name__ == "__main__":
    main()
