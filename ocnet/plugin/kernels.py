"""Fast plugins from two kernels: every batched form compiled from one jitted step and its transpose.

Write the step of your problem and its transposed Jacobian once, as two Numba-jitted functions on a
single state, and derive the plugin from ``KernelProblem``::

    from numba import njit
    from ocnet.plugin.kernels import KernelProblem

    @njit(cache=True)
    def my_step(n, h, theta, u, out, cache, work, args):
        ...                                    # out[:] = Phi_n(u; theta, h); fill cache (e.g. sigma')

    @njit(cache=True)
    def my_step_adjoint(n, h, theta, u, cache, lam_next, lam, grad, work, args):
        ...                                    # if lam.size: lam[:] = (dPhi_n/du)^T lam_next
                                               # if grad.size: grad += (dPhi_n/dtheta)^T lam_next

    class MyProblem(KernelProblem):
        step_kernel = my_step
        step_adjoint_kernel = my_step_adjoint
        def kernel_args(self, S): return (self.width,)       # constants the kernels need (a tuple)
        def work_size(self, S): return 2 * S                  # doubles of scratch per call (default 0)
        ...                                                   # data, opening, terminal as usual

``u, out, cache, lam_next, lam, grad, work`` are flat C-contiguous float64 arrays (reshape them
in the kernel, e.g. ``u.reshape(w, -1)``), ``theta`` (p,), ``n`` the fine layer index of the
step (MGRIT's coarse levels call it with ``n = j*m`` and ``h*m``), ``args`` the tuple of
``kernel_args``.  ``lam`` has size 0 when only the parameter gradient is wanted
(``parameter_gradient``), ``grad`` size 0 when it is not (the transposed sweeps of adjoint MGRIT).

ocnet then supplies ``step``, ``step_adjoint`` and all nine batched forms of the contract
(``sweep``, ``sweep_adjoint``, ``parameter_gradient`` with ``rows=``, ``sweeps`` with forcing,
``cache=`` and ``ahead=``, ``steps`` with ``minus=``, ``sweeps_adjoint`` with ``grad=`` and
``ahead=``, ``steps_adjoint`` with ``minus=``) as compiled loops that call the kernels: no Python
per layer or per C-point on any MGRIT level.  The loops are the source of ``kernel_loops``,
copied per kernel pair into a generated module whose name hashes the source files of the two
kernels, so Numba's on-disk cache (``cache=True``) serves a second run and a changed kernel file
gets fresh code.  A kernel's callees in *other* files are not hashed (as in Numba itself): clear
the cache folder after changing them.  Generated modules live in ``$NUMBA_CACHE_DIR/ocnet_kernels``
or, without that variable, ``~/.cache/ocnet/kernels``.

A problem that chooses its kernels per instance (e.g. by an option) calls ``use_kernels`` in its
``__init__`` (the ResNet's ``-block double`` does).
"""
import hashlib
import importlib.util
import inspect
import os
import sys
import tempfile

import numpy as np

from ..base.errors import OcnetError
from .problem import BATCHED_FORMS, ControlProblem, defining_class

_COMPILED = {}  # (step kernel, adjoint kernel) -> generated module

#: how the generated loops call the kernels (the contract above)
SIGNATURES = {"step_kernel": "(n, h, theta, u, out, cache, work, args)",
              "step_adjoint_kernel": "(n, h, theta, u, cache, lam_next, lam, grad, work, args)"}

#: the kernels of plugins (outside the ocnet package) in use: {function name: (role, file, line)};
#: an error report names a kernel that does not compile from it (ocnet.run.cli.describe)
PLUGIN_KERNELS = {}


def cache_folder():
    """Where the generated loop modules (and Numba's cache of them) live."""
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        return os.path.join(base, "ocnet_kernels")
    return os.path.join(os.path.expanduser("~"), ".cache", "ocnet", "kernels")


def _is_kernel(f):
    return hasattr(f, "py_func") and hasattr(f, "compile")


def _source_fingerprint(kernel):
    """Text that changes when the kernel (or anything else in its source file) changes."""
    fn = kernel.py_func
    try:
        path = inspect.getsourcefile(fn)
        with open(path, "rb") as f:
            text = f.read()
    except (TypeError, OSError):  # defined interactively: its code object is all there is
        path, text = "<none>", repr((fn.__code__.co_code, fn.__code__.co_consts)).encode()
    return f"{fn.__module__}:{fn.__qualname__}:{path}:".encode() + text


def compile_forms(step_kernel, step_adjoint_kernel):
    """The module of compiled batched forms for this kernel pair (built once per process).

    Raises OcnetError when either is not a Numba dispatcher (``@njit``) or the cache folder
    cannot be written."""
    for what, k in (("step_kernel", step_kernel), ("step_adjoint_kernel", step_adjoint_kernel)):
        if not _is_kernel(k):
            raise OcnetError(f"{what} must be a Numba-jitted function (@numba.njit), not {type(k).__name__}")
    key = (step_kernel, step_adjoint_kernel)
    if key in _COMPILED:
        return _COMPILED[key]
    import numba

    from . import activations, kernel_loops
    template = open(kernel_loops.__file__, "rb").read()
    h = hashlib.sha256(template)
    for part in (_source_fingerprint(step_kernel), _source_fingerprint(step_adjoint_kernel),
                 open(activations.__file__, "rb").read(), numba.__version__.encode()):
        h.update(part)
    name = f"ocnet_kernels_{h.hexdigest()[:20]}"
    folder = cache_folder()
    path = os.path.join(folder, name + ".py")
    try:
        if not os.path.isfile(path):  # written once: rewriting would change its stamp and void Numba's cache
            os.makedirs(folder, exist_ok=True)
            header = (f"# generated by ocnet.plugin.kernels for {step_kernel.py_func.__module__}."
                      f"{step_kernel.py_func.__qualname__} / {step_adjoint_kernel.py_func.__qualname__}\n").encode()
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(header + template)
            os.replace(tmp, path)  # atomic: ranks racing to write it write the same text
    except OSError as e:
        raise OcnetError(f"cannot write the compiled-forms module into '{folder}': {e}") from None
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.STEP, mod.STEP_ADJOINT = step_kernel, step_adjoint_kernel  # globals, read at the first compile
    inside = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for what, k in (("step_kernel", step_kernel), ("step_adjoint_kernel", step_adjoint_kernel)):
        try:  # (the def line, after the decorators)
            lines, first = inspect.getsourcelines(k.py_func)
            where = (os.path.abspath(inspect.getsourcefile(k.py_func)),
                     first + next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("def ")), 0))
        except (TypeError, OSError):  # defined interactively
            where = ("<unknown>", 0)
        if not where[0].startswith(inside + os.sep):
            PLUGIN_KERNELS[k.py_func.__name__] = (what,) + where
    sys.modules[name] = mod
    _COMPILED[key] = mod
    return mod


def _fwd(X):
    """(array in forward row order, reversed?) for a row array that MGRIT may hand over back to
    front (its adjoint levels): the loops index the flipped, C-ordered view."""
    if X.ndim == 2 and X.shape[0] > 1 and X.strides[0] < 0:
        return X[::-1], True
    return X, False


def _c(X):
    """A read-only row array as C-contiguous (copied only if it is not)."""
    return X if X.flags.c_contiguous else np.ascontiguousarray(X)


_NO_ROWS = np.zeros(0, np.int64)


class GeneratedForms:
    """The contract's step-level and batched methods of one problem, from its two kernels.

    ``problem`` supplies ``kernel_args(S)`` and ``work_size(S)``; the methods have the contract's
    signatures (CONTRACT.md) and are bound onto the problem by ``use_kernels``."""

    def __init__(self, problem, step_kernel, step_adjoint_kernel):
        self.problem = problem
        self.kernels = (step_kernel, step_adjoint_kernel)
        self.mod = compile_forms(step_kernel, step_adjoint_kernel)
        self._args = {}

    def describe(self):
        a, b = self.kernels
        return f"the forms generated from the kernels {a.py_func.__qualname__} and {b.py_func.__qualname__}"

    def _a(self, S):
        """(work size, args) for states of size S (asked of the problem once per S)."""
        r = self._args.get(S)
        if r is None:
            args = self.problem.kernel_args(S)
            if not isinstance(args, tuple):
                raise OcnetError(f"problem '{self.problem.name}': kernel_args must return a tuple, "
                                 f"not {type(args).__name__}")
            r = self._args[S] = (int(self.problem.work_size(S)), args)
        return r

    # ---- step level ----------------------------------------------------------------------
    def step(self, n, h, theta, u, out, cache):
        self.mod.one_step(n, h, _c(theta), u, out, cache, *self._a(u.shape[0]))

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        self.mod.one_step_adjoint(n, h, _c(theta), u, cache, lam_next, lam, grad_theta, *self._a(u.shape[0]))

    # ---- batched forms ---------------------------------------------------------------------
    def sweep(self, n0, h, thetas, U, C, F=None):
        self.mod.sweep(n0, h, _c(thetas), U, C, U[:0] if F is None else _c(F), F is not None, *self._a(U.shape[1]))

    def sweep_adjoint(self, n0, h, thetas, U, C, Lam, G, F=None):
        self.mod.sweep_adjoint(n0, h, _c(thetas), _c(U), _c(C), Lam, G, Lam[:0] if F is None else _c(F),
                               F is not None, *self._a(U.shape[1]))

    def parameter_gradient(self, n0, h, thetas, U, C, Lam, G, rows=None):
        rows_ = _NO_ROWS if rows is None else np.asarray(rows, np.int64)
        self.mod.parameter_gradient(n0, h, _c(thetas), _c(U), _c(C), _c(Lam), G, rows_, rows is None,
                                    *self._a(U.shape[1]))

    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True, ahead=None):
        A, arows = (U[:0], _NO_ROWS) if ahead is None else (ahead[0], np.asarray(ahead[1], np.int64))
        self.mod.sweeps(np.asarray(runs, np.int64).reshape(-1, 2), np.asarray(ns, np.int64), h, _c(thetas), U, C,
                        U[:0] if F is None else _c(F), F is not None, bool(cache), A, arows, *self._a(U.shape[1]))

    def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True, minus=False):
        self.mod.steps(np.asarray(rows, np.int64), np.asarray(ns, np.int64), h, _c(thetas), U, C, out,
                       np.asarray(out_rows, np.int64), U[:0] if F is None else _c(F), F is not None, bool(cache),
                       bool(minus), *self._a(U.shape[1]))

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None, grad=None, ahead=None):
        L, lrev = _fwd(Lam)
        Fs, frev = (L[:0], False) if F is None else _fwd(F)
        A, arows = (L[:0], _NO_ROWS) if ahead is None else (ahead[0], np.asarray(ahead[1], np.int64))
        G = np.empty((0, thetas.shape[1])) if grad is None else grad  # (thetas may be read-only)
        self.mod.sweeps_adjoint(np.asarray(runs, np.int64).reshape(-1, 2), np.asarray(ns, np.int64), h, _c(thetas),
                                _c(U), _c(C), L, lrev, _c(Fs), F is not None, frev, G, grad is not None, A, arows,
                                *self._a(U.shape[1]))

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None, minus=False):
        L, lrev = _fwd(Lam)
        Fs, frev = (L[:0], False) if F is None else _fwd(F)
        self.mod.steps_adjoint(np.asarray(rows, np.int64), np.asarray(ns, np.int64), h, _c(thetas), _c(U), _c(C),
                               L, lrev, out, np.asarray(out_rows, np.int64), _c(Fs), F is not None, frev,
                               bool(minus), *self._a(U.shape[1]))


def use_kernels(problem, step_kernel, step_adjoint_kernel, names=None):
    """Bind the forms generated from the two kernels onto ``problem`` (instance attributes, so
    they win over any class's methods): ``step``, ``step_adjoint`` and every batched form (or
    only ``names``).  Returns the ``GeneratedForms``.  For problems choosing their step at run
    time (the ResNet's ``-block``); a class with fixed kernels derives from ``KernelProblem``."""
    forms = GeneratedForms(problem, step_kernel, step_adjoint_kernel)
    for name in ("step", "step_adjoint") + BATCHED_FORMS if names is None else names:
        setattr(problem, name, getattr(forms, name))
    problem._generated_forms = forms
    return forms


def check_kernel_bounds(problem, h):
    """One forward and one transposed step of ``problem``'s kernels (its generated forms, if it
    has them) on the training data, at layer 0 and the initial parameters, with every array the
    kernels write -- ``out``, ``cache``, ``lam``, ``grad`` and each call's ``work`` -- followed by
    a guard zone: a kernel that writes past the size ocnet gives it (``cache_size`` or
    ``work_size`` left at its default 0, a reshape of the wrong size) raises OcnetError naming the
    array, where it would corrupt memory and crash the process later (a tester's
    ``munmap_chunk(): invalid pointer``).  A step that raises (e.g. Numba's ``total size of new
    array must be unchanged`` for ``work[:k].reshape(...)`` with a ``work_size`` below k) is tried
    again with one array at a time (both work arrays at once) holding its guard zone: when it then
    runs and writes into it, the error names that array too; otherwise the step's own error is
    raised.  On two samples where the plugin takes subsets (``data_size``/``subset``, as for
    -batch_size), then again at the run's size (its -batch_size, else all samples; states up to
    RUN_SIZE_CHECKED doubles), else on all.  A write further than 4 max(S, work) + 1024 doubles
    past an array (at the run's size: up to 100 000 + 1024) is not caught."""
    from .problem import probe
    forms = getattr(problem, "_generated_forms", None)
    probed = probe(problem) if forms is not None else None
    if probed is None:
        return
    _check_bounds(problem, forms, h, probed)
    # again at the size the run steps (its mini-batch, else all samples) where the first was on two
    # samples: a work_size or cache_size not proportional to S passed there and corrupted the heap
    # in the run (a tester's min(S/d, 3)); up to RUN_SIZE_CHECKED doubles of state
    size = getattr(problem, "data_size", None)
    if callable(getattr(problem, "subset", None)) and callable(size):
        n = size(problem.datasets["train"])
        batch = int(problem.values.get("batch_size") or 0)
        run = probe(problem, min(batch, n) if batch else n)
        if run[1] != probed[1] and run[1] <= RUN_SIZE_CHECKED:
            _check_bounds(problem, forms, h, run, cap=100_000)


#: the largest state (doubles) check_kernel_bounds also steps at the run's size
RUN_SIZE_CHECKED = 1_000_000


def _check_bounds(problem, forms, h, probed, cap=None):
    """check_kernel_bounds at one size: ``probed`` as ocnet.plugin.problem.probe returns it; a
    guard zone of 4 max(S, work) doubles behind each array, at most ``cap``, plus 1024."""
    from .problem import MARKER
    data, S, Sc, p, g, theta = probed
    u = np.empty(S)
    problem.opening(g, data, u)
    nwork, args = forms._a(S)
    pad = 1024 + (4 * max(S, nwork) if cap is None else min(4 * max(S, nwork), cap))
    a, b = forms.kernels
    sizes = {"out": (S, "state_size(data)", a), "cache": (Sc, "cache_size(data)", a),
             "work": (nwork, "work_size(S)", a), "lam": (S, "state_size(data)", b),
             "grad": (p, "layer_param_size", b), "work ": (nwork, "work_size(S)", b)}

    def steps(direct, whole=()):
        """Both steps on guarded arrays: through the generated forms (their own work arrays) or by
        calling the kernels themselves (work guarded too); the arrays named in ``whole`` are handed
        over with their guard zones."""
        arr = {k: np.full(n + pad, MARKER) for k, (n, _, _) in sizes.items()}  # (the guard zones hold it)
        v = {k: x if k in whole else x[:sizes[k][0]] for k, x in arr.items()}
        lam_next = np.ones(S)
        if direct:
            a(0, h, theta, u, v["out"], v["cache"], v["work"], args)
            if _past_end(arr, sizes, MARKER):  # (before the transposed step reads what it wrote)
                return arr
            b(0, h, theta, u, v["cache"], lam_next, v["lam"], v["grad"], v["work "], args)
        else:
            forms.step(0, h, theta, u, v["out"], v["cache"])
            forms.step_adjoint(0, h, theta, u, v["cache"], lam_next, v["lam"], v["grad"])
            del arr["work"], arr["work "]
        return arr

    failed = None
    try:  # the kernels themselves: the generated forms allocate work where no guard zone follows it
        arr = steps(True)
    except Exception as e:  # (a diagnosis below, else this error as the run would raise it)
        failed = e
    if failed is not None:
        for names in (("work", "work "), ("cache",), ("out",), ("lam",), ("grad",)):
            try:
                arr = steps(True, names)
            except Exception:
                continue
            if _past_end(arr, sizes, MARKER):
                break
        else:  # through the forms, as the run calls them: their error report names the kernels
            arr, failed = steps(False), None
    hit = _past_end(arr, sizes, MARKER)
    if hit:
        name, last = hit
        length, size, kernel = sizes[name]
        k = kernel.py_func.__qualname__
        name = name.strip()
        how = f"it wrote up to index {last}" if failed is None else \
            f"it raised {type(failed).__name__}: {failed}, and with more room wrote up to index {last}"
        raise OcnetError(f"problem '{problem.name}': its kernel {k} wrote past the end of its '{name}' array "
                         f"({length} doubles, from {size}; {how}): "
                         + (f"{size} too small" + (" (default 0: override it)" if _default(problem, name) else
                                                   f" at S = {S}") if name in ("cache", "work") else
                            f"a size the kernel assumes differs from {size}")
                         + " (docs/plugins/fast.md)")


def _default(problem, name):
    """Whether ``problem`` keeps the default (0) of cache_size / work_size (``name`` 'cache' / 'work')."""
    method = {"cache": "cache_size", "work": "work_size"}[name]
    f = getattr(type(problem), method, None)
    return f is None or any(f is getattr(c, method, None) for c in (ControlProblem, KernelProblem))


def _past_end(arr, sizes, marker):
    """(array name, last index written) of the first guarded array written past its size, or None."""
    for name, x in arr.items():
        n = sizes[name][0]
        hit = np.flatnonzero(x[n:] != marker)
        if hit.size:
            return name, n + hit[-1]
    return None


class KernelProblem(ControlProblem):
    """A plugin written as two jitted kernels (see the module docstring): set the class attributes
    ``step_kernel`` and ``step_adjoint_kernel``, and define ``kernel_args``/``work_size`` if the
    kernels need constants or scratch.  Everything else (data, opening, terminal, ...) as for
    ``ControlProblem``.  A subclass may replace the kernels; the forms follow them."""

    #: its forms work for any kernels (ocnet.plugin.problem.stale_forms)
    _generic_forms = True
    #: the forward step, @njit: (n, h, theta, u, out, cache, work, args)
    step_kernel = None
    #: its transpose, @njit: (n, h, theta, u, cache, lam_next, lam, grad, work, args)
    step_adjoint_kernel = None

    def kernel_args(self, S):
        """The constant tuple handed to the kernels as ``args`` for states of size S (e.g. the
        width, to reshape the flat state).  Default ``()``."""
        return ()

    def work_size(self, S):
        """Doubles of scratch (``work``) the kernels need per call for states of size S.  Default 0."""
        return 0

    def __init__(self, values, comm):
        super().__init__(values, comm)
        cls = type(self)
        if cls.step_kernel is None or cls.step_adjoint_kernel is None:
            raise OcnetError(f"problem '{self.name}': a KernelProblem sets both step_kernel and "
                             "step_adjoint_kernel (Numba-jitted functions)")
        # a subclass whose Python step/step_adjoint comes at or below the kernels' class defines
        # the step: the kernels' forms would run another step, so they are not bound (the
        # generic loops over its step run; guard_forms says so)
        mro = cls.__mro__
        kernels = min((defining_class(cls, k) for k in ("step_kernel", "step_adjoint_kernel")), key=mro.index)
        python = {n: defining_class(cls, n) for n in ("step", "step_adjoint")}
        over = [n for n, d in python.items() if d not in (ControlProblem, KernelProblem) and issubclass(d, kernels)]
        if over:
            if len(over) == 1:
                other = "step_adjoint" if over[0] == "step" else "step"
                raise OcnetError(f"problem '{self.name}': {python[over[0]].__qualname__} overrides {over[0]} but "
                                 f"inherits {other} from {kernels.__qualname__}'s kernels, written for another "
                                 f"step; override {other} too (if {python[over[0]].__qualname__}.{over[0]} only "
                                 f"wraps {kernels.__qualname__}'s, say so in its class body: {other} = "
                                 f"{kernels.__qualname__}.{other})")
            self._kernels_unused = (min(python.values(), key=mro.index), kernels)
            return
        # forms a subclass writes by hand stay (guard_forms replaces them if written for other kernels)
        own = [n for n in ("step", "step_adjoint") + BATCHED_FORMS
               if defining_class(cls, n) in (ControlProblem, KernelProblem)]
        use_kernels(self, cls.step_kernel, cls.step_adjoint_kernel, own)

    # ``use_kernels`` binds the generated forms on the instance; these class methods run only when
    # a subclass's Python step wraps them (super().step(...)): the kernels' step, generated then
    def _kernel_forms(self):
        forms = self.__dict__.get("_wrapped_forms")
        if forms is None:
            cls = type(self)
            if cls.step_kernel is None or cls.step_adjoint_kernel is None:
                raise OcnetError(f"problem '{self.name}': a KernelProblem sets both step_kernel and "
                                 "step_adjoint_kernel (Numba-jitted functions)")
            forms = self._wrapped_forms = GeneratedForms(self, cls.step_kernel, cls.step_adjoint_kernel)
        return forms

    def step(self, n, h, theta, u, out, cache):
        """out[:] = Phi_n(u; theta, h) through ``step_kernel``."""
        self._kernel_forms().step(n, h, theta, u, out, cache)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        """The transposed step through ``step_adjoint_kernel``."""
        self._kernel_forms().step_adjoint(n, h, theta, u, cache, lam_next, lam, grad_theta)
