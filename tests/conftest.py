import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpiexec_prefix(n, **kw):
    if shutil.which("mpiexec") is None:
        pytest.fail("mpiexec not found: the test suite needs MPI (README set-up installs it)")
    from ocnet.run.launch import mpiexec
    return mpiexec(n, **kw)


def run_ocnet(args, nprocs=None, timeout=300, check=True, plots=False, env=None):
    """Run the CLI (optionally under mpiexec); returns CompletedProcess with text output.  A run
    folder gets no figures (-run_dir_plots 0: a second of matplotlib per run) unless ``plots``;
    ``env``: more environment variables."""
    args = [str(a) for a in args]
    if not plots and ("-run_dir" in args or "-resume" in args) and "-run_dir_plots" not in args:
        args += ["-run_dir_plots", "0"]
    cmd = [sys.executable, "-m", "ocnet", *args]
    if nprocs is not None:
        cmd = mpiexec_prefix(nprocs) + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **(env or {}))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"ocnet failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


#: summary.json's keys after every ending (success, signal, numerical failure, plugin failure)
SUMMARY_KEYS = {"reason", "iterations", "ranks", "mode", "wall_time", "final_row", "jit_time", "warmup_time", "machine",
                "finished", "host", "versions", "starts"}


def read_history(path):
    with open(os.path.join(path, "history.csv")) as f:
        return list(csv.DictReader(f))


def history_column(path, name="objective"):
    """One column of a run folder's history.csv as floats."""
    return np.array([float(r[name]) for r in read_history(path)])


def assert_histories_agree(ref, others, equal=(), close=(), rtol=1e-10):
    """The run folders ``others`` have ``ref``'s history: columns ``equal`` bitwise (counts,
    decisions), columns ``close`` to ``rtol`` (floating-point results of other rank counts)."""
    for column in (*equal, *close):
        want = history_column(ref, column)
        for d in others:
            got = history_column(d, column)
            if column in equal:
                np.testing.assert_array_equal(got, want, err_msg=column)
            else:
                np.testing.assert_allclose(got, want, rtol=rtol, atol=0, err_msg=column)
