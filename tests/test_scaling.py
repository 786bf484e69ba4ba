"""runs/scaling.py for an out-of-tree plugin: relative --options and --pythonpath from another
folder run the study (the runs' warnings passed on once); --dry-run stops with one line (exit 2)
for an unreadable options file or a problem that does not import."""
import csv
import os
import subprocess
import sys

from tests.conftest import ROOT
from tests.test_slurm import PLUGIN

SCRIPT = os.path.join(ROOT, "runs", "scaling.py")


def scaling(args, cwd, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


def plugin_folder(tmp_path):
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "tinyplug.py").write_text(PLUGIN)
    (tmp_path / "tiny.opts").write_text("# an out-of-tree plugin\n-problem tinyplug:Tiny\n-T 1\n")


def test_out_of_tree_plugin_from_another_folder(tmp_path):
    plugin_folder(tmp_path)
    with open(tmp_path / "tiny.opts", "a") as f:
        f.write("-dampng 3\n")  # a typo: the runs' warning is passed on, once
    # --extra goes to every run: the serial baseline's notes that MGRIT options do nothing there are
    # not shown (the option acts in another mode of the study), one that acts in no mode is
    p = scaling(["--options", "tiny.opts", "--pythonpath", "plug", "--ranks", "1,2", "--modes", "serial,oneshot",
                 "--N", "16", "--its", "2", "--repeat", "1", "--launcher", "mpiexec", "--out", "res",
                 "--extra", "-mgrit_cfactor 2 -mgrit_rtol 1e-8 -mgrit_cfactr 2"], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr.count("ocnet: warning: option -dampng was given but never used") == 1, p.stderr
    # a typo with a close match: the runs say it at iteration 0 and at the end, in two wordings: once
    assert p.stderr.count("-mgrit_cfactr") == 1 and "did you mean -mgrit_cfactor?" in p.stderr, p.stderr
    assert "has no effect in -mode" not in p.stderr, p.stderr
    assert p.stderr.count("scaling.py: warning: -mgrit_rtol has no effect in any mode of this study "
                          "(oneshot, serial)") == 1, p.stderr
    with open(tmp_path / "res" / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["mode"], r["ranks"]) for r in rows] == [("serial", "1"), ("serial", "2"), ("oneshot", "1"),
                                                       ("oneshot", "2")], rows
    assert all(float(r["time_per_it_min"]) > 0 for r in rows)
    assert [r["iterations"] for r in rows] == ["2"] * 4 and all(r["reason"] for r in rows), rows
    # the runs' folders are the caller's, and they ran the plugin
    with open(tmp_path / "res" / "oneshot_N16_p2_r0" / "params.json") as f:
        assert "tinyplug:Tiny" in f.read()


def test_dry_run_missing_options_file(tmp_path):
    p = scaling(["--options", "nope.opts", "--dry-run"], tmp_path)
    assert p.returncode == 2 and p.stdout == "", p.stdout + p.stderr
    assert p.stderr.strip() == f"scaling.py: error: --options: cannot read '{tmp_path / 'nope.opts'}'"


def test_dry_run_unimportable_problem(tmp_path):
    plugin_folder(tmp_path)
    p = scaling(["--options", "tiny.opts", "--dry-run"], tmp_path)  # no --pythonpath: not importable
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and p.stdout == "" and len(lines) == 1, p.stdout + p.stderr
    assert lines[0].startswith("scaling.py: error: cannot load problem 'tinyplug:Tiny'") and "tinyplug" in lines[0]
    # ocnet's advice to run from the plugin's folder does not apply to the harness (tester, 2026-12-07)
    assert lines[0].endswith("the runs start in the ocnet checkout: give the plugin's folder with --pythonpath)") \
        and "from that folder" not in lines[0], lines
    p = scaling(["--options", "tiny.opts", "--dry-run", "--extra", "-problem nosuch"], tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and "unknown problem 'nosuch'" in lines[0], p.stderr
    # found but not a ControlProblem: no hint about --pythonpath (the folder is not what is wrong)
    p = scaling(["--options", "tiny.opts", "--dry-run", "--extra", "-problem json:JSONDecoder"], tmp_path)
    assert p.returncode == 2 and p.stderr.strip() == ("scaling.py: error: problem 'json:JSONDecoder' is not an "
                                                      "ocnet.plugin.problem.ControlProblem subclass"), p.stderr
    # with the folder it passes, and prints the commands only
    p = scaling(["--options", "tiny.opts", "--pythonpath", "plug", "--dry-run", "--ranks", "1", "--repeat", "1",
                 "--launcher", "mpiexec"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"export PYTHONPATH={tmp_path / 'plug'}" in p.stdout
    assert not (tmp_path / "runs").exists() and not os.path.exists(tmp_path / "res")


def test_dry_run_bad_numbers(tmp_path):
    """--ranks 1,x was a ValueError traceback; --ranks 0,2 and --N 0 passed --dry-run."""
    for args, text in ((["--ranks", "1,x"], "--ranks: expected comma-separated integers, got '1,x'"),
                       (["--ranks", "0,2"], "must be at least 1 (got --ranks 0,2"),
                       (["--N", "0"], "must be at least 1 (got --ranks 1,2 --N 0")):
        p = scaling(args + ["--dry-run"], tmp_path)
        assert p.returncode == 2 and p.stdout == "" and p.stderr.startswith("scaling.py: error: "), p.stderr
        assert text in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_failed_point_left_out_and_ranks_checked(tmp_path):
    """A point whose run fails (a plugin failing on 2 ranks only) is reported and left out: the
    other points are measured and written, with machine and date, and the exit status is 1 (one
    failed point lost the whole study); more ranks than layers is one line before anything runs."""
    (tmp_path / "f.opts").write_text("-problem tests.faulty:FailsOnRank\n-fail_rank 1\n")
    # a process spinning beside the study: recorded per point (others_running) and warned of
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        p = scaling(["--options", "f.opts", "--pythonpath", ROOT, "--ranks", "1,2", "--N", "8", "--its", "2",
                     "--repeat", "1", "--launcher", "mpiexec", "--out", "res"], tmp_path)
    finally:
        spin.kill()
        spin.wait()
    assert p.returncode == 1 and "scaling.py: 1 point(s) failed, left out of the table and plots (--resume runs " \
        "them again):\n  oneshot N 8 " \
        "ranks 2: exit status 1: ocnet: error: the problem plugin failed (ZeroDivisionError" in p.stderr, p.stderr
    with open(tmp_path / "res" / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["mode"], r["ranks"]) for r in rows] == [("oneshot", "1")] and rows[0]["machine"] and rows[0]["date"]
    assert int(rows[0]["others_running"]) >= 1 and "scaling.py: warning: other processes were running before the " \
        "fastest repeat of 1 of the 1 points (column others_running)" in p.stderr, (rows, p.stderr)
    p = scaling(["--ranks", "1,3", "--N", "2", "--dry-run"], tmp_path)
    assert p.returncode == 2 and p.stderr.strip() == \
        "scaling.py: error: --ranks 3 with N 2: more ranks than layers (each rank needs at least one layer)", p.stderr


def test_mode_options_in_extra_refused_and_early_stops_warned(tmp_path):
    """-mode in --extra relabelled every run (a 'serial' row that ran exact mode; tester,
    2026-12-07): refused, as are the other options the harness sets; a run that stops before --its
    (the tiny problem converges at iteration 2) was averaged silently: a warning, and the csv's
    iterations and reason columns say it; one that stops at iteration 0 is a failed point."""
    plugin_folder(tmp_path)
    for extra, by in (("-mode exact", "--modes (serial, oneshot: fixed counts, oneshot_adaptive, exact)"),
                      ("-oneshot_adapt 0", "--modes (serial, oneshot: fixed counts, oneshot_adaptive, exact)"),
                      ("-tao_max_it 9", "--its")):
        p = scaling(["--options", "tiny.opts", "--pythonpath", "plug", "--dry-run", "--extra", extra], tmp_path)
        assert p.returncode == 2 and p.stderr.strip() == (f"scaling.py: error: --extra: {extra.split()[0]} is set by "
                                                          f"{by} for each run; leave it out"), p.stderr
    study = ["--options", "tiny.opts", "--pythonpath", "plug", "--ranks", "1", "--modes", "serial", "--N", "8",
             "--its", "5", "--repeat", "1", "--launcher", "mpiexec", "--out", "res"]
    p = scaling(study, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "scaling.py: warning: serial N 8 ranks 1 stopped after 2 of 5 iterations (CONVERGED_GATOL); its time " \
           "per iteration is over those" in p.stderr, p.stderr
    with open(tmp_path / "res" / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["iterations"], r["reason"]) for r in rows] == [("2", "CONVERGED_GATOL")], rows
    p = scaling(study + ["--extra", "-tao_gatol 1e3"], tmp_path)
    assert p.returncode == 1 and "serial N 8 ranks 1: stopped at iteration 0 (CONVERGED_GATOL): nothing timed" \
        in p.stderr, p.stderr


def test_failed_run_advice_in_the_harness_words(tmp_path):
    """A failed run's advice names what the harness's user can give: the fixed one-shot's
    'adaptive one-shot (-oneshot_adapt 1)' said an option that --extra refuses (tester,
    2026-12-07): it says --modes oneshot_adaptive."""
    (tmp_path / "s.opts").write_text("-problem tests.faulty:Stiff\n-T 64\n-mgrit_levels 6\n-stiffness 1.9\n"
                                     "-mgrit_cfactor 2\n-nan_above 100\n-mgrit_relax F\n")
    p = scaling(["--options", "s.opts", "--pythonpath", ROOT, "--ranks", "1", "--N", "64", "--its", "6",
                 "--repeat", "1", "--modes", "oneshot", "--launcher", "mpiexec", "--out", "res"], tmp_path)
    assert p.returncode == 1 and "the MGRIT iteration diverged, not the model" in p.stderr, p.stderr
    assert "the adaptive one-shot default (--modes oneshot_adaptive) falls back to exact solves" in p.stderr, p.stderr
    assert "-oneshot_adapt" not in p.stderr, p.stderr


def test_inputs_checked_at_the_studys_N(tmp_path):
    """The up-front dry run used the options file's N (default 32), not --N: a limit of the study's
    own N went unseen, and one of N 32 was refused (tester, 2026-12-07).  Every N of the study is
    checked: N 4 is too short for a one-shot coarse level, said before the study."""
    plugin_folder(tmp_path)
    p = scaling(["--options", "tiny.opts", "--pythonpath", "plug", "--dry-run", "--N", "4", "--ranks", "1",
                 "--modes", "oneshot"], tmp_path)
    assert p.returncode == 0 and "ocnet: warning: -mode oneshot: N=4 is too short for a coarse level" in p.stderr, \
        p.stdout + p.stderr
    p = scaling(["--options", "tiny.opts", "--pythonpath", "plug", "--dry-run", "--N", "64", "--ranks", "1",
                 "--modes", "oneshot"], tmp_path)
    assert p.returncode == 0 and "too short" not in p.stderr, p.stdout + p.stderr


def _running_with(text):
    """PIDs of live processes whose command line contains ``text``."""
    pids = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    with open(f"/proc/{d}/stat") as g:
                        if g.read().rsplit(")", 1)[1].split()[0] != "Z":
                            pids.append(int(d))
        except (OSError, ValueError):
            continue
    return pids


def test_signal_keeps_the_points_measured(tmp_path):
    """SIGTERM to the study (a job's wall-time limit) while its second point runs: the first
    point's row is in scaling.csv, with the plots, the run in progress is ended (it went on as an
    orphan, and the table was lost: tester 46), exit status 143."""
    import signal
    import time
    plugin_folder(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OCNET_TEST_ROW_SLEEP="0.05")  # (3 s a run)
    p = subprocess.Popen([sys.executable, SCRIPT, "--options", "tiny.opts", "--pythonpath", "plug", "--ranks", "1,2",
                          "--modes", "serial", "--N", "16", "--its", "60", "--repeat", "1", "--launcher", "mpiexec",
                          "--out", "res"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    second = tmp_path / "res" / "serial_N16_p2_r0"
    start = time.time()
    while not (second / "options.txt").exists() and p.poll() is None and time.time() - start < 300:
        time.sleep(0.1)
    assert p.poll() is None and (tmp_path / "res" / "scaling.csv").exists(), p.communicate()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, out + err
    assert "scaling.py: stopped by SIGTERM (a run in progress was ended); the 1 point(s) measured are in " \
        f"{tmp_path / 'res'}/scaling.csv and the plots; the same command with --resume runs the rest" in err, err
    with open(tmp_path / "res" / "scaling.csv") as f:
        assert [(r["mode"], r["ranks"]) for r in csv.DictReader(f)] == [("serial", "1")]
    assert (tmp_path / "res" / "time.png").exists() and "Traceback" not in err, err
    assert _running_with(str(second)) == [], "a rank of the ended run is still running"
    with open(tmp_path / "res" / "scaling.csv") as f:
        first = next(csv.DictReader(f))
    # the same command with --resume: the measured point is kept (not run again), the ended one runs
    base = ["--options", "tiny.opts", "--pythonpath", "plug", "--ranks", "1,2", "--modes", "serial", "--N", "16",
            "--its", "60", "--repeat", "1", "--launcher", "mpiexec", "--out", "res"]
    r = scaling(base + ["--resume"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resuming" in r.stdout and "1 baseline(s) and 1 point(s) kept, 1 point(s) to run" in r.stdout, r.stdout
    assert "serial_N16_p1_r0" not in r.stdout and "serial_N16_p2_r0" in r.stdout, r.stdout
    with open(tmp_path / "res" / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(x["mode"], x["ranks"]) for x in rows] == [("serial", "1"), ("serial", "2")] and rows[0] == first, rows
    # fewer ranks asked for on resume: nothing runs, and the points measured stay (they were dropped)
    r = scaling([x if x != "1,2" else "1" for x in base] + ["--resume"], tmp_path)
    assert r.returncode == 0 and "2 point(s) kept (1 of them outside --ranks/--modes, kept in the table), 0 " \
        "point(s) to run" in r.stdout, r.stdout + r.stderr
    with open(tmp_path / "res" / "scaling.csv") as f:
        assert list(csv.DictReader(f)) == rows
    # another study in the folder is refused (its times would not compare), one line; none at all too
    r = scaling([x if x != "60" else "30" for x in base] + ["--resume"], tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"scaling.py: error: --resume: {tmp_path / 'res'} holds another study: --its 60 then, 30 now (its times "
        "would not compare; give another --out)"], r.stderr
    r = scaling(base[:-1] + ["other", "--resume"], tmp_path)
    assert r.returncode == 2 and "--resume: no study in" in r.stderr, r.stderr
