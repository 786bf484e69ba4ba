"""Layer-serial solves across ranks: the state travels rank to rank forward, the adjoint backward.

Each rank sweeps its own block with the plugin's (jitted) sweep, so the result is bitwise the same
for every rank count.  These are also the fine-level sweeps of MGRIT's one-level limit.
"""
import numpy as np

TAG_STATE, TAG_ADJOINT, TAG_GLOBAL, TAG_GRAD = 11, 12, 13, 14


class LayerSerial:
    """The layer-serial solves (the reference MGRIT is checked against): ``forward`` sweeps the
    state through every layer, rank after rank, ``adjoint`` the transposed steps back with the
    parameter gradient (the discrete adjoint of the forward sweep)."""

    def __init__(self, grid, problem, comm):
        self.grid, self.problem, self.comm = grid, problem, comm

    def share_global(self, g):
        """Global parameters from rank 0 to the last rank (the opening's and classifier's owners)."""
        gr, comm = self.grid, self.comm
        if gr.size == 1:
            return g
        if gr.first:
            comm.Send(np.ascontiguousarray(g), dest=gr.size - 1, tag=TAG_GLOBAL)
            return g
        if gr.last:
            buf = np.empty(self.problem.global_param_size)
            comm.Recv(buf, source=0, tag=TAG_GLOBAL)
            return buf
        return None

    def _first_state(self, g, data, u0):
        """u0 <- this block's first state: the opening map on rank 0, else the left neighbour's last."""
        gr = self.grid
        if gr.first:
            self.problem.opening(g, data, u0)
        else:
            self.comm.Recv(u0, source=gr.rank - 1, tag=TAG_STATE)

    def _pass_on(self, u):
        """This block's last state to the right neighbour."""
        if not self.grid.last:
            self.comm.Send(u, dest=self.grid.rank + 1, tag=TAG_STATE)

    def forward(self, g, thetas, data, traj):
        """Fill traj.U with the states; rank 0 applies the opening map."""
        gr, U = self.grid, traj.U
        self._first_state(g, data, U[0])
        self.problem.sweep(gr.n0, gr.h, thetas, U, traj.C)
        self._pass_on(U[-1])

    def forward_last(self, g, thetas, data, chunk=8):
        """The state after this rank's last layer, (S,), from a forward solve that keeps no
        trajectory: the block is swept ``chunk`` layers at a time through a (chunk+1)-row buffer,
        so evaluations and predictions on large data (a plot's grid, a whole scene) take
        O(chunk) states of memory instead of O(N).  Steps depend only on (layer, h, theta, u)
        (the plugin contract), so the states are bitwise those of ``forward``."""
        gr, pb = self.grid, self.problem
        nl = thetas.shape[0]
        rows = max(1, min(chunk, nl))
        U = np.zeros((rows + 1, pb.state_size(data)))
        C = np.zeros((rows, pb.cache_size(data)))
        self._first_state(g, data, U[0])
        for k0 in range(0, nl, rows):
            n = min(rows, nl - k0)
            pb.sweep(gr.n0 + k0, gr.h, thetas[k0:k0 + n], U[:n + 1], C[:n])
            U[0] = U[n]
        self._pass_on(U[0])
        return U[0]

    def adjoint(self, g, thetas, data, traj, lam, G, grad_g, chained=True, rows=None):
        """Backward sweep; lam.U[-1] must hold dJ/du[N] on the last rank.  Adds to G and grad_g (rank 0).

        ``chained=False``: the adjoint is already known at every layer (adjoint MGRIT); only the
        parameter gradient is formed from it, layer by layer, without communication (``rows``:
        only of these local layers, the rest being formed already; None: all)."""
        gr, comm, L = self.grid, self.comm, lam.U
        if not chained:
            if rows is None:
                self.problem.parameter_gradient(gr.n0, gr.h, thetas, traj.U, traj.C, L, G)
            elif len(rows):
                self.problem.parameter_gradient(gr.n0, gr.h, thetas, traj.U, traj.C, L, G, rows=rows)
            if gr.first:
                self.problem.opening_adjoint(g, data, L[0], grad_g)
            return
        if not gr.last:
            comm.Recv(L[-1], source=gr.rank + 1, tag=TAG_ADJOINT)
        self.problem.sweep_adjoint(gr.n0, gr.h, thetas, traj.U, traj.C, L, G)
        if gr.first:
            self.problem.opening_adjoint(g, data, L[0], grad_g)
        elif chained:
            comm.Send(L[0], dest=gr.rank - 1, tag=TAG_ADJOINT)
