"""The mpiexec command line used by the tests and the scripts under runs/ (Open MPI 4 and 5)."""
import functools
import os
import shutil
import subprocess

from ..base.errors import OcnetError


@functools.lru_cache(maxsize=None)
def _base():
    exe = shutil.which("mpiexec")
    if exe is None:
        raise OcnetError("mpiexec not found: run runs/bootstrap.sh (it installs Open MPI)")
    cmd = [exe]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    # -q silences mpiexec's own multi-line notices about non-zero exits; keep it only where supported
    probe = subprocess.run([*cmd, "-q", "-n", "1", "true"], capture_output=True, timeout=60,
                           env=dict(os.environ))  # (without what MPI_Init here added: mpi_added_variables)
    if probe.returncode == 0:
        cmd.append("-q")
    return tuple(cmd)


@functools.lru_cache(maxsize=None)
def _open_mpi_4():
    version = subprocess.run([shutil.which("mpiexec"), "--version"], capture_output=True, text=True,
                             timeout=60).stdout
    return "OpenRTE" in version


#: seconds between SIGTERM and SIGKILL for runs that must save when mpiexec is signalled
#: (docs/hpc/long-runs.md)
SIGKILL_TIMEOUT = 5


#: prefixes of the variables an MPI library's initialisation puts into a process's environment
MPI_VARIABLES = ("OMPI_", "PMIX_", "ORTE_", "PRTE_", "HFI_", "IPATH_")


def mpi_added_variables():
    """Names of MPI variables in this process's C environment that Python's ``os.environ`` does not
    hold: what initialising MPI here added (importing mpi4py's MPI, petsc4py's PETSc, or running
    ocnet in-process; Open MPI's singleton sets OMPI_MCA_ess, PMIX_RANK, ...).  A child mpiexec
    inherits them and exits with status 1 and no output; variables the user set before Python
    started are in os.environ and stay.  [] where the C environment cannot be read."""
    import ctypes

    try:
        env = ctypes.POINTER(ctypes.c_char_p).in_dll(ctypes.CDLL(None), "environ")
    except (OSError, ValueError):
        return []
    names, i = [], 0
    while env[i]:
        name = env[i].decode(errors="replace").split("=", 1)[0]
        if name.startswith(MPI_VARIABLES) and name not in os.environ:
            names.append(name)
        i += 1
    return names


def mpiexec(n, oversubscribe=True, bind=False, sigkill_timeout=None):
    """[mpiexec, flags..., -n, n]: root-safe, quiet where supported, oversubscribed for n > cores;
    ``bind``: one core per rank where there are enough cores (steadier timings for benchmarks).
    ``sigkill_timeout``: seconds Open MPI 4's mpiexec waits between passing SIGTERM to the ranks
    and SIGKILLing them (when it is signalled itself; default 1 s): time for ocnet's save at its
    safe point.  Not the default, because Open MPI 4 waits twice this long at *every* non-zero
    exit of a job (measured: a bad option on 2 ranks returns after 15 s with 5, 4 s with 1).
    Where this process has initialised MPI, the command starts with ``env -u NAME ...`` for the
    variables that added (``mpi_added_variables``), so that it works from such a process too."""
    flags = ["--oversubscribe"] if oversubscribe else []
    if sigkill_timeout is not None and _open_mpi_4():
        flags += ["--mca", "odls_base_sigkill_timeout", str(sigkill_timeout)]
    if bind and n <= (os.cpu_count() or 1):
        flags += ["--bind-to", "core"]
    added = mpi_added_variables()
    clean = ["env", *(a for name in added for a in ("-u", name))] if added else []
    return [*clean, *_base(), *flags, "-n", str(n)]
