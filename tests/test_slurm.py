"""runs/slurm: the batch templates parse (bash -n) and their --dry-run prints the srun lines of a
scaling study (nothing runs), with the documented defaults and overrides; relative paths are the
caller's, the plugin's folder reaches the ranks, and bad input stops with one line."""
import json
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
    # the options file defaults to the checkout's peaks.opts, and with it EXTRA to its deep-ResNet
    # setting; with another options file, or EXTRA="", no ResNet option
    assert all(ln.endswith(" -init_layer 1e-3") and os.path.join(ROOT, "runs", "peaks.opts") in ln
               for ln in lines), lines
    assert "-mode oneshot" in lines[-1] and "-log_phases" in lines[-1]
    for env in ({"OPTIONS": os.path.join(ROOT, "runs", "mnist.opts")}, {"EXTRA": ""}):
        assert all("-init_layer" not in ln for ln in dry("strong.sbatch", RANKS="1", REPEAT="1", **env)), env



def test_dry_run_echo_pastes_back():
    """The '+ ...' line of the harness's command is quoted: pasted into a shell it runs (with an
    empty EXTRA it was '--extra  --out', which scaling.py rejects)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(PYTHON=sys.executable, RANKS="1", REPEAT="1", EXTRA="")
    p = subprocess.run(["bash", os.path.join(SLURM, "strong.sbatch"), "--dry-run"], capture_output=True, text=True,
                       timeout=120, env=e)
    plus = next(ln for ln in p.stdout.splitlines() if ln.startswith("+ "))
    assert "--extra ''" in plus, plus
    q = subprocess.run(["bash", "-c", plus[2:]], capture_output=True, text=True, timeout=120, env=e)
    assert q.returncode == 0 and q.stdout.startswith("srun "), q.stdout + q.stderr


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


# ---- runs/slurm/train.sbatch: USR1 before the limit, save, requeue, resume ---------------------
def test_train_template_parses_and_dry_runs(tmp_path):
    p = subprocess.run(["bash", "-n", os.path.join(SLURM, "train.sbatch")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    text = open(os.path.join(SLURM, "train.sbatch")).read()
    assert "#SBATCH --signal=B:USR1@" in text and "#SBATCH --requeue" in text
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(PYTHON=sys.executable, RUN_DIR=str(tmp_path / "r"))
    p = subprocess.run(["bash", os.path.join(SLURM, "train.sbatch"), "--dry-run"], capture_output=True, text=True,
                       timeout=120, env=e)
    assert p.returncode == 0, p.stderr
    peaks = os.path.join(os.path.dirname(SLURM), "peaks.opts")
    assert f"-m ocnet -options_file {peaks} -run_dir {tmp_path / 'r'}" in p.stdout, p.stdout
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".ocnet-run").write_text("")
    p = subprocess.run(["bash", os.path.join(SLURM, "train.sbatch"), "--dry-run"], capture_output=True, text=True,
                       timeout=120, env=e)
    assert f"-resume {tmp_path / 'r'}" in p.stdout, p.stdout  # a requeued job continues the folder


def _train_job(tmp_path, max_it):
    """Stand-ins for srun (runs the command on one rank) and scontrol (records its arguments in
    tmp_path/scontrol.log) and a small options file: (the job's environment without RUN_DIR, the
    script)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "srun").write_text('#!/bin/bash\n[ "$1" = --ntasks ] && shift 2\n[ "$1" = --cpu-bind=cores ] && shift\n'
                               '[ "$1" = --kill-on-bad-exit=1 ] && shift\n'
                               'exec "$@"\n')  # (a stand-in: starts one rank)
    (bin_ / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/scontrol.log\n')
    for f in ("srun", "scontrol"):
        os.chmod(bin_ / f, 0o755)
    opts = tmp_path / "small.opts"
    opts.write_text(f"-N 16\n-width 8\n-ntrain 1000\n-nval 50\n-tao_gatol 0\n-quiet\n-tao_max_it {max_it}\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(PYTHON=sys.executable, OPTIONS=str(opts), SLURM_JOB_ID="4242", SLURM_NTASKS="1",
             PATH=f"{bin_}:{os.environ['PATH']}", OMP_NUM_THREADS="1")
    return e, os.path.join(SLURM, "train.sbatch")


def _signal_job_mid_run(script, env, run, out, sig, ranks_too=False):
    """Start the batch script (its output to ``out``), send ``sig`` to it once the run has written
    4 history rows (``ranks_too``: to its rank as well, as Slurm's scancel signals every process
    of the job), and return its exit status."""
    import time

    p = subprocess.Popen(["bash", script], stdout=open(out, "w"), stderr=subprocess.STDOUT, env=env)
    hist, start = run / "history.csv", time.time()
    while not (hist.exists() and hist.read_text().count("\n") > 4):
        assert p.poll() is None and time.time() - start < 300, out.read_text()
        time.sleep(0.05)
    ranks = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    for pid in [p.pid] + ([int(r) for r in ranks] if ranks_too else []):
        os.kill(pid, sig)
    return p.wait(timeout=300)


def test_train_template_requeues_and_resumes(tmp_path):
    """The batch script with stand-ins for srun and scontrol: USR1 to the script mid-run stops the
    run saved (status 4) and requeues the job; the requeued start (same job id) resumes the folder
    and finishes."""
    import signal

    from tests.conftest import read_history
    e, script = _train_job(tmp_path, 150)
    run = tmp_path / "run"
    e["RUN_DIR"] = str(run)
    # (USR1: what Slurm's --signal=B:USR1@120 does)
    status = _signal_job_mid_run(script, e, run, tmp_path / "out1", signal.SIGUSR1)
    assert status == 4, (tmp_path / "out1").read_text()
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    stopped = int(read_history(run)[-1]["iteration"])
    assert 4 <= stopped < 150
    e["SLURM_RESTART_COUNT"] = "1"  # the requeued job
    p = subprocess.run(["bash", script], capture_output=True, text=True, env=e, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"resuming {run} at iteration {stopped}" in p.stdout
    assert [int(r["iteration"]) for r in read_history(run)] == list(range(151))
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]  # not requeued again


def test_train_template_term_and_max_requeues_do_not_requeue(tmp_path):
    """SIGTERM to the batch script (scancel, a preemption) stops the run saved (status 4) without a
    requeue (it requeued as on USR1); USR1 at MAX_REQUEUES says why it does not requeue (it exited
    4 silently).  Stand-ins for srun and scontrol as above."""
    import signal

    job, script = _train_job(tmp_path, 100000)
    # (the third: SIGTERM to the script and the rank, as scancel does; the script's forwarded USR1
    # was a second signal that ended the rank unsaved, status 143, tester 37)
    for sig, restarts, text, ranks_too in (
            (signal.SIGTERM, "0", "stopped by SIGTERM (scancel or a preemption): not requeued", False),
            (signal.SIGUSR1, "20", "not requeued: MAX_REQUEUES (20) reached", False),
            (signal.SIGTERM, "1", "stopped by SIGTERM (scancel or a preemption): not requeued", True)):
        run = tmp_path / f"run{restarts}"
        e = dict(job, RUN_DIR=str(run), SLURM_RESTART_COUNT=restarts)
        out = tmp_path / f"out{restarts}"
        status = _signal_job_mid_run(script, e, run, out, sig, ranks_too)
        assert status == 4, out.read_text()
        assert text in out.read_text() and not (tmp_path / "scontrol.log").exists(), out.read_text()
        assert json.loads((run / "summary.json").read_text())["reason"] == "INTERRUPTED"


def test_train_template_does_not_requeue_a_finished_run(tmp_path):
    """USR1 as the run ends: the ranks finish, but their exit without MPI finalisation makes srun
    report a failure; the script requeued the finished run (tester 37).  Here a stand-in srun runs
    the run to its end, then signals the script and exits 1."""
    e, script = _train_job(tmp_path, 3)
    (tmp_path / "bin" / "srun").write_text(
        '#!/bin/bash\nshift 2; shift; shift\n"$@"\nkill -USR1 $PPID; sleep 1; exit 1\n')
    e["RUN_DIR"] = str(tmp_path / "run")
    p = subprocess.run(["bash", script], capture_output=True, text=True, env=e, timeout=300)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["reason"] == "DIVERGED_MAXITS"
    assert "requeueing" not in p.stdout and not (tmp_path / "scontrol.log").exists(), p.stdout + p.stderr


def test_train_template_relative_paths_plugin_folder_and_checks(tmp_path):
    """train.sbatch from another folder: OPTIONS, RUN_DIR and PLUGIN_PATH relative to it; the dry run
    loads the out-of-tree problem, and fails with one line for a missing options file or an
    unimportable problem."""
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "tinyplug.py").write_text(PLUGIN)
    (tmp_path / "tiny.opts").write_text("-problem tinyplug:Tiny\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    e.update(PYTHON=sys.executable, OPTIONS="tiny.opts", RUN_DIR="r", PLUGIN_PATH="plug")
    script = os.path.join(SLURM, "train.sbatch")

    def dry_train(**extra):
        return subprocess.run(["bash", script, "--dry-run"], capture_output=True, text=True, timeout=300,
                              cwd=tmp_path, env={**e, **extra})
    p = dry_train()
    assert p.returncode == 0, p.stderr
    assert "-m ocnet -options_file tiny.opts -run_dir r" in p.stdout, p.stdout
    p = dry_train(OPTIONS="missing.opts")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "missing.opts" in p.stderr, p.stderr
    p = dry_train(PLUGIN_PATH="")
    errs = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(errs) == 1 and "tinyplug" in errs[0], p.stderr
    # option values are checked too (ocnet -dry_run; -help, used before, checked none)
    for bad, text in (("-mode oneshott", "option -mode: 'oneshott' is not one of"),
                      ("-tao_ls_type armijoo", "TaoLineSearch type armijoo")):
        p = dry_train(EXTRA=bad)
        errs = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(errs) == 1 and text in errs[0], p.stderr
    assert not (tmp_path / "r").exists()  # nothing written


def test_train_dry_run_with_a_plugin_folder(tmp_path):
    """PLUGIN_PATH: the dry run prints the PYTHONPATH the ranks get; a folder that does not exist
    is one line, exit 2 (it was put on PYTHONPATH as given)."""
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "tinyplug.py").write_text(PLUGIN)
    (tmp_path / "tiny.opts").write_text("-problem tinyplug:Tiny\n")
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "PYTHONPATH"}
    e.update(PYTHON=sys.executable, OCNET_ROOT=os.path.dirname(os.path.dirname(SLURM)), OPTIONS="tiny.opts")
    script = os.path.join(SLURM, "train.sbatch")
    p = subprocess.run(["bash", script, "--dry-run"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=dict(e, PLUGIN_PATH="plug"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == f"export PYTHONPATH={tmp_path / 'plug'}", p.stdout
    p = subprocess.run(["bash", script, "--dry-run"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=dict(e, PLUGIN_PATH="plgu"))
    assert p.returncode == 2 and p.stdout == "", p.stdout
    assert p.stderr.strip() == f"{script}: PLUGIN_PATH: no folder 'plgu'", p.stderr
