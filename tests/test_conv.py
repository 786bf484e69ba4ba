"""The convolutional ResNet: kernels against numpy, Taylor tests, MGRIT against the serial sweep,
exact = serial, rank-count-free histories, and the image data sets (digits, MNIST, IDX files)."""
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest
from petsc4py import PETSc

from ocnet.run.cli import framework_options
from ocnet_problems.images import MNIST, Digits
from ocnet_problems.resnet import conv_kernels as ck
from tests.conftest import history_column, mpiexec_prefix, run_ocnet
from tests.test_gradient import REGS, build, taylor_orders
from tests.test_kernels import SIGMA

COMM = PETSc.COMM_WORLD.tompi4py()


def conv_ref(K, u):
    """Zero-padded 3x3 cross-correlation, K (C_out, C_in, 3, 3), u (H, W, C_in, B)."""
    H, W, _, B = u.shape
    up = np.zeros((H + 2, W + 2) + u.shape[2:])
    up[1:-1, 1:-1] = u
    z = np.zeros((H, W, K.shape[0], B))
    for ty in range(3):
        for tx in range(3):
            z += np.einsum("oc,hwcb->hwob", K[:, :, ty, tx], up[ty:ty + H, tx:tx + W])
    return z


def reference(act, Ks, bs, h, u0, lamN):
    """States, adjoints and parameter gradients of the residual conv layers in plain numpy."""
    s, ds = SIGMA[act]
    U = [u0]
    for K, b in zip(Ks, bs):
        U.append(U[-1] + h * s(conv_ref(K, U[-1]) + b[:, None]))
    lam, L = lamN, [lamN]
    gK, gb = np.zeros_like(Ks), np.zeros_like(bs)
    for k in range(len(Ks) - 1, -1, -1):
        g = h * ds(conv_ref(Ks[k], U[k]) + bs[k][:, None]) * lam
        H, W = g.shape[:2]
        up = np.zeros((H + 2, W + 2) + U[k].shape[2:])
        up[1:-1, 1:-1] = U[k]
        for ty in range(3):
            for tx in range(3):
                gK[k][:, :, ty, tx] = np.einsum("hwob,hwcb->oc", g, up[ty:ty + H, tx:tx + W])
        gb[k] = g.sum(axis=(0, 1, 3))
        lam = lam + conv_ref(Ks[k][:, :, ::-1, ::-1].transpose(1, 0, 2, 3), g)  # the transposed conv
        L.append(lam)
    return np.array(U), np.array(L[::-1]), gK, gb


@pytest.mark.parametrize("act", sorted(SIGMA))
@pytest.mark.parametrize("C", [1, 3])
def test_kernels_match_numpy(act, C):
    rng = np.random.default_rng(C)
    nl, H, W, B, h = 3, 5, 4, 7, 0.3
    Ks = 0.4 * rng.standard_normal((nl, C, C, 3, 3))
    bs = 0.3 * rng.standard_normal((nl, C))
    K2s = np.ascontiguousarray(Ks.transpose(0, 1, 3, 4, 2).reshape(nl, C, 9 * C))
    U = np.zeros((nl + 1, H, W, C, B))
    U[0] = rng.standard_normal((H, W, C, B))
    D = np.zeros((nl, H, W, C, B))
    code = ck.ACTIVATIONS[act]
    ck.sweeps_kernel(code, np.array([[1, nl]]), K2s, bs, h, U, D, U[:0], False, True, 1)
    L = np.zeros_like(U)
    L[-1] = rng.standard_normal((H, W, C, B))
    gK2, gb = np.zeros_like(K2s), np.zeros_like(bs)
    K2ts = ck.flip_transpose(K2s, C)
    ck.sweep_adjoint_kernel(K2s, K2ts, h, U, D, L, gK2, gb, L[:0], False)
    Ur, Lr, gKr, gbr = reference(act, Ks, bs, h, U[0], L[-1])
    np.testing.assert_allclose(U, Ur, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(L, Lr, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gK2.reshape(nl, C, 3, 3, C).transpose(0, 1, 4, 2, 3), gKr, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gb, gbr, rtol=1e-11, atol=1e-12)
    # the MGRIT forms repeat the sweep's arithmetic bitwise: runs indexed by the point a step goes
    # into, independent steps, backward runs and the gradient from a given adjoint
    Dm = np.zeros((nl + 1, H, W, C, B))
    Um = U.copy()
    Um[1:] = 0
    K2p, bp, K2tp = (np.concatenate([a[:1], a]) for a in (K2s, bs, K2ts))
    ck.sweeps_kernel(code, np.array([[1, 1], [2, nl]]), K2p, bp, h, Um, Dm, Um[:0], False, True, 0)
    assert np.array_equal(Um, U) and np.array_equal(Dm[1:], D)
    out = np.zeros((2, H, W, C, B))
    ck.steps_kernel(code, np.array([3, 1]), K2p, bp, h, U, Dm, out, np.array([0, 1]), U[:0], False, True)
    assert np.array_equal(out[0], U[3]) and np.array_equal(out[1], U[1])
    Lm = np.zeros_like(L)
    Lm[-1] = L[-1]
    ck.sweeps_adjoint_kernel(np.array([[0, nl - 1]]), K2ts, h, D, Lm, Lm[:0], False)
    assert np.array_equal(Lm, L)
    ck.steps_adjoint_kernel(np.array([1, 0]), K2ts, h, D, L, out, np.array([1, 0]), L[:0], False)
    assert np.array_equal(out[1], L[1]) and np.array_equal(out[0], L[0])
    gK2m, gbm = np.zeros_like(K2s), np.zeros_like(bs)
    ck.param_gradient_kernel(h, U, D, L, gK2m, gbm)
    assert np.array_equal(gK2m, gK2) and np.array_equal(gbm, gb)


@pytest.mark.parametrize("reg", sorted(REGS))
@pytest.mark.parametrize("act", ["tanh", "relu", "smoothrelu"])
def test_taylor_conv(act, reg):
    """The whole gradient (opening conv, residual conv layers, classifier, regularisers)."""
    eps0 = 1e-4 if act == "relu" else 1e-2  # see test_taylor_resnet
    obj = build(Digits, N=3, channels=2, ntrain=20, nval=0, activation=act, **REGS[reg])
    orders, rem = taylor_orders(obj, eps0=eps0)
    assert np.all(orders > 1.8), (orders, rem)


@pytest.mark.parametrize("pool", [2, 4])
def test_pooled_classifier(pool):
    """-pool p: the features are p x p means of each channel, features_adjoint is their transpose
    (a dot test), and the whole gradient passes the Taylor test."""
    obj = build(Digits, N=2, channels=2, ntrain=20, nval=0, pool=pool, gamma_class=1e-3)
    pb = obj.problem
    assert pb.nfeat == 2 * 64 // pool ** 2 and pb.global_param_size == pb.n_open + 10 * pb.nfeat + 10
    rng = np.random.default_rng(pool)
    u = rng.standard_normal(pb.width * 3)
    f = pb.features(u)
    U = u.reshape(8, 8, 2, 3)
    assert np.allclose(f.reshape(8 // pool, 8 // pool, 2, 3)[1, 0], U[pool:2 * pool, :pool].mean(axis=(0, 1)))
    lf, lam = rng.standard_normal(f.size), np.empty_like(u)
    pb.features_adjoint(lf, lam)
    assert abs(lf @ f.ravel() - lam @ u) < 1e-12 * abs(lam @ u)
    orders, rem = taylor_orders(obj, eps0=1e-2)
    assert np.all(orders > 1.8), (orders, rem)


SCRIPT = os.path.join(os.path.dirname(__file__), "mgrit_check.py")


@pytest.mark.parametrize("nprocs,N,levels,cf", [(2, 12, 1, 2), (3, 17, 3, 2)])
def test_mgrit_conv_matches_serial(nprocs, N, levels, cf):
    """Batched MGRIT forms of the conv plugin: one level bitwise serial, three to 1e-10."""
    cmd = mpiexec_prefix(nprocs) + [sys.executable, SCRIPT, str(N), str(levels), str(cf), "problem=digits"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 0 and "OK" in p.stdout, p.stdout + p.stderr


DIGITS = ["-problem", "digits", "-N", 8, "-channels", 2, "-ntrain", 100, "-nval", 50, "-tao_max_it", 10,
          "-quiet", "-mgrit_cfactor", 2]


def test_exact_matches_serial_and_plots(tmp_path):
    run_ocnet(DIGITS + ["-run_dir", tmp_path / "s"], plots=True)
    run_ocnet(DIGITS + ["-mode", "exact", "-mgrit_rtol", 1e-12, "-run_dir", tmp_path / "e"], nprocs=2)
    s, e = history_column(tmp_path / "s"), history_column(tmp_path / "e")
    assert len(s) == len(e) == 11 and s[-1] < 0.8 * s[0]
    np.testing.assert_allclose(e, s, rtol=1e-8)
    for name in ("samples.png", "confusion.png"):
        assert os.path.getsize(tmp_path / "s" / name) > 1000


@pytest.mark.parametrize("mode", ["serial", "oneshot"])
def test_ranks_agree(tmp_path, mode):
    for p in (1, 2, 3):
        run_ocnet(DIGITS + ["-mode", mode, "-run_dir", tmp_path / f"p{p}"], nprocs=p)
    for name in ("objective", "val_accuracy"):
        ref = history_column(tmp_path / "p1", name)
        assert len(ref) == 11
        for p in (2, 3):
            np.testing.assert_allclose(history_column(tmp_path / f"p{p}", name), ref, rtol=1e-10, atol=0, err_msg=name)


def problem(cls, **over):
    opts = framework_options()
    cls.declare_options(opts)
    values = {o.name: o.default for o in opts.options}
    values.update(over)
    return cls(values, COMM)


def test_mnist_subset_stratified_split():
    pb = problem(MNIST, channels=1)
    tr, va = pb.datasets["train"], pb.datasets["val"]
    assert tr.X.shape == (784, 4000) and va.X.shape == (784, 1000)
    assert np.array_equal(np.bincount(tr.y), [400] * 10) and np.array_equal(np.bincount(va.y), [100] * 10)
    assert tr.X.min() == 0.0 and tr.X.max() == 1.0
    again = problem(MNIST, channels=1)
    assert np.array_equal(again.datasets["val"].y, va.y)
    other = problem(MNIST, channels=1, data_seed=2)
    assert not np.array_equal(other.datasets["val"].X, va.X)


def write_idx(path, a):
    head = bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">i4").tobytes()
    with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
        f.write(head + a.astype(np.uint8).tobytes())


def test_mnist_idx_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 6, 5))
    labels = np.repeat(np.arange(10), 4)
    write_idx(str(tmp_path / "train-images-idx3-ubyte.gz"), images)
    write_idx(str(tmp_path / "train-labels-idx1-ubyte"), labels)
    pb = problem(MNIST, channels=1, data_dir=str(tmp_path), ntrain=30, nval=10)
    tr = pb.datasets["train"]
    assert (pb.H, pb.W) == (6, 5) and tr.X.shape == (30, 30)
    assert np.array_equal(np.bincount(pb.datasets["val"].y), [1] * 10)
    same = (np.rint(tr.X.T * 255)[:, None, :] == images.reshape(40, -1)[None]).all(axis=2)  # (30, 40)
    assert (same.sum(axis=1) == 1).all() and np.array_equal(labels[same.argmax(axis=1)], tr.y)


@pytest.mark.parametrize("args,message", [
    (["-problem", "mnist", "-data_dir", "/nonexistent/mnist"], "-data_dir: no folder '/nonexistent/mnist'"),
    (["-problem", "digits", "-ntrain", 1700, "-nval", 400], "-ntrain 1700 -nval 400: need ntrain > 0"),
    (["-problem", "digits", "-channels", 0], "option -channels: 0 is out of range"),
    (["-problem", "digits", "-pool", 3], "-pool 3 does not divide the 8 x 8 images"),
])
def test_bad_image_options(args, message):
    p = run_ocnet(args + ["-N", 2, "-quiet"], timeout=120, check=False)
    assert p.returncode == 2 and p.stderr.strip().startswith("ocnet: error: ") and message in p.stderr, p.stderr


def test_load_names_the_data_options_the_sizes_follow(tmp_path):
    """A model trained on images of another size (-data_dir) loaded without its data options: the
    error names them (it named only the parameter sizes; a tester tried -data_dir alone, then
    -ntrain/-nval)."""
    rng = np.random.default_rng(0)
    write_idx(str(tmp_path / "train-images-idx3-ubyte"), rng.integers(0, 256, (40, 12, 12)))
    write_idx(str(tmp_path / "train-labels-idx1-ubyte"), np.repeat(np.arange(10), 4))
    run_ocnet(["-problem", "mnist", "-data_dir", tmp_path, "-ntrain", 30, "-nval", 10, "-N", 2, "-tao_max_it", 1,
               "-quiet", "-run_dir", tmp_path / "r"], timeout=120)
    p = run_ocnet(["-load", tmp_path / "r", "-tao_max_it", 0, "-quiet"], timeout=120, check=False)
    assert p.returncode == 2 and "holds parameters of another model: parameter sizes" in p.stderr, p.stderr
    hint = p.stderr.split("; the saved run had other data options (")[1]
    for d in ("-ntrain 30 (now 4000)", "-nval 10 (now 1000)", f"-data_dir {tmp_path} (now not given)"):
        assert d in hint, p.stderr
    run_ocnet(["-load", tmp_path / "r", "-data_dir", tmp_path, "-ntrain", 30, "-nval", 10, "-tao_max_it", 0, "-quiet"],
              timeout=120)
