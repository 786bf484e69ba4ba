"""Clean stops on signals (docs/hpc/long-runs.md): SIGTERM / SIGINT to mpiexec at different
moments (an iteration picked by the test, the JIT warm-up, a checkpoint being written, the final
figures), SIGUSR1 to one rank, SIGKILL of one rank, on 1, 2 and 3 ranks.  Every rank ends within
10 s of the signal, the folder is consistent (the saved parameters are the last history row's
design) and -resume finishes the run; the one-shot TAO's resumed result is bitwise the
uninterrupted one.  The moments inside a run are set by the OCNET_TEST_SIGNAL / OCNET_TEST_KILL
hooks (deterministic), one by the test watching history.csv."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, SUMMARY_KEYS, mpiexec_prefix, read_history, run_ocnet

ARGS = ["-N", 16, "-width", 8, "-ntrain", 1000, "-nval", 50, "-tao_gatol", 0, "-quiet"]
ONESHOT = ["-N", 12, "-width", 4, "-ntrain", 200, "-nval", 20, "-quiet", "-mode", "oneshot", "-mgrit_cfactor", 2,
           "-oneshot_tao"]
STOP_SECONDS = 10  # every rank ends within this many seconds of the signal
GUARD = 300  # hang guard of a whole run (a run here takes 5-20 s)


def children(pid):
    """Process ids whose parent is ``pid`` (the ranks of an Open MPI mpiexec on one node)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def launch(args, nprocs, tmp_path, plots=False, grace=False, **env):
    """Start ocnet under mpiexec; output to files (a full pipe must never block a rank).  No
    figures unless ``plots`` (as tests.conftest.run_ocnet).  ``grace``: Open MPI's SIGTERM grace
    period (ocnet.run.launch.SIGKILL_TIMEOUT), for a test that signals mpiexec with TERM or INT;
    elsewhere it only delays mpiexec's end after the ranks' non-zero exit."""
    e = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", **env)
    args = list(args) + ([] if plots else ["-run_dir_plots", 0])
    out, err = open(tmp_path / "stdout", "w+"), open(tmp_path / "stderr", "w+")
    from ocnet.run.launch import SIGKILL_TIMEOUT
    cmd = mpiexec_prefix(nprocs, **({"sigkill_timeout": SIGKILL_TIMEOUT} if grace else {}))
    cmd += [sys.executable, "-m", "ocnet", *map(str, args)]
    return subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT, env=e), out, err


def watch(p, stamp=None, trigger=None, sig=signal.SIGTERM):
    """Follow the run until it ends: send ``sig`` to mpiexec when ``trigger()`` first holds, or
    read the moment a hook sent it from the file ``stamp``.  Returns (seconds from the signal
    to the end of the last rank, or None without a signal; mpiexec's exit status)."""
    t_sig, ranks, t_end, start = None, set(), None, time.time()
    while True:
        if time.time() - start > GUARD:
            p.kill()
            pytest.fail("the run did not end (hang guard)")
        ranks.update(children(p.pid))
        if t_sig is None and trigger is not None and trigger():
            os.kill(p.pid, sig)
            t_sig = time.time()
        if t_sig is None and stamp is not None and os.path.exists(stamp):
            t_sig = float(open(stamp).read())
        if t_sig is not None and ranks and t_end is None and not any(alive(r) for r in ranks):
            t_end = time.time()
        if p.poll() is not None:
            if t_end is None:
                t_end = time.time()
            break
        time.sleep(0.02)
    return (None if t_sig is None else t_end - t_sig), p.returncode


def outputs(out, err):
    out.seek(0)
    err.seek(0)
    return out.read(), err.read()


def check_consistent(folder):
    """The saved parameters are the design of the last history row; the summary says INTERRUPTED."""
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["reason"] == "INTERRUPTED" and SUMMARY_KEYS <= set(summary) and summary["exit_status"] == 4, summary
    rows = read_history(folder)
    params = json.loads((folder / "params.json").read_text())
    assert int(rows[-1]["iteration"]) == params["iteration"] == summary["iterations"], (rows[-1], params, summary)
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp") or f == "checkpoint.new"]
    return int(rows[-1]["iteration"])


def resume_finishes(folder, args, nprocs, max_it):
    p = run_ocnet(args + ["-resume", folder, "-tao_max_it", max_it], nprocs=nprocs, timeout=GUARD)
    rows = read_history(folder)
    assert [int(r["iteration"]) for r in rows] == list(range(max_it + 1)), [r["iteration"] for r in rows]
    assert json.loads((folder / "summary.json").read_text())["reason"] == "DIVERGED_MAXITS"
    return p


@pytest.mark.parametrize("nprocs,sig", [(1, signal.SIGINT), (2, signal.SIGTERM), (3, signal.SIGUSR1)])
def test_signal_mid_run(tmp_path, nprocs, sig):
    """The test signals mpiexec once the run has written 5 history rows (an arbitrary moment of
    an iteration); the run stops at the end of that iteration, saved.  mpiexec forwards SIGUSR1 at
    once and returns the ranks' status 4; SIGTERM/SIGINT reach the ranks after Open MPI's
    odls_base_sigkill_timeout (5 s here) and mpiexec returns its own status."""
    run = tmp_path / "run"
    # saving every iteration: the signal often lands in a save; 0.1 s a row: mpiexec passes SIGINT/
    # SIGTERM on 5 s late, and a fast machine would otherwise end the run (TAO's -tao_max_funcs) first
    p, out, err = launch(ARGS + ["-tao_max_it", 100000, "-run_dir", run] + ["-checkpoint_seconds", 0] * (nprocs > 1),
                         nprocs, tmp_path, grace=sig != signal.SIGUSR1, OCNET_TEST_ROW_SLEEP="0.1")
    hist = run / "history.csv"
    took, status = watch(p, trigger=lambda: hist.exists() and hist.read_text().count("\n") > 5, sig=sig)
    o, e = outputs(out, err)
    assert took is not None and took < STOP_SECONDS, (took, o, e)
    assert status != 0 and (status == 4 or sig != signal.SIGUSR1), (status, e)
    assert "Traceback" not in e and "OMPI_MCA_odls_base_sigkill_timeout" not in e, e  # (set here: no hint)
    its = check_consistent(run)
    assert its >= 4
    resume_finishes(run, ARGS, nprocs, its + 3)


@pytest.mark.parametrize("nprocs,sig,stage,target", [(2, "INT", "warmup:0", "parent"), (2, "TERM", "warmup:0", ""),
                                                     (2, "TERM", "warmup:0", "rank=1"),
                                                     (3, "TERM", "save:3", ""), (2, "INT", "plot:0", "")])
def test_signal_at_a_hooked_moment(tmp_path, nprocs, sig, stage, target):
    """SIGINT to mpiexec during the JIT warm-up; SIGTERM/SIGINT to rank 0 itself during the
    warm-up, while it writes a checkpoint, and while it draws the final figures; SIGTERM to rank 1
    alone in the warm-up (the stop was not noted: rank 0 only wrote the note, and rank 1's abort
    ended it; a launcher that signals every rank lost it the same way).  (Open MPI 4's
    mpiexec passes a SIGTERM/SIGINT on to the ranks odls_base_sigkill_timeout seconds later, as
    SIGTERM, and SIGKILLs them as long again later: ocnet.run.launch sets 5 s; so the moments
    inside a run are hit by signalling a rank.)"""
    run, stamp = tmp_path / "run", tmp_path / "stamp"
    max_it = 100000 if (stage, target) == ("warmup:0", "parent") else 8  # still running when the ranks get it
    p, out, err = launch(ARGS + ["-tao_max_it", max_it, "-run_dir", run, "-checkpoint_seconds", 0], nprocs,
                         tmp_path, plots=stage.startswith("plot"), grace=target == "parent", OCNET_TEST_SIGNAL=f"{stage}:{sig}:{target}", OCNET_TEST_SIGNAL_STAMP=str(stamp))
    took, _ = watch(p, stamp=str(stamp))
    o, e = outputs(out, err)
    assert took is not None and took < STOP_SECONDS, (took, o, e)
    assert "Traceback" not in e, e
    summary = json.loads((run / "summary.json").read_text())
    if stage.startswith("warmup") and target == "parent":  # reaches the ranks while they iterate
        check_consistent(run)
    elif stage.startswith("warmup"):  # nothing computed yet: noted, and -resume starts afresh
        assert summary["reason"] == "INTERRUPTED" and not (run / "history.csv").exists(), summary
        assert e.count("stopped before the first iteration (nothing to save; -resume continues in the run folder)") == 1, e
    elif stage.startswith("save"):  # the save finishes, then every rank stops
        assert check_consistent(run) == 3
    else:  # the run had finished: its outputs are complete
        assert summary["reason"] == "DIVERGED_MAXITS" and int(read_history(run)[-1]["iteration"]) == 8
    last = int(read_history(run)[-1]["iteration"]) if (run / "history.csv").exists() else 0
    resume_finishes(run, ARGS, nprocs, max(10, last + 3))


def test_usr1_to_one_rank_stops_all(tmp_path):
    """SIGUSR1 to rank 1 alone: every rank stops at the same safe point; mpiexec returns 4."""
    run = tmp_path / "run"
    p, out, err = launch(ARGS + ["-tao_max_it", 50, "-run_dir", run], 2, tmp_path,
                         OCNET_TEST_SIGNAL="row:4:USR1:rank=1")
    took, status = watch(p)
    o, e = outputs(out, err)
    assert status == 4, (status, o, e)
    assert e.count("ocnet: interrupted by SIGUSR1 after iteration 4") == 1, e
    assert check_consistent(run) == 4
    # -load of the interrupted folder reproduces the last row's objective (serial mode: exact)
    p = run_ocnet(ARGS + ["-load", run, "-tao_max_it", 0, "-run_dir", tmp_path / "eval"], nprocs=2)
    assert read_history(tmp_path / "eval")[0]["objective"] == read_history(run)[-1]["objective"]


def test_sigterm_names_open_mpis_grace_period(tmp_path):
    """SIGTERM to rank 0 under Open MPI 4's mpiexec without odls_base_sigkill_timeout: the stop
    line names the variable (mpiexec kills the ranks 1 s after its SIGTERM, maybe before the save;
    a tester's Ctrl-C lost the save: 'RUNNING').  The run itself, signalled directly, saves."""
    from ocnet.run.launch import _open_mpi_4
    run = tmp_path / "run"
    p, out, err = launch(ARGS + ["-tao_max_it", 50, "-run_dir", run], 2, tmp_path, OCNET_TEST_SIGNAL="row:4:TERM:")
    _, status = watch(p)
    o, e = outputs(out, err)
    hint = "start it with OMPI_MCA_odls_base_sigkill_timeout=5 set (docs/hpc/long-runs.md)"
    assert e.count(hint) == (_open_mpi_4() and "OMPI_MCA_odls_base_sigkill_timeout" not in os.environ), e
    assert check_consistent(run) == 4


def test_sigkill_of_one_rank(tmp_path, monkeypatch):
    """SIGKILL of rank 1 after the save of iteration 4: mpiexec ends the job; -resume continues
    from that save."""
    run = tmp_path / "run"
    p, out, err = launch(ARGS + ["-tao_max_it", 50, "-run_dir", run, "-checkpoint_every", 2], 2, tmp_path,
                         OCNET_TEST_KILL="after:4:1")
    _, status = watch(p)
    assert status != 0
    assert json.loads((run / "params.json").read_text())["iteration"] == 4
    out = resume_finishes(run, ARGS + ["-checkpoint_every", 2], 2, 8).stdout
    assert f"resuming {run} at iteration 4 (TAO lmvm starts its own memory afresh at the saved design: from here " \
        "the history differs from an uninterrupted run's; docs/hpc/long-runs.md)\n" in out


def test_oneshot_sigterm_resume_bitwise(tmp_path):
    """The one-shot TAO stopped by SIGTERM (to rank 0, at the row of iteration 5) and resumed ends
    bitwise where an uninterrupted run ends."""
    ref, cut, stamp = tmp_path / "ref", tmp_path / "cut", tmp_path / "stamp"
    run_ocnet(ONESHOT + ["-tao_max_it", 12, "-run_dir", ref], nprocs=2, timeout=GUARD)
    p, out, err = launch(ONESHOT + ["-tao_max_it", 12, "-run_dir", cut], 2, tmp_path,
                         OCNET_TEST_SIGNAL="row:5:TERM", OCNET_TEST_SIGNAL_STAMP=str(stamp))
    took, _ = watch(p, stamp=str(stamp))
    assert took is not None and took < STOP_SECONDS
    assert check_consistent(cut) == 5
    run_ocnet(ONESHOT + ["-tao_max_it", 12, "-resume", cut], nprocs=2, timeout=GUARD)
    assert (ref / "params.petsc").read_bytes() == (cut / "params.petsc").read_bytes()
    assert (ref / "history.csv").read_text().count("\n") == (cut / "history.csv").read_text().count("\n")
    a, b = read_history(ref), read_history(cut)
    assert [r["objective"] for r in a] == [r["objective"] for r in b]


def _signalled_script(*steps):
    """Run a Python process with ocnet's handlers in the run phase that executes ``steps`` (lines
    of code: os, signal, time and signals imported) and then waits 5 s; its CompletedProcess."""
    code = "\n".join(["import os, signal, time", "from ocnet.base import signals",
                      "signals.install(); signals.set_phase('run')", *steps, "time.sleep(5)",
                      "print('not ended', flush=True)"])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_second_signal_ends_at_once():
    """A second signal while the first waits for its safe point ends the process at once
    (status 128 + 15); the first only sets the flag."""
    p = _signalled_script("os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.2)",
                          "print('flag', signals.requested(), flush=True)", "os.kill(os.getpid(), signal.SIGTERM)")
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.splitlines() == [f"flag {int(signal.SIGTERM)}"], p.stdout
    assert "second signal" in p.stderr


def test_echo_of_the_first_signal_is_not_a_second():
    """SIGTERM to every process of a job (scancel, a preemption) and the job script's forwarded
    SIGUSR1 within ECHO s: one stop request (the USR1 ended the run without its save); the same
    signal again, or another after ECHO s, is a second signal as before."""
    p = _signalled_script("os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.1)",
                          "os.kill(os.getpid(), signal.SIGUSR1); time.sleep(0.2 + signals.GRACE)",
                          "print('flag', signals.requested(), flush=True)", "time.sleep(signals.ECHO)",
                          "os.kill(os.getpid(), signal.SIGUSR1)")
    assert p.returncode == 128 + signal.SIGUSR1, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.splitlines() == [f"flag {int(signal.SIGTERM)}"], p.stdout
    assert p.stderr.count("second signal (") == 1, p.stderr


def test_run_folder_in_use_is_refused(tmp_path):
    """While a run writes its folder (2 ranks), a -resume of it, or a -run_dir_overwrite of it
    (or either's -dry_run), is one line, exit 2, and changes nothing (before: the -resume crashed with a missing
    checkpoint file, or both runs wrote the folder); after the run stopped, -resume continues."""
    folder = tmp_path / "run"
    # (-tao_max_funcs: a fast machine ended the run by TAO's evaluation limit, 3855 iterations, before
    # the two refused runs and the signal)
    p, out, err = launch(ARGS + ["-tao_max_it", 100000, "-tao_max_funcs", 10 ** 9, "-run_dir", folder], 2, tmp_path,
                         grace=True)
    try:
        start = time.time()
        while not (folder / "history.csv").exists() or len(read_history(folder)) < 3:
            assert p.poll() is None and time.time() - start < GUARD, outputs(out, err)
            time.sleep(0.1)
        # (-dry_run too: it passed on a folder in use, new-user tester 2026-12-07)
        for extra in (["-resume", folder], ["-run_dir", folder, "-run_dir_overwrite"], ["-resume", folder, "-dry_run"]):
            q = run_ocnet(ARGS + extra, nprocs=2, check=False, timeout=120)
            lines = [ln for ln in q.stderr.splitlines() if ln.startswith("ocnet")]  # (and mpiexec's notice)
            assert q.returncode == 2 and len(lines) == 1, q.stderr
            assert f"'{folder}' is in use by a run that is still going (pid " in lines[0], lines
        assert p.poll() is None  # the first run goes on
    finally:
        p.send_signal(signal.SIGTERM)
        watch(p)
    last = check_consistent(folder)
    resume_finishes(folder, ARGS, 2, last + 2)


def test_second_signal_ends_a_run_stuck_in_compiled_code(tmp_path):
    """A plugin's jitted loop that does not return holds the main thread, where Python runs its
    signal handlers: the first SIGTERM cannot stop the run at an iteration's end, the second ends
    the process at once (128 + 15) through the watcher thread (it stayed until SIGKILL)."""
    mark = tmp_path / "spinning"
    e = dict(os.environ, OMP_NUM_THREADS="1", OCNET_TEST_SPIN_MARK=str(mark))
    p = subprocess.Popen([sys.executable, "-m", "ocnet", "-problem", "tests.faulty:Spins", "-N", "8", "-quiet",
                          "-tao_max_it", "50"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=e)
    try:
        t0 = time.time()
        while not mark.exists() and p.poll() is None and time.time() - t0 < GUARD:
            time.sleep(0.1)
        assert mark.exists(), p.communicate()
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert p.poll() is None  # (the first only sets the flag)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=STOP_SECONDS)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + signal.SIGTERM, (p.returncode, err)
    assert "second signal (SIGTERM) while compiled code runs: ending at once" in err, err
