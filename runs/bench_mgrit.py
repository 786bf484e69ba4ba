"""Time one MGRIT V-cycle for Peaks (width 8, batch 5000) with N = 1024 layers on 1 and 2 ranks.

    .venv/bin/python runs/bench_mgrit.py [--N 1024] [--levels 4] [--cfactor 4] [--ranks 1,2]

Each rank count runs in its own ``mpiexec`` (ranks bound to cores where there are enough: unbound
2-rank timings here varied between 122 and 147 ms from run to run); the script prints the time
per V-cycle (best of --repeat) and the speed-up against the first rank count, and beside it the
bound this machine sets: p independent 1-rank V-cycles on N/p layers run at the same time (they
share memory bandwidth and caches; no communication, no dependencies).
"""
import argparse
import os
import subprocess
import sys

INNER = r'''
import sys, time, numpy as np, petsc4py
petsc4py.init([])
from petsc4py import PETSc
from ocnet.run.cli import framework_options
from ocnet.base.grid import LayerGrid
from ocnet.mgrit.solver import MGRITSettings
from ocnet.optim.objective import ReducedObjective
from ocnet_problems.peaks import Peaks
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
    ap.add_argument("--repeat", type=int, default=9)
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=root)
    from ocnet.run.launch import mpiexec
    print(f"Peaks width 8, batch 5000, N={a.N}, levels={a.levels}, cfactor={a.cfactor}, FCF: one V-cycle")
    def launch(p, N):
        """p ranks under mpiexec; p = 0: one plain (singleton MPI) process, left to the OS scheduler
        (a 1-rank mpiexec would bind every such process to the same core)."""
        return subprocess.Popen((mpiexec(p, bind=True) if p else []) + [sys.executable, "-c", INNER, str(N), str(a.levels),
                                str(a.cfactor), str(a.repeat)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, cwd=root)

    def seconds(procs):
        ts = []
        for pr in procs:
            out, err = pr.communicate()
            line = [ln for ln in out.splitlines() if ln.startswith("TIME")]
            if not line:
                sys.exit(out + err)
            ts.append(float(line[0].split()[1]))
        return max(ts)

    base = None
    for p in map(int, a.ranks.split(",")):
        t = seconds([launch(p, a.N)])
        base = base or t
        line = f"  ranks {p}: {t * 1e3:9.1f} ms per V-cycle   speed-up {base / t:5.2f}x"
        if p > 1:  # what this machine allows: p unrelated 1-rank runs of N/p layers at the same time
            ti = seconds([launch(0, a.N // p) for _ in range(p)])
            line += f"   (bound: {p} independent N/{p} runs at once {ti * 1e3:.1f} ms, {base / ti:.2f}x)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
