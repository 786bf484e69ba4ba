"""Train accuracy reuses the objective's state solve only when that solve was at the same design
on the same data; otherwise it runs its own forward solve.  Both must give the same numbers."""
from petsc4py import PETSc

from ocnet.run.cli import framework_options
from ocnet.base.grid import LayerGrid
from ocnet.optim.objective import ReducedObjective
from ocnet_problems.peaks import Peaks

COMM = PETSc.COMM_WORLD.tompi4py()


def build(**over):
    opts = framework_options()
    Peaks.declare_options(opts)
    values = {o.name: o.default for o in opts.options}
    values.update(dict(N=8, ntrain=300, nval=50), **over)
    return ReducedObjective(LayerGrid.from_comm(values["N"], values["T"], COMM), Peaks(values, COMM), COMM)


def test_train_metrics_reuse_matches_a_fresh_forward_solve():
    obj = build()
    x = obj.design.initial(1, replicated=True)
    y = x.copy()
    y.scale(0.5)
    fresh = build()
    obj.evaluate(y)
    assert not obj._state_at(x, obj.full)  # last state solve was elsewhere: a forward solve
    m_other = obj.metrics(x, "train")
    obj.evaluate(x)
    assert obj._state_at(x, obj.full)  # now reused
    m_reused = obj.metrics(x, "train")
    fresh.evaluate(y)
    m_fresh = fresh.metrics(x, "train")
    assert m_reused["accuracy"] == m_other["accuracy"] == m_fresh["accuracy"]
    # after a state solve at another design, x's accuracy is not read off that state
    obj.evaluate(y)
    m_y = obj.metrics(y, "train")
    assert m_y["accuracy"] != m_fresh["accuracy"]  # the two designs are told apart
    assert obj.metrics(x, "train")["accuracy"] == m_fresh["accuracy"]


def test_forward_last_is_the_forward_sweep_bitwise():
    """Layer-serial evaluations keep no trajectory: chunked sweeps through a small buffer give
    bitwise the last state of the full sweep, for every chunk length."""
    import numpy as np

    obj = build(N=11)
    x = obj.design.initial(2, replicated=False)
    g, thetas = obj.design.split(obj.design.local(x))
    obj.solver.forward(g, thetas, obj.full, obj.state)
    for chunk in (1, 3, 8, 11, 64):
        uN = obj.solver.forward_last(g, thetas, obj.full, chunk=chunk)
        assert np.array_equal(uN, obj.state.U[-1]), chunk
