"""MGRIT iterations to reach a relative C-point residual of 1e-9, for N = 64 ... 4096, coarsening
by 4 down to a coarse grid of at most 8 points, FCF relaxation, zero initial guess (u[0] given).

    .venv/bin/python runs/mgrit_scaling.py [--params runs/out/peaks] [--ntrain 500]

Problems: the 1-D heat equation (controls = 1) and a *trained* Peaks network (the parameters of a
finished N = 32 run, e.g. `bash runs/main.sh`, extended to N layers piecewise constant in t).
"""
import argparse
import os

import numpy as np
import petsc4py

petsc4py.init([])
from petsc4py import PETSc  # noqa: E402

from ocnet.cli import framework_options  # noqa: E402
from ocnet.grid import LayerGrid  # noqa: E402
from ocnet.mgrit import MGRIT, MGRITSettings  # noqa: E402
from ocnet.objective import ReducedObjective  # noqa: E402
from problems.heat import Heat  # noqa: E402
from problems.peaks import Peaks  # noqa: E402

COMM = PETSc.COMM_WORLD.tompi4py()
NS = [64, 128, 256, 512, 1024, 2048, 4096]


def levels_for(N, cf=4, coarse=8):
    L, n = 1, N
    while n // cf + 1 > 1 and n + 1 > coarse:
        n //= cf
        L += 1
    return L


def objective(cls, N, **over):
    opts = framework_options()
    cls.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v.update(over)
    return ReducedObjective(LayerGrid.from_comm(N, 1.0, COMM), cls(v, COMM), COMM)


CYCLE = "V"


def iterations(obj, g, thetas, N):
    st = MGRITSettings(levels=levels_for(N), cfactor=(4,), relax="FCF", cycle=CYCLE, max_it=60, rtol=1e-9, atol=0.0)
    m = MGRIT(obj.grid, obj.problem, COMM, st, obj.state.state_size, obj.problem.cache_size(obj.data), obj.state)
    obj.state.U[:] = 0.0
    obj.problem.opening(g, obj.data, obj.state.U[0])
    its = m.solve(thetas)
    return its, len(m.levels), m.levels[-1].npoints, m.history[-1] / m.history[0]


def load_peaks(path):
    x = PETSc.Vec().create(comm=PETSc.COMM_SELF)
    v = PETSc.Viewer().createBinary(os.path.join(path, "params.petsc"), mode="r", comm=PETSc.COMM_SELF)
    x.load(v)
    return x.getArray().copy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="runs/out/peaks")
    ap.add_argument("--ntrain", type=int, default=500)
    ap.add_argument("--cycle", default="V", choices=("V", "F"))
    a = ap.parse_args()
    global CYCLE
    CYCLE = a.cycle
    trained = load_peaks(a.params)
    print(f"cycle {a.cycle}")
    print(f"{'N':>5} {'levels':>6} {'coarse pts':>10} | {'heat its':>8} {'peaks its':>9}")
    for N in NS:
        heat = objective(Heat, N)
        hit, L, nc, _ = iterations(heat, np.zeros(0), np.ones((N, 1)), N)
        pk = objective(Peaks, N, ntrain=a.ntrain, nval=0)
        G, p = pk.problem.global_param_size, pk.problem.layer_param_size
        th32 = trained[G:].reshape(32, p)
        thetas = th32[(np.arange(N) * 32) // N]
        pit, _, _, _ = iterations(pk, trained[:G], thetas, N)
        print(f"{N:5d} {L:6d} {nc:10d} | {hit:8d} {pit:9d}", flush=True)


if __name__ == "__main__":
    main()
