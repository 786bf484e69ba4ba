"""Batched forms generated from two kernels (ocnet.plugin.kernels) against hand-written ones, form by
form, on the same block and data, side by side in one process.

    .venv/bin/python runs/bench_forms.py [--activation tanh] [--N 32] [--width 8] [--ntrain 5000] [--reps 7]

Two pairs on Peaks' data (states width x ntrain):

- ``single``: the ResNet's step u + h sigma(K u + b); generated from the two kernels below vs the
  ResNet's hand-written Numba forms (problems/resnet/dense_kernels.py);
- ``double``: u + h W2 sigma(W1 u + b1); ``-block double`` (generated) vs runs/handwritten_double.py.

Each form is called as MGRIT calls it (a whole block of N layers; runs of 7 with the look-ahead
gaps; C-point steps), CPU time of the process (``time.process_time``, so other work on a shared
machine does not count), interleaved, best of --reps x 3 calls.  Prints the time per call of
each, the ratio generated / hand-written, and the largest difference of their results (the same
arithmetic: 0 or round-off).
"""
import argparse
import os
import sys
import time

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "runs")]
from ocnet.plugin.activations import add_row_sums, residual_update  # noqa: E402
from ocnet.plugin.kernels import use_kernels  # noqa: E402


@njit(cache=True)
def single_step(n, h, theta, u, out, cache, work, args):
    """out = u + h sigma(K u + b), cache = sigma'(K u + b)."""
    w, act = args
    U = u.reshape(w, -1)
    B = U.shape[1]
    Z = work[:w * B].reshape(w, B)
    np.dot(theta[:w * w].reshape(w, w), U, Z)
    residual_update(act, Z, theta[w * w:], h, U, out.reshape(w, B), cache.reshape(w, B), Z, False, False)


@njit(cache=True)
def single_step_adjoint(n, h, theta, u, cache, lam_next, lam, grad, work, args):
    """g = h sigma' * lam_next; lam = lam_next + K^T g; grad += (g u^T, g 1)."""
    w = args[0]
    B = u.shape[0] // w
    g = work[:w * B]
    for s in range(g.shape[0]):
        g[s] = h * cache[s] * lam_next[s]
    G = g.reshape(w, B)
    if lam.shape[0]:
        np.dot(theta[:w * w].reshape(w, w).T, G, lam.reshape(w, B))
        for s in range(lam.shape[0]):
            lam[s] += lam_next[s]
    if grad.shape[0]:
        gK = work[w * B:w * B + w * w].reshape(w, w)
        np.dot(G, u.reshape(w, B).T, gK)
        for i in range(w):
            for j in range(w):
                grad[i * w + j] += gK[i, j]
        add_row_sums(G, grad[w * w:])


def make(cls, **kw):
    from ocnet.run.cli import framework_options
    opts = framework_options()
    cls.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v.update(kw)
    return cls(v, None)


def generated_single(Peaks, **kw):
    pb = make(Peaks, **kw)
    pb.kernel_args = lambda S: (pb.width, pb.act)
    pb.work_size = lambda S: S + pb.width * pb.width
    use_kernels(pb, single_step, single_step_adjoint)
    return pb


def forms(pb, N, rng):
    """The calls, as closures over fresh arrays of this problem: name -> (call, output array)."""
    d = pb.datasets["train"]
    S, Sc, p = pb.state_size(d), pb.cache_size(d), pb.layer_param_size
    r2 = np.random.default_rng(5)
    th = np.stack([pb.initial_layer_parameters(k, r2) for k in range(N + 1)])
    U = np.zeros((N + 2, S))
    pb.opening(np.random.default_rng(1).standard_normal(pb.global_param_size), d, U[0])
    C = np.zeros((N + 1, Sc))
    h = 1.0 / N
    pb.sweep(0, h, th[:N], U[:N + 1], C[:N])
    U[N + 1] = U[N]
    C[N] = C[N - 1]
    L = np.random.default_rng(2).standard_normal((N + 2, S))
    ns = np.arange(N + 2)
    runs = np.array([[a, min(a + 6, N - 1)] for a in range(1, N - 1, 8)], np.int64)
    out = np.zeros((len(runs), S))
    Gr = np.zeros((N + 1, p))
    return {
        "sweep": (lambda: pb.sweep(0, h, th[:N], U[:N + 1], C[:N]), U),
        "sweep_adjoint": (lambda: pb.sweep_adjoint(0, h, th[:N], U[:N + 1], C[:N], L[:N + 1], Gr[:N]), L),
        "parameter_gradient": (lambda: pb.parameter_gradient(0, h, th[:N], U[:N + 1], C[:N], L[:N + 1], Gr[:N]), Gr),
        "sweeps cache=False": (lambda: pb.sweeps(runs, ns, h, th, U, C, cache=False), U),
        "sweeps ahead=": (lambda: pb.sweeps(runs, ns, h, th, U, C, ahead=(out, np.arange(len(runs)))), out),
        "steps": (lambda: pb.steps(runs[:, 1] + 1, ns, h, th, U, C, out, np.arange(len(runs))), out),
        "steps minus=": (lambda: pb.steps(runs[:, 1] + 1, ns, h, th, U, C, out, np.arange(len(runs)), minus=True), out),
        "sweeps_adjoint": (lambda: pb.sweeps_adjoint(runs, ns, h, th, U, C, L), L),
        "sweeps_adjoint grad=": (lambda: pb.sweeps_adjoint(runs, ns, h, th, U, C, L, grad=Gr), Gr),
        "steps_adjoint": (lambda: pb.steps_adjoint(runs[:, 0] - 1, ns, h, th, U, C, L, out, np.arange(len(runs))),
                          out),
    }


def cpu(f, n=3):
    best = np.inf
    for _ in range(n):
        t0 = time.process_time()
        f()
        best = min(best, time.process_time() - t0)
    return best


def compare(title, gen, hand, N, reps):
    fg, fh = forms(gen, N, None), forms(hand, N, None)
    print(f"\n{title}")
    print(f"{'form':22s} {'generated ms':>13s} {'hand ms':>9s} {'gen/hand':>9s} {'max |diff|':>11s}")
    tot = [0.0, 0.0]
    for name in fg:
        (cg, og), (ch, oh) = fg[name], fh[name]
        cg(), ch()  # compile or load, and one call each: the outputs compared below
        diff = float(np.max(np.abs(og - oh)) / max(np.max(np.abs(oh)), 1e-300))
        ts_g, ts_h = [], []
        for _ in range(reps):  # interleaved
            ts_g.append(cpu(cg))
            ts_h.append(cpu(ch))
        tg, th = min(ts_g), min(ts_h)
        tot[0] += tg
        tot[1] += th
        print(f"{name:22s} {1e3 * tg:13.3f} {1e3 * th:9.3f} {tg / th:9.3f} {diff:11.1e}")
    print(f"{'all forms':22s} {1e3 * tot[0]:13.3f} {1e3 * tot[1]:9.3f} {tot[0] / tot[1]:9.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--ntrain", type=int, default=5000)
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    from handwritten_double import HandwrittenDouble
    from ocnet_problems.peaks import Peaks

    kw = dict(activation=a.activation, width=a.width, ntrain=a.ntrain, nval=0)
    print(f"# bench_forms {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: Peaks, N {a.N}, width {a.width}, "
          f"{a.ntrain} samples, {a.activation}; CPU time per call, best of {a.reps} x 3, interleaved")
    compare("single block: generated from two kernels vs the ResNet's hand-written forms",
            generated_single(Peaks, **kw), make(Peaks, **kw), a.N, a.reps)
    compare("double block: -block double (generated) vs runs/handwritten_double.py",
            make(Peaks, block="double", **kw), make(HandwrittenDouble, **kw), a.N, a.reps)


if __name__ == "__main__":
    main()
