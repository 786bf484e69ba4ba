"""Distributed storage that follows the layer distribution.

``Trajectory``: states u[n0..n1] of one rank as a numpy array (row 0 is the halo u[n0] received
from the left neighbour, or u[0] on rank 0) whose owned rows are the storage of a PETSc Vec.
``Design``: the design vector [g, theta[0], ..., theta[N-1]] as a PETSc Vec; its global order
does not depend on the rank count, so saved parameters reload on any number of ranks.
"""
import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from ..base.errors import OcnetError, collective_check


class Trajectory:
    """This rank's states and step caches: ``U`` (nlocal + 1, S), row k = u[n0 + k] (row 0: the
    previous rank's last state, u[0] on rank 0, which the caller fills with the problem's
    ``opening``), ``C`` (nlocal, Sc), row k = the cache of the step into u[n0 + k + 1]."""

    def __init__(self, grid, state_size, cache_size, comm):
        self.grid = grid
        nl = grid.nlocal
        self.U = np.zeros((nl + 1, state_size))
        self.Cfull = np.zeros((nl + 1, cache_size))  # row k+1: cache of the step into U[k+1]
        self.C = self.Cfull[1:]
        owned = self.U if grid.first else self.U[1:]
        self.vec = PETSc.Vec().createWithArray(owned.reshape(-1), comm=comm)

    @property
    def state_size(self):
        return self.U.shape[1]


class Design:
    """Layout of the design vector: rank 0 stores the global parameters before its layers.

    The optimiser may also work on a *replicated* copy (a sequential Vec of the global size on
    every rank): then its dot products do not depend on the partition, and the whole optimisation
    history is bitwise the same for every rank count.  ``local`` and ``put_local`` accept both.
    """

    def __init__(self, grid, problem, comm):
        self.grid, self.problem, self.comm = grid, problem, comm
        self.p = problem.layer_param_size
        self.G = problem.global_param_size
        self.offset = self.G if grid.first else 0
        self.local_size = self.offset + grid.nlocal * self.p
        self.global_size = self.G + grid.N * self.p
        self.counts = np.array(comm.allgather(self.local_size))
        self.lo = int(self.counts[: grid.rank].sum())
        self.hi = self.lo + self.local_size

    def create_vec(self, replicated=False):
        """A zero design Vec: ``replicated`` a sequential Vec of ``global_size`` (G + N p) on every
        rank, else an MPI Vec distributed like the layers (rank 0: g, then its layers)."""
        if replicated:
            v = PETSc.Vec().createSeq(self.global_size, comm=PETSc.COMM_SELF)
        else:
            v = PETSc.Vec().createMPI((self.local_size, self.global_size), comm=self.comm)
        v.set(0.0)
        return v

    def is_replicated(self, x):
        return x.getLocalSize() == self.global_size

    def check(self, x, what):
        """Collective: OcnetError on every rank unless ``x`` is a PETSc Vec of either design layout
        (local size ``global_size`` replicated, or this rank's ``local_size`` distributed) on every
        rank (a wrong one raised a reshape error deep inside, and hung the other ranks)."""
        n = x.getLocalSize() if isinstance(x, PETSc.Vec) else None
        ok = n in (self.global_size, self.local_size)
        if self.comm.Get_size() > 1:
            flag = np.array([0 if ok else 1])
            self.comm.Allreduce(MPI.IN_PLACE, flag, op=MPI.MAX)
            if not flag[0]:
                return
        elif ok:
            return
        got = f"a Vec of local size {n}" if n is not None else f"a {type(x).__name__}"
        collective_check(self.comm, ok, f"{what}: expected a design Vec of local size {self.global_size} (replicated: "
                                        f"G + N p) or {self.local_size} (this rank's part), got {got}")

    def local(self, x):
        """This rank's part of x (read-only), for either layout."""
        a = x.getArray(readonly=True)
        return a[self.lo:self.hi] if self.is_replicated(x) else a

    def put_local(self, x, local):
        """Write this rank's part ``local`` into x; a replicated x receives every rank's part."""
        with x as arr:  # the context manager bumps the Vec's state, so cached norms are dropped
            if self.is_replicated(x):
                self.comm.Allgatherv(np.ascontiguousarray(local), [arr, self.counts])
            else:
                arr[:] = local

    def convert(self, x, replicated):
        """Copy of x in the other layout (or the same)."""
        y = self.create_vec(replicated)
        self.put_local(y, self.local(x))
        return y

    def split(self, arr):
        """(global params or None, thetas (nlocal, p)) as views of a local array."""
        g = arr[: self.G] if self.grid.first else None
        return g, arr[self.offset:].reshape(self.grid.nlocal, self.p)

    def _checked(self, method, size, values):
        """``values`` as returned by the plugin's ``method``; OcnetError unless its shape is (size,)."""
        shape = np.shape(values)
        if shape != (size,):
            attr = "global_param_size" if method == "initial_global_parameters" else "layer_param_size"
            from ..plugin.problem import ControlProblem
            set_ = attr in vars(self.problem) or any(attr in vars(c) for c in type(self.problem).__mro__
                                                      if c not in (ControlProblem, object))
            unset = "" if size or set_ else \
                f": the problem never sets {attr}, ControlProblem's default is 0; set it in the class or __init__"
            raise OcnetError(f"problem '{self.problem.name}': {method} returned shape {shape}, expected "
                             f"({size},) ({attr} = {size}{unset})")
        return values

    def initial(self, seed, replicated=False):
        """Initial design; each layer's draw is seeded by (seed, n), so it is rank-count free."""
        a = np.zeros(self.local_size)
        g, th = self.split(a)
        if g is not None:
            g[:] = self._checked("initial_global_parameters", self.G,
                                 self.problem.initial_global_parameters(np.random.default_rng([seed, 1 << 30])))
        for k in range(self.grid.nlocal):
            th[k] = self._checked("initial_layer_parameters", self.p, self.problem.initial_layer_parameters(
                self.grid.n0 + k, np.random.default_rng([seed, self.grid.n0 + k])))
        x = self.create_vec(replicated)
        self.put_local(x, a)
        return x
