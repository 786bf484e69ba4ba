"""Taylor tests of the adjoint gradient: the first-order remainder must decay at second order."""
import numpy as np
import pytest
from petsc4py import PETSc

from ocnet.run.cli import framework_options
from ocnet.base.grid import LayerGrid
from ocnet.optim.objective import ReducedObjective
from ocnet_problems.peaks import Peaks
from tests.toy import LinearControl

COMM = PETSc.COMM_WORLD.tompi4py()


def build(cls, **over):
    opts = framework_options()
    cls.declare_options(opts)
    values = {o.name: o.default for o in opts.options}
    values.update(over)
    grid = LayerGrid.from_comm(values["N"], values["T"], COMM)
    return ReducedObjective(grid, cls(values, COMM), COMM)


def _random_like(x, seed):
    d = x.duplicate()
    d.setArray(np.random.default_rng(seed).standard_normal(d.getLocalSize()))
    return d


def taylor_orders(obj, seed=3, eps0=1e-2, halvings=5):
    # a generic point: random biases too, so no pre-activation sits exactly on a ReLU kink
    x = obj.design.initial(seed)
    x.axpy(0.1, _random_like(x, seed + 1))
    g = x.duplicate()
    J0 = obj.evaluate(x, g)
    d = _random_like(x, seed)
    slope = g.dot(d)
    rem = []
    for k in range(halvings + 1):
        eps = eps0 / 2**k
        xe = x.copy()
        xe.axpy(eps, d)
        rem.append(abs(obj.evaluate(xe) - J0 - eps * slope))
    rem = np.array(rem)
    return np.log2(rem[:-1] / rem[1:]), rem


REGS = {
    "none": dict(gamma_tik=0.0, gamma_ddt=0.0, gamma_class=0.0),
    "tik": dict(gamma_tik=1e-1, gamma_ddt=0.0, gamma_class=0.0),
    "ddt": dict(gamma_tik=0.0, gamma_ddt=1e-1, gamma_class=0.0),
    "class": dict(gamma_tik=0.0, gamma_ddt=0.0, gamma_class=1e-1),
}


@pytest.mark.parametrize("reg", sorted(REGS))
@pytest.mark.parametrize("act", ["tanh", "relu", "smoothrelu"])
def test_taylor_resnet(act, reg):
    # ReLU is piecewise linear: a kink crossed inside the step would spoil the order, so its
    # test uses a step range small enough that no pre-activation changes sign (checked by decay).
    eps0 = 1e-4 if act == "relu" else 1e-2
    obj = build(Peaks, N=6, width=4, ntrain=40, nval=0, activation=act, init_layer=1.0, **REGS[reg])
    orders, rem = taylor_orders(obj, eps0=eps0)
    assert np.all(orders > 1.8), (orders, rem)


def test_taylor_wide_kernels():
    obj = build(Peaks, N=4, width=40, ntrain=20, nval=0, activation="tanh", **REGS["ddt"])
    orders, rem = taylor_orders(obj)
    assert np.all(orders > 1.8), (orders, rem)


def test_taylor_step_contract_plugin():
    obj = build(LinearControl, N=7, dim=3)
    orders, rem = taylor_orders(obj)
    # J is quadratic: remainder is exactly eps^2 d^T H d / 2, order 2 up to round-off
    assert np.all(np.abs(orders - 2) < 0.05), (orders, rem)


def test_taylor_heat_and_dahlquist():
    from ocnet_problems.dahlquist import Dahlquist
    from ocnet_problems.heat import Heat

    for cls, over in ((Heat, dict(N=9, nx=12)), (Dahlquist, dict(N=9))):
        obj = build(cls, **over)
        orders, rem = taylor_orders(obj)
        # both are quadratic in the controls: exact order 2 up to round-off
        assert np.all(np.abs(orders - 2) < 0.05), (cls.name, orders, rem)


def test_wrong_calls_are_one_clear_error():
    """In-process misuse (Python-API tester, 2026-12-07): a design Vec of another size or a numpy
    array for x gave a reshape error deep inside (and under MPI a hang), invalid MGRITSettings
    solved silently, a problem without "train" data a KeyError: each is one OcnetError now."""
    from ocnet.base.errors import OcnetError
    from ocnet.mgrit.solver import MGRITSettings

    obj = build(LinearControl, N=8)
    x = obj.design.initial(0)
    assert np.isfinite(obj.evaluate(x, x.duplicate()))
    for bad, text in ((PETSc.Vec().createSeq(3), "got a Vec of local size 3"),
                      (np.zeros(obj.design.global_size), "got a ndarray")):
        with pytest.raises(OcnetError, match="evaluate: x: expected a design Vec of local size "
                                             f"{obj.design.global_size}.*{text}"):
            obj.evaluate(bad)
    with pytest.raises(OcnetError, match="evaluate: grad"):
        obj.evaluate(x, PETSc.Vec().createSeq(3))
    from ocnet.optim.optimize import Trainer
    with pytest.raises(OcnetError, match="Trainer.solve: expected a replicated design Vec of local size "
                                         f"{obj.design.global_size}, got one of local size 3"):
        Trainer(obj, COMM).solve(PETSc.Vec().createSeq(3))
    for kw, text in ((dict(relax="XYZ"), "relax in"), (dict(cycle="Q"), "cycle V or F"),
                     (dict(rtol=-1.0), "rtol, atol >= 0"), (dict(cfactor=(1,)), "cfactor entries >= 2")):
        with pytest.raises(OcnetError, match=text):
            MGRITSettings(levels=2, **kw)
    pb = LinearControl({o.name: o.default for o in obj_options(LinearControl)}, COMM)
    pb.datasets = {"val": pb.datasets["train"]}
    with pytest.raises(OcnetError, match="has no \"train\" dataset"):
        ReducedObjective(LayerGrid.from_comm(8, 1.0, COMM), pb, COMM)
    with pytest.raises(OcnetError, match="comm must be an mpi4py communicator .*, not petsc4py.PETSc.Comm"):
        ReducedObjective(LayerGrid.from_comm(8, 1.0, COMM), pb, PETSc.COMM_WORLD)


def test_trainer_refuses_the_other_layout_on_two_ranks(tmp_path):
    """A distributed design Vec handed to a replicated Trainer (create_vec's default layout is the
    other one) failed on 2 ranks deep in MPI (MPI_ERR_TRUNCATE) and PETSc, and passed on 1
    (tester 44): one OcnetError on every rank, naming design.convert."""
    import subprocess
    import sys

    from tests.conftest import ROOT, mpiexec_prefix
    script = tmp_path / "layout.py"
    script.write_text("""
from petsc4py import PETSc
from ocnet.base.errors import OcnetError
from ocnet.base.grid import LayerGrid
from ocnet.optim.objective import ReducedObjective
from ocnet.optim.optimize import Trainer
from ocnet.run.cli import option_values
from tests.toy import LinearControl
comm = PETSc.COMM_WORLD.tompi4py()
pb = LinearControl(option_values(LinearControl, N=8), comm)
obj = ReducedObjective(LayerGrid.from_comm(8, 1.0, comm), pb, comm)
x = obj.design.convert(obj.design.initial(0, replicated=True), False)
try:
    Trainer(obj, comm).solve(x)
except OcnetError as e:
    print("RANK", comm.Get_rank(), e, flush=True)
""")
    p = subprocess.run(mpiexec_prefix(2) + [sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, env=dict(__import__("os").environ, PYTHONPATH=ROOT))
    # (the two ranks' lines may interleave on the shared stdout: counted, not split into lines)
    assert p.stdout.count("Trainer.solve: expected a replicated design Vec") == 2 \
        and p.stdout.count("design.convert(x, True) converts") == 2, p.stdout + p.stderr


def test_load_params_into_a_design_of_another_size_names_the_sizes(tmp_path):
    """In-process load_params into a design of another N said only 'is not a parameter file of
    this run's size' (tester 44): the sizes of both."""
    from ocnet.base.errors import OcnetError
    from ocnet.run.rundir import load_params, saved_meta
    from tests.conftest import run_ocnet
    run_ocnet(["-problem", "tests.toy:LinearControl", "-N", 8, "-tao_max_it", 1, "-quiet", "-run_dir", tmp_path / "r"])
    obj = build(LinearControl, N=16)
    with pytest.raises(OcnetError, match=r"params.petsc' holds 27 values \(its params.json: G \+ N p = 3 \+ 8 x 3\), "
                                         r"this run's design 51: build the model with the saved options"):
        load_params(str(tmp_path / "r"), obj.design.create_vec(replicated=True), saved_meta(str(tmp_path / "r"), COMM),
                    COMM)


def test_peaks_classification_of_new_points():
    """Peaks had no documented way to make its data object from new points (tester 44):
    classification(X (n, 2)) labels them with their true class; another shape or NaN is one error."""
    from ocnet.base.errors import OcnetError
    obj = build(Peaks, N=4, ntrain=30, nval=10)
    pts = np.random.default_rng(0).uniform(-3, 3, (9, 2))
    data = obj.problem.classification(pts)
    out, _ = obj.forward_outputs(obj.design.initial(0, replicated=True), data, obj.problem.predict)
    assert data.X.shape == (2, 9) and len(out) == 9 and set(data.y) <= set(range(5))
    for bad, text in ((pts.T, r"points of shape \(2, 9\), Peaks takes \(n, 2\): X.T"),
                      (np.array([[np.nan, 0.0]]), "point 0 .* holds NaN or Inf")):
        with pytest.raises(OcnetError, match=text):
            obj.problem.classification(bad)


def obj_options(cls):
    opts = framework_options()
    cls.declare_options(opts)
    return opts.options
