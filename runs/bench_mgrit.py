"""Time one MGRIT V-cycle for Peaks (width 8, batch 5000) with N = 1024 layers on 1 and 2 ranks.

    .venv/bin/python runs/bench_mgrit.py [--N 1024] [--levels 4] [--cfactor 4] [--ranks 1,2]

Each rank count runs in its own ``mpiexec``; the script prints the time per V-cycle (best of
--repeat) and the speed-up against the first rank count.
"""
import argparse
import os
import subprocess
import sys

INNER = r'''
import sys, time, numpy as np, petsc4py
petsc4py.init([])
from petsc4py import PETSc
from ocnet.cli import framework_options
from ocnet.grid import LayerGrid
from ocnet.mgrit import MGRITSettings
from ocnet.objective import ReducedObjective
from problems.peaks import Peaks
N, levels, cf, repeat = map(int, sys.argv[1:5])
comm = PETSc.COMM_WORLD.tompi4py()
opts = framework_options(); Peaks.declare_options(opts)
v = {o.name: o.default for o in opts.options}
st = MGRITSettings(levels=levels, cfactor=(cf,), max_it=1, rtol=0.0)
obj = ReducedObjective(LayerGrid.from_comm(N, 1.0, comm), Peaks(v, comm), comm, state_mgrit=st)
x = obj.design.initial(0, replicated=True)
g, th = obj.design.split(obj.design.local(x))
gr = obj.grid
if gr.first:
    obj.problem.opening(g, obj.data, obj.state.U[0])
m = obj.mgrit
m.set_parameters(th)
m.cycle()  # JIT warm-up
best = 1e9
for _ in range(repeat):
    comm.Barrier(); t = time.perf_counter()
    m.cycle()
    comm.Barrier(); best = min(best, time.perf_counter() - t)
if comm.rank == 0:
    print("TIME", best, "levels", len(m.levels))
'''


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--N", type=int, default=1024)
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--cfactor", type=int, default=4)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=root)
    from ocnet.launch import mpiexec
    print(f"Peaks width 8, batch 5000, N={a.N}, levels={a.levels}, cfactor={a.cfactor}, FCF: one V-cycle")
    base = None
    for p in map(int, a.ranks.split(",")):
        out = subprocess.run(mpiexec(p) + [sys.executable, "-c", INNER,
                                    str(a.N), str(a.levels), str(a.cfactor), str(a.repeat)],
                             capture_output=True, text=True, env=env, cwd=root)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("TIME")]
        if not line:
            sys.exit(out.stdout + out.stderr)
        t = float(line[0].split()[1])
        base = base or t
        print(f"  ranks {p}: {t * 1e3:9.1f} ms per V-cycle   speed-up {base / t:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
