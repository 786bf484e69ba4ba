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
    probe = subprocess.run([*cmd, "-q", "-n", "1", "true"], capture_output=True, timeout=60)
    if probe.returncode == 0:
        cmd.append("-q")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    if "OpenRTE" in version:  # Open MPI 4: SIGTERM/SIGINT to mpiexec reach the ranks as SIGTERM and
        # SIGKILL follows after this many seconds (default 1): time for ocnet's save at its safe point
        cmd += ["--mca", "odls_base_sigkill_timeout", str(SIGKILL_TIMEOUT)]
    return tuple(cmd)


#: seconds Open MPI 4's mpiexec waits between SIGTERM and SIGKILL of the ranks (docs/hpc/long-runs.md)
SIGKILL_TIMEOUT = 5


def mpiexec(n, oversubscribe=True, bind=False):
    """[mpiexec, flags..., -n, n]: root-safe, quiet where supported, oversubscribed for n > cores;
    ``bind``: one core per rank where there are enough cores (steadier timings for benchmarks)."""
    flags = ["--oversubscribe"] if oversubscribe else []
    if bind and n <= (os.cpu_count() or 1):
        flags += ["--bind-to", "core"]
    return [*_base(), *flags, "-n", str(n)]
