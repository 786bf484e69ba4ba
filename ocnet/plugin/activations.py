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
- ``tanh_activate(z, b, a, d)``: the same for tanh;
- ``residual_update(kind, z, b, h, u, out, d, F, forced, minus)``: the residual step's update
  ``out = u + h sigma(z + b[:, None])`` and ``d = sigma'`` in one pass (the ResNet's), with an
  optional forcing or subtraction (pass ``z, False, False`` for neither);
- ``add_row_sums(X, out)``: ``out[i] += sum_s X[i, s]`` (a bias gradient), vectorised, fixed order.

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


@njit(inline="always")
def activation(kind, x):
    """ReLU (1) or SmoothReLU (2) as (sigma(x), sigma'(x)); tanh (0) goes through the array forms."""
    if kind == 1:
        return relu(x)
    return smoothrelu(x)


@njit(cache=True, error_model="numpy")
def tanh_residual_update(z, b, h, u, out, dsig, F, forced, minus):
    """The tanh case in three SIMD passes: e = exp(-2|x|) by Cody-Waite reduction, a degree-12
    polynomial and the exponent added through an int64 view (libm's exp is scalar in Numba);
    then tanh = sign(x) (1-e)/(1+e).  Accurate to a few ulp."""
    w, B = z.shape
    work = np.empty(B)
    nint = np.empty(B, np.int64)
    wi = work.view(np.int64)
    for i in range(w):
        bi = b[i]
        zi = z[i]
        for s in range(B):
            e, n = expm2abs_poly(zi[s] + bi)
            work[s] = e
            nint[s] = np.int64(n)
        for s in range(B):
            wi[s] += nint[s] << 52
        ui, oi, di, fi = u[i], out[i], dsig[i], F[i if forced else 0]
        for s in range(B):
            e = work[s]
            t = (1.0 - e) / (1.0 + e)
            t = t if zi[s] + bi >= 0.0 else -t
            v = ui[s] + h * t
            if minus:
                oi[s] = oi[s] - v
            else:
                oi[s] = v + fi[s] if forced else v
            di[s] = 1.0 - t * t


@njit(cache=True, error_model="numpy")
def residual_update(act, z, b, h, u, out, dsig, F, forced, minus):
    """The residual update in one pass: out = u + h*sigma(z + b[:, None]), dsig = sigma'(z + b[:, None])
    for sigma = code ``act``; z, u, out, dsig (rows, batch), b (rows,).  If ``forced``, the MGRIT
    forcing F (rows, batch) is added in the same pass: out = (u + h*sigma(.)) + F, rounded as a
    separate pass would; ``minus``: out = out - (u + h*sigma(.)) instead (FAS restriction,
    unforced).  Unforced calls pass any (rows, batch) array as F (e.g. z).  The ResNet's step."""
    if act == 0:
        tanh_residual_update(z, b, h, u, out, dsig, F, forced, minus)
        return
    w, B = z.shape
    for i in range(w):
        bi = b[i]
        zi, ui, oi, di, fi = z[i], u[i], out[i], dsig[i], F[i if forced else 0]
        for s in range(B):
            a, d = activation(act, zi[s] + bi)
            v = ui[s] + h * a
            if minus:
                oi[s] = oi[s] - v
            else:
                oi[s] = v + fi[s] if forced else v
            di[s] = d




@njit(cache=True)
def add_row_sums(X, out):
    """out[i] += sum_s X[i, s] for X (rows, batch): eight partial sums in a fixed order (so the
    result does not depend on anything but X; they vectorise, a single running sum does not)."""
    rows, B = X.shape
    m = B - B % 8
    for i in range(rows):
        xi = X[i]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        for s in range(0, m, 8):
            a0 += xi[s]
            a1 += xi[s + 1]
            a2 += xi[s + 2]
            a3 += xi[s + 3]
            a4 += xi[s + 4]
            a5 += xi[s + 5]
            a6 += xi[s + 6]
            a7 += xi[s + 7]
        acc = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
        for s in range(m, B):
            acc += xi[s]
        out[i] += acc
