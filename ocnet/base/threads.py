"""One BLAS/OpenMP thread per process unless the user chose otherwise.

ocnet's parallelism is its MPI ranks (and each rank's Numba kernels are single-threaded); a
numpy/scipy BLAS that starts one thread per core in every rank oversubscribes the cores.  Measured
on a 2-core Intel Xeon VM (Peaks -width 24, 40 lmvm iterations, 1 rank, 2026-12-07): solve wall
time 2.15 and 2.33 s with OpenBLAS's default threads, 1.41 and 1.46 s with OPENBLAS_NUM_THREADS=1,
1.33 and 1.33 s with this limit (a later pair of runs); a tester on the same machine under load saw
3.5 to 37 times.  The environment variables below, when set, are the user's choice and are left
as they are.
"""
import os

#: a thread count set by the user in any of these is honoured
ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def limit():
    """Limit the BLAS and OpenMP thread pools loaded so far, and those loaded later, to one thread
    (threadpoolctl) unless one of ``ENV`` is set; returns the limiter or None."""
    if any(name in os.environ for name in ENV):
        return None
    import numpy  # noqa: F401  (its BLAS is loaded, so that threadpoolctl finds it)
    from threadpoolctl import threadpool_limits
    for name in ENV:  # pools loaded later (scipy's own OpenBLAS, on first import) read these at load
        os.environ[name] = "1"
    return threadpool_limits(limits=1)
