"""Helper run under mpiexec by test_mgrit: state, adjoint and gradient by MGRIT vs layer-serial."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.kernel_toy
import petsc4py

petsc4py.init([])
from petsc4py import PETSc  # noqa: E402

from ocnet.run.cli import framework_options  # noqa: E402
from ocnet.base.grid import LayerGrid  # noqa: E402
from ocnet.mgrit.solver import MGRITSettings  # noqa: E402
from ocnet.optim.objective import ReducedObjective  # noqa: E402
from ocnet_problems.heat import Heat  # noqa: E402
from ocnet_problems.images import Digits  # noqa: E402
from ocnet_problems.peaks import Peaks  # noqa: E402

N, levels, cf = map(int, sys.argv[1:4])
extra = dict(a.split("=") for a in sys.argv[4:])
from tests.kernel_toy import KernelToy  # noqa: E402

cls = {"heat": Heat, "peaks": Peaks, "digits": Digits, "kerneltoy": KernelToy}[extra.pop("problem", "peaks")]
block = extra.pop("block", "single")  # block=double: the ResNet's two-layer block (generated forms)
calls = []
averaged = extra.pop("coarse", "") == "mean"
if averaged:  # a plugin's own parameter restriction for coarse steps
    class Averaged(cls):
        def coarse_parameters(self, blocks):
            calls.append(blocks.shape)
            return blocks.mean(axis=1)
    cls = Averaged
extra = {k: (float(v) if k == "cweight" else v == "1" if k == "skip_down" else v) for k, v in extra.items()}
comm = PETSc.COMM_WORLD.tompi4py()
opts = framework_options()
cls.declare_options(opts)
v = {o.name: o.default for o in opts.options}
v.update(width=4, channels=2, ntrain=60, nval=0, init_layer=2.0, nx=10)
if block == "double":
    v.update(block="double", hidden_width=5, activation="tanh", init_layer=1.0)
grid = LayerGrid.from_comm(N, 1.0, comm)
serial = ReducedObjective(grid, cls(v, comm), comm)
st = MGRITSettings(levels=levels, cfactor=(cf,), min_coarse=2, relax="FCF", max_it=60, rtol=1e-14, atol=1e-13)
for k, val in extra.items():
    setattr(st, k, val)
par = ReducedObjective(grid, cls(v, comm), comm, state_mgrit=st, adjoint_mgrit=st)
x = serial.design.initial(3, replicated=True)
gs, gp = x.duplicate(), x.duplicate()
Js, Jp = serial.evaluate(x, gs), par.evaluate(x, gp)
U_s, U_p = serial.state.U, par.state.U
if levels == 1:
    ok = Js == Jp and np.array_equal(gs.getArray(), gp.getArray()) and np.array_equal(U_s, U_p)
else:
    scale = np.abs(U_s).max()
    err_u = comm.allreduce(np.abs(U_s - U_p).max()) / scale
    err_g = np.abs(gs.getArray() - gp.getArray()).max() / np.abs(gs.getArray()).max()
    err_l = comm.allreduce(np.abs(serial.adj.U - par.adj.U).max()) / np.abs(serial.adj.U).max()
    sn = par.state_snes
    sn.snes.computeFunction(par.state.vec, sn.f)  # the space-time residual of the MGRIT state
    fnorm = sn.f.norm() / scale
    ok = (not averaged or comm.allreduce(len(calls)) > 0) and fnorm < 1e-10 and err_u < 1e-10 and err_l < 1e-10 and err_g < 1e-10 and abs(Js - Jp) / abs(Js) < 1e-10
    if comm.rank == 0:
        print("state", err_u, "adjoint", err_l, "grad", err_g, "its", len(par.mgrit.history) - 1,
              len(par.adj_mgrit.history) - 1, par.mgrit.history[-1])
if comm.rank == 0:
    print("OK" if ok else "FAIL")
