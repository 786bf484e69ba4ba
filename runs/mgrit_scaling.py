"""MGRIT iterations to reach a relative C-point residual of 1e-9, for N = 64 ... 4096, coarsening
by --cfactor (4) down to a coarse grid of at most 8 points, FCF relaxation, V- and F-cycles, zero
initial guess (u[0] given).  Prints a markdown table (docs/results/mgrit.md).

    .venv/bin/python runs/mgrit_scaling.py [--params runs/out/peaks] [--ntrain 500] [--cfactor 4] [--problems heat,peaks]

Problems: the 1-D heat equation (controls = 1) and a *trained* Peaks network (the parameters of a
finished N = 32 run, e.g. `bash runs/main.sh`, extended to N layers piecewise constant in t;
`--problems heat` needs no trained run).
"""
import argparse
import os

import numpy as np
import petsc4py

petsc4py.init([])
from petsc4py import PETSc  # noqa: E402

from ocnet.run.cli import framework_options  # noqa: E402
from ocnet.base.grid import LayerGrid  # noqa: E402
from ocnet.mgrit.solver import MGRIT, MGRITSettings, auto_levels  # noqa: E402
from ocnet.optim.objective import ReducedObjective  # noqa: E402
from ocnet_problems.heat import Heat  # noqa: E402
from ocnet_problems.peaks import Peaks  # noqa: E402

COMM = PETSc.COMM_WORLD.tompi4py()
NS = [64, 128, 256, 512, 1024, 2048, 4096]


def objective(cls, N, **over):
    opts = framework_options()
    cls.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v.update(over)
    return ReducedObjective(LayerGrid.from_comm(N, 1.0, COMM), cls(v, COMM), COMM)


def iterations(obj, g, thetas, N, cycle, cf):
    st = MGRITSettings(cfactor=(cf,), relax="FCF", cycle=cycle, max_it=60, rtol=1e-9, atol=0.0)
    st.levels = auto_levels(N, st)
    m = MGRIT(obj.grid, obj.problem, COMM, st, obj.state.state_size, obj.problem.cache_size(obj.data), obj.state)
    obj.state.U[:] = 0.0
    obj.problem.opening(g, obj.data, obj.state.U[0])
    its = m.solve(thetas)
    return its, len(m.levels), m.levels[-1].npoints


def load_peaks(path):
    x = PETSc.Vec().create(comm=PETSc.COMM_SELF)
    v = PETSc.Viewer().createBinary(os.path.join(path, "params.petsc"), mode="r", comm=PETSc.COMM_SELF)
    x.load(v)
    return x.getArray().copy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="runs/out/peaks")
    ap.add_argument("--ntrain", type=int, default=500)
    ap.add_argument("--cfactor", type=int, default=4)
    ap.add_argument("--problems", default="heat,peaks", help="comma-separated: heat, peaks")
    a = ap.parse_args()
    problems = a.problems.split(",")
    if set(problems) - {"heat", "peaks"} or not problems:
        raise SystemExit(f"--problems {a.problems}: expected heat, peaks or heat,peaks")
    trained = None
    if "peaks" in problems:
        if not os.path.exists(os.path.join(a.params, "params.petsc")):
            raise SystemExit(f"{a.params}/params.petsc not found: run `bash runs/main.sh` first, give --params, "
                             "or --problems heat")
        trained = load_peaks(a.params)
    cf = a.cfactor
    cols = [(p, c) for c in ("V", "F") for p in ("heat", "peaks") if p in problems]
    names = {"heat": "heat", "peaks": "Peaks"}
    print(f"cfactor {cf}, FCF, relative residual 1e-9, coarsest grid <= 8 points")
    print("|    N | levels | coarse pts | " + " | ".join(f"{names[p]}, {c}" for p, c in cols) + " |")
    print("|-----:|-------:|-----------:|" + "".join("-" * (len(names[p]) + 4) + ":|" for p, c in cols))
    for N in NS:
        row = {}
        for p, cycle in cols:
            if p == "heat":
                heat = objective(Heat, N)
                row[p, cycle], L, nc = iterations(heat, np.zeros(0), np.ones((N, 1)), N, cycle, cf)
            else:
                pk = objective(Peaks, N, ntrain=a.ntrain, nval=0)
                G, q = pk.problem.global_param_size, pk.problem.layer_param_size
                th32 = trained[G:].reshape(32, q)
                thetas = th32[(np.arange(N) * 32) // N]  # the N = 32 network, piecewise constant in t
                row[p, cycle], L, nc = iterations(pk, trained[:G], thetas, N, cycle, cf)
        print(f"| {N:4d} | {L:6d} | {nc:10d} | " + " | ".join(f"{row[k]:{len(names[k[0]]) + 3}d}" for k in cols)
              + " |", flush=True)


if __name__ == "__main__":
    main()
