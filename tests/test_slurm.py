"""runs/slurm: the batch templates parse (bash -n) and their --dry-run prints the srun lines of a
scaling study (nothing runs), with the documented defaults and overrides; relative paths are the
caller's, the plugin's folder reaches the ranks, and bad input stops with one line."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

SLURM = os.path.join(ROOT, "runs", "slurm")


@pytest.mark.parametrize("name", ["strong.sbatch", "weak.sbatch", "common.sh"])
def test_templates_parse(name):
    p = subprocess.run(["bash", "-n", os.path.join(SLURM, name)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def dry(name, cwd=None, status=0, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(PYTHON=sys.executable, **env)
    p = subprocess.run(["bash", os.path.join(SLURM, name), "--dry-run"], capture_output=True, text=True,
                       timeout=120, env=e, cwd=cwd)
    assert p.returncode == status, p.stdout + p.stderr
    if status:
        return p
    return [ln for ln in p.stdout.splitlines() if ln.startswith("srun ")]


def test_strong_dry_run_prints_srun_lines():
    lines = dry("strong.sbatch", RANKS="1,4", REPEAT="1")
    # the layer-serial baseline on 1 rank, then one-shot on 1 and 4 ranks; one line each
    assert [ln.split()[2] for ln in lines] == ["1", "1", "4"], lines
    assert all("-m ocnet" in ln and "-N 4096" in ln for ln in lines), lines
    # EXTRA defaults to nothing (no ResNet option), the options file to the checkout's peaks.opts
    assert all("-init_layer" not in ln and os.path.join(ROOT, "runs", "peaks.opts") in ln for ln in lines), lines
    assert "-mode oneshot" in lines[-1] and "-log_phases" in lines[-1]


def test_weak_dry_run_scales_N_and_honours_overrides():
    lines = dry("weak.sbatch", RANKS="1,2", REPEAT="1", N="32", EXTRA="-T 2", MODES="exact")
    assert any("--ntasks 2" in ln and "-N 64" in ln and "-mode exact" in ln for ln in lines), lines
    assert all("-T 2" in ln and "-init_layer" not in ln for ln in lines), lines


def test_relative_paths_and_plugin_folder_from_another_folder(tmp_path):
    """OPTIONS, PLUGIN_PATH and OUT relative to the caller's folder (not the checkout): the lines
    name the caller's files, and the plugin is found there."""
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "tinyplug.py").write_text(PLUGIN)
    (tmp_path / "tiny.opts").write_text("-problem tinyplug:Tiny\n")
    lines = dry("strong.sbatch", cwd=tmp_path, RANKS="1", REPEAT="1", OPTIONS="tiny.opts", PLUGIN_PATH="plug",
                OUT="res")
    assert lines and all(f"-options_file {tmp_path / 'tiny.opts'}" in ln for ln in lines), lines
    assert all(f"-run_dir {tmp_path / 'res'}" in ln for ln in lines), lines
    # without the plugin's folder the dry run stops with one line, exit 2
    p = dry("strong.sbatch", cwd=tmp_path, status=2, RANKS="1", REPEAT="1", OPTIONS="tiny.opts")
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and "tinyplug" in err[0], p.stderr


PLUGIN = '''
import numpy as np
from ocnet.plugin.problem import ControlProblem


class Tiny(ControlProblem):
    """u[n+1] = u[n] + h (-u[n] + theta[n]), u[0] = 1, J = |u[N] - 1/2|^2 / 2 (4 samples)."""
    name = "tiny"
    layer_param_size, global_param_size = 1, 0
    regularization_options = None
    datasets = {"train": np.full(4, 0.5)}

    def state_size(self, data):
        return 4

    def opening(self, g, data, u0):
        u0[:] = 1.0

    def step(self, n, h, theta, u, out, cache):
        out[:] = u + h * (theta[0] - u)

    def step_adjoint(self, n, h, theta, u, cache, lam_next, lam, grad_theta):
        lam[:] = (1.0 - h) * lam_next
        grad_theta += h * lam_next.sum()

    def terminal(self, g, data, uN, lamN, grad_g):
        lamN[:] = uN - data
        return 0.5 * float((uN - data) @ (uN - data))
'''
