"""The layer grid and its distribution over MPI ranks.

N steps (layers) n = 0..N-1 map state u[n] to u[n+1]; h = T/N.  Rank r owns a contiguous block
of steps [n0, n1) and the states u[n0+1..n1] they produce (rank 0 also owns u[0]).  Blocks differ
in size by at most one, so any N and any rank count P <= N work.
"""
import math
import sys
from dataclasses import dataclass

from .errors import OcnetError

#: the step h = T/N enters as h, 1/h and 1/h^2 (the smoothness term); all must be normal finite
#: floating-point numbers, so h^2 must lie in [smallest normal, largest finite]
H_MIN = math.sqrt(sys.float_info.min) * 1.0000001
H_MAX = math.sqrt(sys.float_info.max) * 0.9999999


def block_bounds(N, size, rank):
    """Return [n0, n1) of ``rank`` for N steps split over ``size`` ranks (first ranks get the extra)."""
    q, r = divmod(N, size)
    n0 = rank * q + min(rank, r)
    return n0, n0 + q + (1 if rank < r else 0)


@dataclass(frozen=True)
class LayerGrid:
    """The layer (time) grid t_n = n h, h = T / N (dimensionless: T is the problem's final time),
    split into contiguous blocks over ``size`` MPI ranks: this ``rank`` owns the steps (layers)
    n0 <= n < n1 (``bounds``, ``nlocal``; the first ranks take one extra) and the states
    u[n0+1..n1] (rank 0 also u[0]).  ``first`` / ``last``: rank 0 / the last rank.  Raises
    OcnetError for N <= 0, T <= 0 or infinite, an h whose square is not a normal float, or more
    ranks than layers.  ``from_comm(N, T, comm)``: this process's grid on an mpi4py communicator."""
    N: int
    T: float
    size: int
    rank: int

    def __post_init__(self):
        if self.N <= 0:
            raise OcnetError(f"the number of layers must be positive (got -N {self.N})")
        if not 0 < self.T < float("inf"):
            raise OcnetError(f"the final time must be positive (got -T {self.T})")
        h = self.T / self.N
        if not H_MIN <= h <= H_MAX:  # derived values: h*h under- or overflows (a division by 0 or inf)
            raise OcnetError(f"-T {self.T!r} with -N {self.N}: the step h = T/N = {h:.3g} is out of range; "
                             f"h and h^2 must be normal floating-point numbers ({H_MIN:.3g} <= h <= {H_MAX:.3g})")
        if self.size > self.N:
            raise OcnetError(f"{self.size} MPI ranks for only {self.N} layers: use at most N ranks")

    @classmethod
    def from_comm(cls, N, T, comm):
        return cls(int(N), float(T), comm.Get_size(), comm.Get_rank())

    @property
    def h(self):
        return self.T / self.N

    @property
    def bounds(self):
        return block_bounds(self.N, self.size, self.rank)

    @property
    def n0(self):
        return self.bounds[0]

    @property
    def n1(self):
        return self.bounds[1]

    @property
    def nlocal(self):
        n0, n1 = self.bounds
        return n1 - n0

    @property
    def first(self):
        return self.rank == 0

    @property
    def last(self):
        return self.rank == self.size - 1

    @property
    def owned_states(self):
        """Number of states stored by this rank: u[n0+1..n1], plus u[0] on rank 0."""
        return self.nlocal + (1 if self.first else 0)
