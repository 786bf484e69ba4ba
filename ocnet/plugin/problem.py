"""The problem-plugin contract: a discrete optimal-control problem on a layer grid.

    u[0]   = E(g; data)                         opening map, global parameters g
    u[n+1] = Phi_n(u[n]; theta[n], h)           n = 0..N-1, h = T/N, per-layer parameters theta[n]
    J      = L(u[N], g; data) + R(theta, g)     terminal objective + regularisation

A plugin supplies the maps and the transposed Jacobian actions (the discrete adjoint); the solver
owns the layer distribution, communication, sweeps/cycles and the optimiser.  States, caches and
parameters are flat float64 arrays; the solver allocates them.  The default ``sweep`` methods loop
over ``step``; a plugin with jitted kernels overrides them so that no Python runs per layer.
CONTRACT.md is the long form: when MGRIT calls each method, on which level, with which step size.
``ocnet -check_adjoint`` tests a plugin's transposed maps (ocnet/plugin/adjcheck.py).
"""
import numpy as np

from ..base.errors import OcnetError
from ..base.options import OptionSet


def accepts(method, keyword):
    """Whether a plugin method takes ``keyword`` (the contract's optional extensions, e.g.
    ``sweeps_adjoint(grad=)``, ``parameter_gradient(rows=)``; a plugin may predate them)."""
    import inspect
    return keyword in inspect.signature(method).parameters


class ControlProblem:
    #: name used in messages and run folders
    name = "problem"
    #: per-layer and global parameter sizes p and G (set in __init__)
    layer_param_size = 0
    global_param_size = 0
    #: names of the declared options holding (gamma_tik, gamma_ddt), the weights of the default
    #: ``layer_regularization``; ``__init__`` reads them into ``layer_weights``.  None: the plugin
    #: has no layer regularisation (or overrides ``layer_regularization``).
    regularization_options = ("gamma_tik", "gamma_ddt")
    #: names of declared options that set how the model is trained, not what it is (e.g. the weight
    #: of a regulariser on the global parameters): ``-load`` with other values loads the model and
    #: trains on with them (``-resume`` still compares them).  The regularization_options are
    #: always among them (ocnet.run.rundir.model_differences).
    training_options = ()
    #: the problem's configuration: defaults of any option, the framework's (-N, -T, -mgrit_*,
    #: -tao_*, ...) and the plugin's own, applied before the options are read, so that anything the
    #: user gives overrides them; ``-help`` shows them as the defaults (ocnet.run.cli.apply_option_defaults)
    option_defaults = {}
    #: names of the data options (``data_options``) that split one fixed pool of samples into
    #: training and validation sets: ``-load`` with another value than the saved run's warns, as
    #: the new validation set may hold samples the loaded model was trained on (an instance may
    #: set it in ``__init__`` for this run, e.g. none when the validation set comes from its own file)
    split_options = ()

    @classmethod
    def declare_options(cls, opts: OptionSet):
        """Add the plugin's own options (name, type, default, help) to ``opts``."""

    def __init__(self, values, comm):
        """``values``: dict of the declared options (framework and plugin); ``comm``: the world.
        Sets ``layer_weights`` = (gamma_tik, gamma_ddt) from ``regularization_options`` ((0, 0)
        if None).  Raises OcnetError if those options are not declared: regularisation is never
        switched off by a name that does not match."""
        self.values = values
        self.comm = comm
        names = self.regularization_options
        if names is None:
            self.layer_weights = (0.0, 0.0)
            return
        missing = [n for n in names if n not in values]
        if len(names) != 2 or missing:
            raise OcnetError(
                f"problem '{self.name}': regularization_options = {tuple(names)} must name the two declared options "
                f"holding the Tikhonov and smoothness weights{' (undeclared: ' + ', '.join(missing) + ')' if missing else ''}; "
                "declare them, or set regularization_options = None for no layer regularisation")
        self.layer_weights = tuple(float(values[n]) for n in names)
        if "N" in values and "T" in values:
            check_weights(names, self.layer_weights, float(values["T"]) / int(values["N"]))

    # ---- data --------------------------------------------------------------------------
    #: dataset name -> opaque data object handed back to opening/terminal/metrics; 'train' is
    #: what the objective uses, 'val' (if present) is evaluated each iteration.
    datasets = {}

    def state_size(self, data):
        """S: doubles per state (e.g. width * batch) for ``data``; required."""
        raise NotImplementedError

    def subset(self, data, idx):
        """The samples ``idx`` of ``data`` (for -batch_size); None: no mini-batches."""
        return None

    def data_size(self, data):
        """Number of samples in ``data`` (for -batch_size)."""
        return 0

    def cache_size(self, data):
        """Doubles per step kept by ``step`` for ``step_adjoint`` (e.g. sigma'); 0 for none."""
        return 0

    # ---- parameters --------------------------------------------------------------------
    def initial_layer_parameters(self, n, rng):
        """theta[n] at start; ``rng`` is seeded by (seed, n) so the result is rank-count free."""
        return np.zeros(self.layer_param_size)

    def initial_global_parameters(self, rng):
        return np.zeros(self.global_param_size)

    # ---- maps and adjoints -------------------------------------------------------------
    def opening(self, g, data, u0):
        """u0[:] = E(g; data); g (G,), u0 (S,).  Rank 0, before every state solve."""
        raise NotImplementedError

    def opening_adjoint(self, g, data, lam0, grad_g):
        """grad_g += (dE/dg)^T lam0; lam0 (S,), grad_g (G,).  Rank 0, after every adjoint solve.
        Default: nothing (E independent of g)."""

    def step(self, n, h, theta, u, out, cache):
        """out[:] = Phi_n(u; theta, h); fill ``cache`` (Sc,) for the adjoint.  theta (p,), u, out (S,).

        ``n``: fine index of the step's first layer.  MGRIT's level l calls it with h*m_l and
        n = j*m_l (m_l fine layers per step, parameters from ``coarse_parameters``): honour ``h``."""
        raise NotImplementedError

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        """lam[:] = (dPhi_n/du)^T lam_next;  grad_theta += (dPhi_n/dtheta)^T lam_next, the Jacobians
        at ``u``; ``cache`` is what ``step(n, h, theta, u, ...)`` wrote.  Also at coarse h*m_l
        (adjoint MGRIT).  ``ocnet -check_adjoint`` tests it against differences of ``step``."""
        raise NotImplementedError

    def sweep(self, n0, h, thetas, U, C, F=None):
        """U[k+1] = Phi_{n0+k}(U[k]) (+ F[k]) for k = 0..len(thetas)-1 (U has len(thetas)+1 rows).

        thetas (K, p), U (K+1, S), C (K, Sc): C[k] is the cache of the step from U[k].  The layer-serial
        forward solve.  ``F`` (K, S): a forcing term (MGRIT's right-hand side), else None."""
        for k in range(thetas.shape[0]):
            self.step(n0 + k, h, thetas[k], U[k], U[k + 1], C[k])
            if F is not None:
                U[k + 1] += F[k]

    def sweep_adjoint(self, n0, h, thetas, U, C, Lam, G, F=None):
        """Given Lam[-1], fill Lam[k] backwards (+ F[k]: adjoint MGRIT's coarse right-hand side)
        and accumulate G[k] += dPhi_k/dtheta^T Lam[k+1]."""
        for k in range(thetas.shape[0] - 1, -1, -1):
            self.step_adjoint(n0 + k, h, thetas[k], U[k], C[k], Lam[k + 1], Lam[k], G[k])
            if F is not None:
                Lam[k] += F[k]

    def parameter_gradient(self, n0, h, thetas, U, C, Lam, G, rows=None):
        """G[k] += dPhi_k/dtheta^T Lam[k+1] for every k (or only the k in ``rows``, an int64
        array), with the adjoint given at every layer (MGRIT's); unlike ``sweep_adjoint`` nothing
        is propagated."""
        scratch = np.empty(U.shape[1])
        for k in (range(thetas.shape[0]) if rows is None else rows):
            self.step_adjoint(n0 + k, h, thetas[k], U[k], C[k], Lam[k + 1], scratch, G[k])

    def coarse_parameters(self, blocks):
        """Parameters of MGRIT's coarse steps from those of the fine layers each one spans:
        ``blocks`` is (steps, m, p), the result (steps, p).  Default: injection of the first
        layer's (the paper's choice); a plugin may average or otherwise restrict."""
        return blocks[:, 0]

    # ---- batched forms used by MGRIT (override with jitted kernels to keep Python out) ----
    def sweeps(self, runs, ns, h, thetas, U, C, F=None, cache=True):
        """Several runs of one array in one call: for each (a, b) in ``runs`` and k = a..b,
        U[k] = Phi_{ns[k]}(U[k-1]; thetas[k], h) (+ F[k]), cache in C[k] (MGRIT's F-relaxation
        and coarse sweeps; rows are indexed by the point a step goes *into*).  ``cache=False``:
        MGRIT will not read these caches (coarse levels, pre-relaxation); a plugin may skip them.
        Runs of consecutive layers (the finest level) go to ``sweep``; on coarse levels, whose
        layer indices step by the coarsening factor, each step goes to ``step`` with its own n.
        A jitted override may also take ``ahead=(A, arows)``, MGRIT's C-point look-ahead
        (CONTRACT.md); this default does not, and MGRIT then takes those steps by ``steps``."""
        for a, b in runs:
            if ns[b] - ns[a] == b - a:
                self.sweep(ns[a], h, thetas[a:b + 1], U[a - 1:b + 1], C[a:b + 1],
                           None if F is None else F[a:b + 1])
                continue
            for k in range(a, b + 1):
                self.step(ns[k], h, thetas[k], U[k - 1], U[k], C[k])
                if F is not None:
                    U[k] += F[k]

    def steps(self, rows, ns, h, thetas, U, C, out, out_rows, F=None, cache=True):
        """Independent steps into the rows r = rows[i]: out[out_rows[i]] = Phi_{ns[r]}(U[r-1];
        thetas[r], h) (+ F[r]), cache in C[r] (MGRIT's C-relaxation, residuals and restriction;
        ``out`` may be U itself, as the steps never read the rows they write)."""
        for i, r in enumerate(rows):
            o = out[out_rows[i]]
            self.step(ns[r], h, thetas[r], U[r - 1], o, C[r])
            if F is not None:
                o += F[r]

    def sweeps_adjoint(self, runs, ns, h, thetas, U, C, Lam, F=None, grad=None):
        """Backward runs: for each (a, b) and k = b..a, Lam[k] = (dPhi_k/du)^T Lam[k+1] (+ F[k]),
        the step taken at U[k] with thetas[k], C[k].  ``grad`` (rows like thetas): also
        grad[k] += (dPhi_k/dtheta)^T Lam[k+1], the arithmetic of ``parameter_gradient`` (one-shot
        adjoint MGRIT forms the gradient in its last F-relaxation this way).
        As ``sweeps``: consecutive layers go to ``sweep_adjoint``, coarse ones step by step."""
        scratch = np.zeros(thetas.shape[1])
        for a, b in runs:
            if ns[b] - ns[a] == b - a:
                G = np.zeros((b - a + 1, thetas.shape[1])) if grad is None else grad[a:b + 1]
                self.sweep_adjoint(ns[a], h, thetas[a:b + 1], U[a:b + 2], C[a:b + 1], Lam[a:b + 2],
                                   G, None if F is None else F[a:b + 1])
                continue
            for k in range(b, a - 1, -1):
                self.step_adjoint(ns[k], h, thetas[k], U[k], C[k], Lam[k + 1], Lam[k],
                                  scratch if grad is None else grad[k])
                if F is not None:
                    Lam[k] += F[k]

    def steps_adjoint(self, rows, ns, h, thetas, U, C, Lam, out, out_rows, F=None):
        """Independent transposed steps, k = rows[i]:
        out[out_rows[i]] = (dPhi_k/du at U[k])^T Lam[k+1] (+ F[k])."""
        scratch = np.zeros(thetas.shape[1])
        for i, k in enumerate(rows):
            o = out[out_rows[i]]
            self.step_adjoint(ns[k], h, thetas[k], U[k], C[k], Lam[k + 1], o, scratch)
            if F is not None:
                o += F[k]

    def terminal(self, g, data, uN, lamN, grad_g):
        """Return L(uN, g); set lamN[:] = dL/duN and add dL/dg to grad_g.  uN, lamN (S,).  Last rank,
        every evaluation."""
        raise NotImplementedError

    def metrics(self, g, data, uN):
        """Figures of merit at the final state, e.g. {'accuracy': 0.93}: last rank, after every
        iteration on 'train' and 'val'; history.csv gets 'accuracy' as train_accuracy/val_accuracy
        and every other scalar ``k`` as train_k/val_k columns.  Default {}."""
        return {}

    def predict(self, g, uN):
        """The model's output at the final state ``uN`` (e.g. class labels, shape (batch,)),
        handed to ``plot`` through its ``predict`` callable.  Default: None (nothing to plot)."""
        return None

    def prediction_columns(self, g, uN):
        """Further outputs per sample at the final state ``uN``, written after the prediction in
        ``predictions_<set>.csv`` (rank 0, with ``-predictions``): {name: array (batch,)} of numbers,
        e.g. class probabilities.  Default: {} (the prediction only)."""
        return {}

    def sample_columns(self, data):
        """Columns that identify the samples of ``data`` in ``predictions_<set>.csv`` (rank 0, with
        ``-predictions``), written between ``sample`` and the prediction: {name: array (batch,)},
        e.g. a sample's coordinates or true label.  Default: {} (the sample index only)."""
        return {}

    def model_state(self):
        """What the trained model is besides its parameters, as a JSON-able dict (e.g. the input
        standardisation computed from the training data); saved in the run folder's params.json and
        handed to ``set_model_state`` by ``-load``.  Default: {} (the parameters are all)."""
        return {}

    def set_model_state(self, state):
        """Adopt the ``model_state`` a loaded model was saved with (every rank, before the objective
        is built, so the data sets may be rebuilt here).  Raise OcnetError when it does not fit."""

    def plot(self, folder, predict):
        """Write the problem's own figures into the run folder ``folder`` (rank 0 writes).

        Collective: every rank calls it.  ``predict(data)`` runs a layer-serial forward solve of
        the final parameters on ``data`` (same type as the datasets) on every rank and returns
        ``self.predict`` of the final state on rank 0, None elsewhere; so call it the same number
        of times on every rank.  Default: no figures."""

    # ---- regularisation ----------------------------------------------------------------
    def layer_regularization(self, h, n0, N, thetas, prev, nxt, grad):
        """Per-layer values of gamma_tik/2 |theta[n]|^2 + gamma_ddt/2 |(theta[n]-theta[n-1])/h|^2
        (Guenther et al., SIMODS 2020), weights from ``layer_weights``.

        ``thetas``: (nl, p), this rank's layers n0..n0+nl-1; ``prev``/``nxt``: theta[n0-1] /
        theta[n0+nl] (None at the ends of the grid).  Adds the gradient to ``grad`` (nl, p) and
        returns (nl,) values, the smoothness term of the pair (n-1, n) counted on layer n.
        Every rank, every evaluation.
        """
        tik, ddt = self.layer_weights
        values = 0.5 * tik * np.einsum("ij,ij->i", thetas, thetas)
        grad += tik * thetas
        if ddt != 0.0:
            w = ddt / (h * h)
            if not np.isfinite(w):  # checked up front by check_weights; never a silent inf
                raise OcnetError(f"the smoothness weight gamma_ddt/h^2 = {ddt:g}/{h:g}^2 overflows")
            ext = thetas if prev is None else np.vstack([prev, thetas])
            d = np.diff(ext, axis=0)  # d[j]: theta of local layer s+j minus its predecessor
            s = thetas.shape[0] - d.shape[0]
            values[s:] += 0.5 * w * np.einsum("ij,ij->i", d, d)
            grad[s:] += w * d
            grad[:-1] -= w * (d if prev is None else d[1:])
            if nxt is not None:
                grad[-1] -= w * (nxt - thetas[-1])
        return values

    def global_regularization(self, g, grad_g):
        """Regularisation of the global parameters g (G,); adds its gradient to grad_g.  Rank 0.
        Default 0."""
        return 0.0


def check_weights(names, weights, h):
    """Range check on the derived weights: gamma_tik and gamma_ddt/h^2 enter the gradient, whose
    squared norm TAO forms, so each must stay below sqrt(largest float) (as h does, ocnet.base.grid).
    Raises OcnetError naming the option."""
    from ..base.grid import H_MAX
    (ntik, nddt), (tik, ddt) = names, weights
    if tik > H_MAX:
        raise OcnetError(f"option -{ntik}: {tik:g} is out of range: the gradient's squared norm overflows "
                         f"(at most {H_MAX:.3g})")
    if ddt / (h * h) > H_MAX:
        raise OcnetError(f"option -{nddt}: {ddt:g} with the step h = T/N = {h:.3g} makes the smoothness weight "
                         f"{nddt}/h^2 = {ddt / (h * h):.3g}, out of range (at most {H_MAX:.3g}: the gradient's squared "
                         "norm overflows); use a smaller weight or a larger step")


# ---- safe reuse: batched forms written for another step ------------------------------------
#: the batched forms of the contract (CONTRACT.md, "Batched forms")
BATCHED_FORMS = ("sweep", "sweep_adjoint", "parameter_gradient", "sweeps", "steps", "sweeps_adjoint",
                 "steps_adjoint")
#: what defines a problem's step: the step-level pair, or a KernelProblem's two kernels
STEP_DEFINERS = (("step", "step_adjoint"), ("step_kernel", "step_adjoint_kernel"))


def defining_class(cls, name):
    """The class in ``cls``'s MRO whose body defines ``name`` (None if none does)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass
    return None


def _generic(klass):
    """Classes whose batched forms work for any step: ControlProblem's loops over ``step``, and
    those that declare ``_generic_forms = True`` in their body (KernelProblem's generated forms)."""
    return klass is None or klass is ControlProblem or klass.__dict__.get("_generic_forms", False)


def stale_forms(problem):
    """The batched forms ``problem`` would run that were written for another step, as
    [(form, defining class)], and the class that defines the step.

    A form is stale when the class that defines it is a proper ancestor of the class that defines
    the step (the most derived class defining ``step``, ``step_adjoint`` or one of the two
    kernels), e.g. a subclass of Peaks that overrides ``step`` but inherits the ResNet's jitted
    ``sweep``.  Forms bound on the instance (``ocnet.plugin.kernels.use_kernels``) and generic
    ones are never stale.  Raises OcnetError when the step or its transpose is inherited from a
    class whose forms are stale (it may be written with them, as the ResNet's is: override both)."""
    cls = type(problem)
    mro = cls.__mro__
    owners = [d for pair in STEP_DEFINERS for d in (defining_class(cls, n) for n in pair)
              if d is not None and not _generic(d)]
    if not owners:
        return [], None
    owner = min(owners, key=mro.index)  # the most derived step definition
    stale = []
    for name in BATCHED_FORMS:
        if name in vars(problem):
            continue
        d = defining_class(cls, name)
        if not _generic(d) and d is not owner and issubclass(owner, d):
            stale.append((name, d))
    below = {d for _, d in stale}
    for pair in STEP_DEFINERS:
        for name, other in (pair, pair[::-1]):
            d = defining_class(cls, name)
            if name in vars(problem) or other in vars(problem) or _generic(d) or d is owner \
                    or defining_class(cls, other) is not owner \
                    or owner.__dict__[other] is ControlProblem.__dict__.get(other):  # (check_required's)
                continue
            if d in below:
                raise OcnetError(f"problem '{problem.name}': {owner.__qualname__} overrides {other} but inherits {name} "
                                 f"from {d.__qualname__}, written with {d.__qualname__}'s batched forms for another "
                                 f"step; override {name} too")
            # (a transpose of another step: a wrong gradient that trained silently)
            raise OcnetError(f"problem '{problem.name}': {owner.__qualname__} overrides {other} but inherits {name} "
                             f"from {d.__qualname__}, written for {d.__qualname__}'s {other}; override {name} too (if "
                             f"{owner.__qualname__}.{other} only wraps {d.__qualname__}'s, say so in its class body: "
                             f"{name} = {d.__qualname__}.{name})")
    return stale, owner


#: what every plugin defines (ControlProblem's raise NotImplementedError): docs/plugins/contract.md
REQUIRED = ("state_size", "opening", "step", "step_adjoint", "terminal")


def problem_of_user(problem):
    """True for a problem class from outside ocnet's packages (ocnet; the built-in problems,
    installed as ocnet_problems, in the checkout's problems/): a user's plugin, whose transposes
    -check_adjoint may not have tested (advice on a failure names it)."""
    return type(problem).__module__.split(".")[0] not in ("ocnet", "ocnet_problems", "problems")


def check_required(problem):
    """Raise OcnetError naming the required methods ``problem`` leaves to ControlProblem (a
    missing one raised a bare NotImplementedError, reported as an ocnet bug, mid-run).  Checked on
    the instance: ``use_kernels`` binds ``step`` and ``step_adjoint`` there.  Also an ``__init__``
    that does not call ControlProblem's (an AttributeError on ``layer_weights`` later, reported
    as an ocnet bug: tester 50)."""
    if not hasattr(problem, "layer_weights"):
        raise OcnetError(f"problem '{problem.name}': {type(problem).__qualname__}.__init__ does not call "
                         "super().__init__(values, comm) (ControlProblem's sets values, comm and the regularisation "
                         "weights): call it first (docs/plugins/contract.md)")
    missing = [n for n in REQUIRED if getattr(getattr(problem, n), "__func__", None) is getattr(ControlProblem, n)]
    if missing:
        raise OcnetError(f"problem '{problem.name}' ({type(problem).__qualname__}) does not define "
                         f"{', '.join(missing)} (required of every plugin: docs/plugins/contract.md)")


def probe(problem, samples=2):
    """What the start-of-run contract checks (check_writes, ocnet.plugin.kernels.check_kernel_bounds)
    call the plugin with: (data, S, Sc, p, g, theta) -- the first ``samples`` samples of the
    training set where the plugin takes subsets (``data_size``/``subset``, as for -batch_size),
    else all of it; its state, cache and layer parameter sizes; the initial global and layer-0
    parameters of seed 0 -- or None without a 'train' dataset."""
    data = problem.datasets.get("train")
    if data is None:
        return None
    subset, size = getattr(problem, "subset", None), getattr(problem, "data_size", None)  # (None: none)
    part = subset(data, np.arange(samples)) if callable(subset) and callable(size) and size(data) > samples \
        else None
    data = data if part is None else part
    rng = np.random.default_rng(0)
    g = np.asarray(problem.initial_global_parameters(rng), float)
    theta = np.asarray(problem.initial_layer_parameters(0, rng), float)
    return data, problem.state_size(data), problem.cache_size(data), problem.layer_param_size, g, theta


#: what the start-of-run checks fill the arrays a plugin writes with (no map yields it by chance;
#: finite, so a method that adds into the array instead of overwriting it changes it, unlike a NaN)
MARKER = -7.3e-301


def check_writes(problem, h):
    """The plugin writes its results into the arrays it is given: one opening, step and transposed
    step at layer 0 and the initial parameters (``probe``), each output array filled beforehand
    with MARKER.  Raises OcnetError naming the method and array where every entry still holds
    it -- a step that returns the new state, or rebinds ``out = ...`` (PyMGRIT's ``step`` returns
    it), which trained silently on a state that never changed.  An array written in part passes (a
    zero-padded opening may leave entries at the zeros ocnet allocates); terminal is not called
    here (a plugin may count its evaluations), nor is anything when the initial parameters have
    the wrong shapes (the design's own check names them)."""
    probed = probe(problem)
    if probed is None:
        return
    data, S, Sc, p, g, theta = probed
    if not S or g.shape != (problem.global_param_size,) or theta.shape != (p,):
        return
    u, out, lam = (np.full(S, MARKER) for _ in range(3))
    calls = (("opening", "u0", u, lambda: problem.opening(g, data, u)),
             ("step", "out", out, lambda: problem.step(0, h, theta, u, out, np.zeros(Sc))),
             ("step_adjoint", "lam", lam, lambda: problem.step_adjoint(0, h, theta, u, np.zeros(Sc), np.ones(S), lam,
                                                                       np.zeros(p))))
    for method, name, arr, call in calls:
        ret = call()
        unwritten = arr == MARKER
        arr[unwritten] = 0.0  # (as allocated: the next call's input holds no marker)
        if np.all(unwritten):
            returned = f"it returned {type(ret).__name__} instead" if ret is not None else "nothing reached the array"
            raise OcnetError(f"problem '{problem.name}': {method} wrote nothing into its '{name}' array ({returned}): "
                             f"write the result into the array ocnet gives, {name}[:] = ..., not 'return' it or "
                             f"rebind '{name} = ...' (CONTRACT.md)")


def guard_forms(problem, say=None):
    """Make sure ``problem`` never runs batched forms written for another step (``stale_forms``):
    they are replaced on the instance by the forms generated from its kernels when it has them
    (``ocnet.plugin.kernels``), else by ControlProblem's generic loops over ``step``; ``say``
    (if given) gets one line naming them.  Returns the replaced [(form, class)].  Raises OcnetError
    for a step whose transpose comes from another class."""
    import types
    unused = getattr(problem, "_kernels_unused", None)  # ocnet.plugin.kernels.KernelProblem.__init__
    if unused is not None and say is not None:
        from ocnet.plugin.kernels import KernelProblem
        # (a wrapper's declared 'step_adjoint = Parent.step_adjoint' is the kernels' own, not Python)
        own = [n for n in ("step", "step_adjoint") if getattr(type(problem), n) is not getattr(KernelProblem, n)]
        kern = unused[1].__qualname__
        what = (f"defines its own {' and '.join(own)}" if len(own) == 2 else
                f"defines its own {own[0]} (its {'step_adjoint' if own[0] == 'step' else 'step'} runs {kern}'s kernel)")
        say(f"ocnet: note: problem '{problem.name}': {unused[0].__qualname__} {what}, so the forms generated from "
            f"{kern}'s kernels are not used: the generic loops over step run (slow: see docs/plugins/fast.md)")
    stale, owner = stale_forms(problem)
    if not stale:
        return stale
    gen = getattr(problem, "_generated_forms", None)
    for name, _ in stale:
        setattr(problem, name, getattr(gen, name) if gen is not None
                else types.MethodType(getattr(ControlProblem, name), problem))
    if say is not None:
        by = {}
        for name, d in stale:
            by.setdefault(d.__qualname__, []).append(name)
        inherited = "; ".join(f"{', '.join(v)} from {k}" for k, v in by.items())
        say(f"ocnet: note: problem '{problem.name}': {owner.__qualname__} defines its own step, so the inherited "
            f"batched forms ({inherited}) written for another step are replaced by "
            f"{'the ones generated from its kernels' if gen is not None else 'the generic loops over step (slow: see docs/plugins/fast.md)'}")
    return stale
