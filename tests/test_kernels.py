"""Kernels against a plain numpy reference (forward states, adjoint, parameter gradients)."""
import numpy as np
import pytest

from ocnet_problems.resnet import dense_kernels as kernels

SIGMA = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float)),
    "smoothrelu": (
        lambda z: np.where(z <= -0.1, 0, np.where(z >= 0.1, z, 2.5 * z * z + 0.5 * z + 0.025)),
        lambda z: np.where(z <= -0.1, 0, np.where(z >= 0.1, 1, 5 * z + 0.5)),
    ),
}


def reference(act, Ks, bs, h, u0, lamN):
    s, ds = SIGMA[act]
    U = [u0]
    for K, b in zip(Ks, bs):
        U.append(U[-1] + h * s(K @ U[-1] + b[:, None]))
    lam = lamN
    L = [lam]
    gK, gb = np.zeros_like(Ks), np.zeros_like(bs)
    for k in range(len(Ks) - 1, -1, -1):
        gz = h * ds(Ks[k] @ U[k] + bs[k][:, None]) * lam
        gK[k] = gz @ U[k].T
        gb[k] = gz.sum(1)
        lam = lam + Ks[k].T @ gz
        L.append(lam)
    return np.array(U), np.array(L[::-1]), gK, gb


@pytest.mark.parametrize("act", sorted(SIGMA))
@pytest.mark.parametrize("width", [3, 8, 40])
def test_sweeps_match_numpy(act, width):
    rng = np.random.default_rng(width)
    nl, B, h = 5, 37, 0.2
    Ks = rng.standard_normal((nl, width, width)) / np.sqrt(width)
    bs = 0.3 * rng.standard_normal((nl, width))
    U = np.zeros((nl + 1, width, B))
    U[0] = rng.standard_normal((width, B))
    D = np.zeros((nl, width, B))
    kernels.sweep(act, Ks, bs, h, U, D)
    L = np.zeros_like(U)
    L[-1] = rng.standard_normal((width, B))
    gK, gb = np.zeros_like(Ks), np.zeros_like(bs)
    kernels.sweep_adjoint(Ks, h, U, D, L, gK, gb)
    Ur, Lr, gKr, gbr = reference(act, Ks, bs, h, U[0], L[-1])
    np.testing.assert_allclose(U, Ur, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(L, Lr, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gK, gKr, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(gb, gbr, rtol=1e-11, atol=1e-12)
