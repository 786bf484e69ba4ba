"""Fast activations for plugin kernels: tanh, SmoothReLU and ReLU with their derivatives, in Numba.

The ResNet kernels (``ocnet_problems.resnet``) use these; a plugin's own kernels may call them
too (they are ``@njit`` functions; call them from jitted code).  Why not ``np.tanh``: numpy and
Numba call the scalar libm ``tanh``/``exp`` per element, which does not vectorise; here ``tanh``
goes through ``exp(-2|x|)`` by Cody-Waite reduction, a degree-12 Taylor polynomial and the exponent
added through an int64 view, in SIMD passes, accurate to a few ulp.  ``runs/bench_activations.py``
prints the speed of each against numpy's.

Scalar forms (inline, return ``(sigma(x), sigma'(x))``, branch-free so loops vectorise):

- ``relu(x)``: max(x, 0), derivative 1 for x > 0 else 0;
- ``smoothrelu(x)``: the SmoothReLU of Guenther et al. (SIMODS 2020): 0 below -0.1, x above 0.1,
  the C^1 quadratic 2.5x^2 + 0.5x + 0.025 between.

Array forms on 2-D ``z`` (rows, batch), C-contiguous float64, with a per-row bias ``b`` (rows,):

- ``activate(kind, z, b, a, d)``: ``a = sigma(z + b[:, None])``, ``d = sigma'(z + b[:, None])``
  (``a`` may be ``z``), ``kind`` = ``ACTIVATIONS[name]``;
- ``tanh_activate(z, b, a, d)``: the same for tanh.

``ACTIVATIONS`` maps the option value (``-activation``) to the integer code the kernels take
(an integer, not a function argument: Numba's on-disk cache cannot key on a function argument).
"""
import numpy as np
from numba import njit

#: option value -> kernel code
ACTIVATIONS = {"tanh": 0, "relu": 1, "smoothrelu": 2}

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10


@njit(inline="always")
def relu(x):
    """(max(x, 0), 1 if x > 0 else 0)."""
    return max(x, 0.0), (1.0 if x > 0.0 else 0.0)


@njit(inline="always")
def smoothrelu(x):
    """(SmoothReLU(x), its derivative): written with the clamp c = clip(x, -0.1, 0.1), no branches."""
    c = min(max(x, -0.1), 0.1)
    return (2.5 * c + 0.5) * c + 0.025 + max(x - 0.1, 0.0), 5.0 * c + 0.5


@njit(inline="always")
def expm2abs_poly(x):
    """(e, n): exp(-2|x|) = e * 2^n with e the polynomial part (n an integer-valued float); the
    caller adds n to the exponent (``tanh_activate`` does it through an int64 view, a SIMD pass)."""
    a = min(2.0 * abs(x), 40.0)  # exp(-40) is below half an ulp of 1
    n = np.floor(-a * LOG2E + 0.5)
    r = (-a - n * LN2_HI) - n * LN2_LO
    e = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (
        1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (
            1 / 39916800 + r * (1 / 479001600))))))))))))
    return e, n


@njit(cache=True, error_model="numpy")
def tanh_activate(z, b, a, d):
    """a = tanh(z + b[:, None]), d = 1 - a^2, in three SIMD passes per row (``a`` may be ``z``)."""
    w, B = z.shape
    work = np.empty(B)
    nint = np.empty(B, np.int64)
    wi = work.view(np.int64)
    for i in range(w):
        bi = b[i]
        zi, ai, di = z[i], a[i], d[i]
        for s in range(B):
            e, n = expm2abs_poly(zi[s] + bi)
            work[s] = e
            nint[s] = np.int64(n)
        for s in range(B):
            wi[s] += nint[s] << 52
        for s in range(B):
            e = work[s]
            t = (1.0 - e) / (1.0 + e)
            t = t if zi[s] + bi >= 0.0 else -t
            ai[s] = t
            di[s] = 1.0 - t * t


@njit(cache=True, error_model="numpy")
def activate(kind, z, b, a, d):
    """a = sigma(z + b[:, None]), d = sigma'(z + b[:, None]) for sigma = ACTIVATIONS code ``kind``
    (0 tanh, 1 relu, 2 smoothrelu); z, a, d (rows, batch), b (rows,); ``a`` may be ``z``."""
    if kind == 0:
        tanh_activate(z, b, a, d)
        return
    w, B = z.shape
    for i in range(w):
        bi = b[i]
        zi, ai, di = z[i], a[i], d[i]
        if kind == 1:
            for s in range(B):
                ai[s], di[s] = relu(zi[s] + bi)
        else:
            for s in range(B):
                ai[s], di[s] = smoothrelu(zi[s] + bi)
