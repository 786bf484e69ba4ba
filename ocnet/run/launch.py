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
    return tuple(cmd)


def mpiexec(n, oversubscribe=True, bind=False):
    """[mpiexec, flags..., -n, n]: root-safe, quiet where supported, oversubscribed for n > cores;
    ``bind``: one core per rank where there are enough cores (steadier timings for benchmarks)."""
    flags = ["--oversubscribe"] if oversubscribe else []
    if bind and n <= (os.cpu_count() or 1):
        flags += ["--bind-to", "core"]
    return [*_base(), *flags, "-n", str(n)]
