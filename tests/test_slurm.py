"""runs/slurm: the batch templates parse (bash -n) and their --dry-run prints the srun lines of a
scaling study (nothing runs), with the documented defaults and overrides."""
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


def dry(name, **env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(PYTHON=sys.executable, **env)
    p = subprocess.run(["bash", os.path.join(SLURM, name), "--dry-run"], capture_output=True, text=True,
                       timeout=120, env=e)
    assert p.returncode == 0, p.stdout + p.stderr
    return [ln for ln in p.stdout.splitlines() if ln.startswith("srun ")]


def test_strong_dry_run_prints_srun_lines():
    lines = dry("strong.sbatch", RANKS="1,4", REPEAT="1")
    # the layer-serial baseline on 1 rank, then one-shot on 1 and 4 ranks; one line each
    assert [ln.split()[2] for ln in lines] == ["1", "1", "4"], lines
    assert all("-m ocnet" in ln and "-N 4096" in ln and "-init_layer 1e-3" in ln for ln in lines), lines
    assert "-mode oneshot" in lines[-1] and "-log_phases" in lines[-1]


def test_weak_dry_run_scales_N_and_honours_overrides():
    lines = dry("weak.sbatch", RANKS="1,2", REPEAT="1", N="32", EXTRA="-T 2", MODES="exact")
    assert any("--ntasks 2" in ln and "-N 64" in ln and "-mode exact" in ln for ln in lines), lines
    assert all("-T 2" in ln and "-init_layer" not in ln for ln in lines), lines
