"""ocnet.perfmodel.model counts exactly the steps MGRIT takes (per level and rank), and its critical path
and predictions behave as a model must (no timing here: the bench validates the times)."""
import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest

from ocnet.perfmodel import model as pm
from tests.conftest import ROOT, mpiexec_prefix

SCRIPT = os.path.join(os.path.dirname(__file__), "perf_counts.py")


def measured(P, N, levels, cf, its, relax="FCF", fine_relax="-", cycle="V", fixed=True, which="state", warm=False,
             ahead=False):
    cmd = mpiexec_prefix(P) + [sys.executable, SCRIPT, str(N), str(levels), str(cf), str(its), relax, fine_relax,
                               cycle, "1" if fixed else "0", which, "1" if warm else "0", "1" if ahead else "0"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=ROOT))
    assert p.returncode == 0, p.stdout + p.stderr
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("COUNTS")][0]
    return [{int(k): v for k, v in c.items()} for c in json.loads(line.split(None, 1)[1])]


CASES = [  # P, N, levels, cf, its, relax, fine_relax, cycle, fixed, which, warm
    (1, 37, 3, 3, 2, "FCF", "-", "V", True, "state", False),
    (2, 64, 3, 4, 2, "FCF", "F", "V", True, "state", False),
    (3, 45, 3, 3, 3, "FCFCF", "-", "F", True, "state", False),
    (3, 50, 2, 4, 2, "F", "-", "V", False, "state", False),
    (2, 64, 4, 2, 1, "FCF", "-", "V", True, "adjoint", False),
    (3, 37, 3, 3, 2, "FCF", "F", "V", False, "adjoint", False),
    (2, 67, 3, 4, 2, "F", "-", "V", True, "state", True),  # one-shot's state: -mgrit_warm_skip
    (3, 64, 3, 4, 2, "FCF", "-", "F", True, "adjoint", True),
]


# each case with and without the plugin extensions ahead= and minus= (the ResNet's: look-ahead
# steps in the sweeps), and one-shot's defaults (F, cfactor 8) with them
@pytest.mark.parametrize("P,N,levels,cf,its,relax,fine_relax,cycle,fixed,which,warm,ahead",
                         [c + (a,) for c in CASES for a in (False, True)]
                         + [(2, 67, 3, 8, 2, "F", "-", "V", True, "state", True, True)])
def test_counts_match_mgrit(P, N, levels, cf, its, relax, fine_relax, cycle, fixed, which, warm, ahead):
    got = measured(P, N, levels, cf, its, relax, fine_relax, cycle, fixed, which, warm, ahead)
    s = pm.Solver(levels=levels, cfactor=(cf,), relax=relax, fine_relax="" if fine_relax == "-" else fine_relax,
                  cycle=cycle, its=its, fixed=fixed, warm_skip=warm, ahead=ahead, minus=ahead)
    c = pm.mgrit_counts(N, P, s, reverse=which == "adjoint")
    ms = [m for m, _ in pm._levels(N, s)]
    for r in range(P):
        q = P - 1 - r if which == "adjoint" else r  # the adjoint's reversed communicator
        model = {ms[l]: int(v[q]) for l, v in c.per_rank.items() if int(v[q])}
        assert model == got[r], (r, model, got[r])


def test_level_counts_small_case():
    """N = 8 on 2 ranks, cfactor 2: rank 0 owns points 0..4 (steps into 1..4; C: 2, 4), rank 1
    points 5..8 (C: 6, 8); on the coarse level (m = 2) rank 0 has points 1, 2 and rank 1 3, 4."""
    steps, c, f = pm.level_counts(8, 2, 1, 2)
    assert steps.tolist() == [4, 4] and c.tolist() == [2, 2] and f.tolist() == [2, 2]
    steps, c, f = pm.level_counts(8, 2, 2, 2)
    assert steps.tolist() == [2, 2] and c.tolist() == [1, 1]
    assert pm.serial_counts(8, 2).messages == 1


def synthetic_calibration(S=40000, S_val=1600, p=72, G=64, extensions=None):
    """A calibration dict of made-up unit costs (1 ns per double per step) for a problem of sizes
    S, S_val, p, G, shaped as ocnet.perfmodel.calibration writes it."""
    kinds = ("forward", "serial_forward", "adjoint", "gradient", "serial_adjoint", "steps")
    return {"steps": {k: [0.0, 1e-9] for k in kinds}, "calls": {k: [1e-6, 0.0] for k in kinds},
            "mpi": {"latency": 1e-6, "bandwidth": 1e10}, "copy": 1e-10,
            "overhead": {"mgrit_op": 1e-5, "evaluation": 0.0, "optimiser": [0.0, 0.0]},
            "problem": {"args": [], "spec": "x", "name": "x", "S": S, "S_val": S_val, "Sc": S, "p": p, "G": G,
                        "extensions": extensions}}


def test_critical_path_and_prediction_shape():
    cal = synthetic_calibration()
    s = pm.Solver(levels=4, cfactor=(4,), its=2)
    one, many = pm.mgrit_counts(1024, 1, s), pm.mgrit_counts(1024, 64, s)
    assert one.messages == 0 and many.messages > 0
    assert many.fine < one.fine / 30  # the fine level's work divides over the ranks
    # serial time does not fall with ranks; one-shot's does, until the coarse chain dominates
    ser = [pm.predict(cal, pm.mode_config("serial", 1024, P))["total"] for P in (1, 16)]
    osh = [pm.predict(cal, pm.mode_config("oneshot", 1024, P))["total"] for P in (1, 16, 256)]
    assert ser[1] >= ser[0] and osh[1] < osh[0] / 4
    assert np.isfinite(osh).all()


@pytest.mark.parametrize("mode", ["serial", "exact", "oneshot"])
def test_prediction_reads_sizes_from_the_calibration(mode):
    """S, S_val, p and G come from the calibration's problem: with steps costing b S, doubling S
    doubles the state and adjoint solves; no validation data, no validation solve; p sizes the
    design (the optimiser's cost, a + b n)."""
    base = synthetic_calibration()
    big = synthetic_calibration(S=80000)
    cfg = pm.mode_config(mode, 256, 2, cal=base)
    t1, t2 = pm.predict(base, cfg), pm.predict(big, cfg)
    work = lambda t: t["state"] + t["adjoint"] + t["gradient"]
    overhead = lambda c: pm.predict(dict(c, steps={k: [0.0, 0.0] for k in c["steps"]}), cfg)
    # the step part doubles; calls, operations and messages do not scale with the steps
    assert work(t2) - work(overhead(big)) == pytest.approx(2 * (work(t1) - work(overhead(base))), rel=1e-9)
    assert pm.predict(synthetic_calibration(S_val=None), cfg)["validation"] == 0.0 < t1["validation"]
    opt = lambda c, **o: pm.predict(dict(c, overhead=dict(c["overhead"], optimiser=[0.0, 1.0], **o)), cfg)["optimiser"]
    sync = 2 * base["mpi"]["latency"]  # (P = 2: the history row's broadcast and the safe point's reduction)
    assert opt(base) == pytest.approx(256 * 72 + 64 + sync, abs=1e-12)
    assert opt(synthetic_calibration(p=10, G=0)) == pytest.approx(2560 + sync, abs=1e-12)
    # ocnet's bookkeeping per iteration (calibration's overhead.iteration; older calibrations: none)
    assert opt(base, iteration=0.5) == pytest.approx(256 * 72 + 64 + sync + 0.5, abs=1e-12)
    assert pm.Config(mode, 256, 2).resolved(base).n_design == 256 * 72 + 64
    with pytest.raises(ValueError, match="calibrate --problem"):
        pm.predict({k: v for k, v in base.items() if k != "problem"}, pm.Config(mode, 256, 2))


def test_iteration_overhead_leaves_the_options_as_they_were():
    """The Trainer's bookkeeping is timed against a bare TAO on the same objective (the same
    iterations and evaluations, else RuntimeError), with ocnet's TAO settings set for it: the
    options a user gave (here -tao_type nls) are put back, those not given are removed."""
    from petsc4py import PETSc

    from ocnet.perfmodel.calibration import iteration_overhead

    db = PETSc.Options()
    db.setValue("tao_type", "nls")
    try:
        t = iteration_overhead(1, N=16, its=5)
        assert 0.0 <= t < 0.1 and db.getString("tao_type") == "nls" and not db.hasName("tao_max_it")
    finally:
        db.delValue("tao_type")


def test_python_calibrate_refuses_options_petsc_does_not_hold(tmp_path):
    """model.calibrate(out, args) in a process whose PETSc was initialised without args timed that
    process's problem (Peaks) and recorded args (tester 44): one OcnetError, nothing written."""
    from petsc4py import PETSc  # noqa: F401  (initialised here without the args, as in the tester's script)

    from ocnet.base.errors import OcnetError
    with pytest.raises(OcnetError, match=r"calibrate: PETSc was initialised with other options than args \(-"):
        pm.calibrate(str(tmp_path / "c.json"), ["-problem", "heat", "-nx", 8], steps=16, quick=True)
    assert not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("kw,text", [(dict(mode="onesht"), "mode 'onesht' (serial, exact or oneshot)"),
                                     (dict(P=0), "P 0 (an integer >= 1)"), (dict(evals=-1), "evals -1 (a number > 0)"),
                                     (dict(relax="FFC"), "relax 'FFC' (one of F, FCF, FCFCF)"),
                                     (dict(cf=1), "cf 1 (an integer >= 2)")])
def test_mode_config_refuses_what_the_solver_has_not(kw, text):
    """The Python API took a misspelt mode for exact mode, negative evaluations for negative
    times, P = 0 to a ZeroDivisionError (tester 44): one ValueError, as the command line's checks."""
    args = dict(dict(mode="oneshot", N=256, P=4), **kw)
    with pytest.raises(ValueError, match=re.escape(f"mode_config: {text}")):
        pm.mode_config(args.pop("mode"), args.pop("N"), args.pop("P"), **args)


def test_extension_flags_shape_the_counts():
    """A plugin without the batched-form extensions (ahead=, minus=, grad=: the plain contract)
    gets a model that counts the separate steps MGRIT then takes, as test_counts_match_mgrit checks."""
    plain = synthetic_calibration(extensions={"ahead": False, "minus": False, "adjoint_ahead": False,
                                              "adjoint_minus": False, "fuse": False})
    cfg = pm.mode_config("oneshot", 512, 4, cal=plain)
    assert (cfg.state.ahead, cfg.state.minus, cfg.adjoint.ahead, cfg.adjoint.fuse) == (False,) * 4
    rich = pm.mode_config("oneshot", 512, 4, cal=synthetic_calibration())
    assert (rich.state.ahead, rich.state.minus, rich.adjoint.fuse) == (True,) * 3
    # without the look-ahead, restriction and residual take C-point steps of their own
    assert pm.mgrit_counts(512, 4, cfg.state).point > pm.mgrit_counts(512, 4, rich.state).point


def perfmodel(args, cwd=ROOT, timeout=600):
    return subprocess.run([sys.executable, "-m", "ocnet.perfmodel", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))


@pytest.mark.parametrize("args,text", [
    (["calibrate", "--problem", "nosuch"], "ocnet: error: unknown problem 'nosuch'"),
    (["calibrate", "-options_file", "nope.opts"], "ocnet: error: -options_file: cannot read 'nope.opts'"),
    (["calibrate", "--problem", "heat", "-nx", "0"], "ocnet: error: option -nx"),
    (["calibrate", "--problem", "heat", "--steps", "4"], "ocnet: error: --steps 4: at least 8 layers"),
    (["predict", "--calibration", "nope.json"], "ocnet: error: "),
])
def test_bad_input_one_line(args, text, tmp_path):
    p = perfmodel(args + (["--out", str(tmp_path / "c.json")] if args[0] == "calibrate" else []), cwd=tmp_path)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith(text), p.stdout + p.stderr


def test_calibrate_reports_a_plugin_failure_as_a_run_does(tmp_path):
    """A plugin's exception during calibration: its traceback and the run's one error line with
    the plugin's file and line (it was a bare traceback), exit status 1."""
    p = perfmodel(["calibrate", "--problem", "tests.faulty:FailsOnRank", "-fail_rank", "0", "--quick", "--steps", "16",
                   "--out", str(tmp_path / "c.json")])
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 1 and last.startswith("ocnet: error: the problem plugin failed (ZeroDivisionError: "
                                                 "deliberate failure in step) at "), p.stderr
    src = open(os.path.join(ROOT, "tests", "faulty.py")).read().splitlines()
    line = next(i for i, t in enumerate(src, 1) if 'raise ZeroDivisionError("deliberate failure in step")' in t)
    assert f"faulty.py:{line}, in step" in last and not (tmp_path / "c.json").exists()


def test_calibrate_launcher(tmp_path):
    """The MPI measurements start their ranks with --launcher where given ({n}: the rank count); a
    launcher that does not start them is one line naming it, exit 2 (an internal error before),
    and a template without {n} is refused up front."""
    base = ["calibrate", "--problem", "heat", "-nx", "8", "--quick", "--steps", "16", "--out", str(tmp_path / "c.json")]
    p = perfmodel(base + ["--launcher", "false {n}"])
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet: error")]  # (and a busy machine's warning)
    assert p.returncode == 2 and lines == [
        "ocnet: error: calibrate: the 2-rank ping-pong did not run (`false 2 " + sys.executable + " -c ...` exit "
        "status 1: no output); its ranks started with --launcher 'false {n}'"], p.stderr
    p = perfmodel(base + ["--launcher", "mpiexec -n"])
    assert p.returncode == 2 and "expected {n} where the rank count goes" in p.stderr, p.stderr
    # (a traceback and an internal error before; then found only after the timings, tester 37)
    p = perfmodel(base + ["--launcher", "nosuchlauncher -n {n}", "-nxx", "3"])
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet: error")]
    assert p.returncode == 2 and "Traceback" not in p.stderr and lines == [
        "ocnet: error: --launcher 'nosuchlauncher -n {n}': no command 'nosuchlauncher' found (checked before the "
        "timings)"], p.stderr
    p = perfmodel(base + ["-nxx", "3", "--launcher", "false {n}"])  # a misspelt option: said before the timings
    assert p.stderr.index("option -nxx was given but never used (did you mean -nx?)") < p.stderr.index("ocnet: error")


def test_calibrate_any_plugin_and_predict(tmp_path):
    """``calibrate`` builds the problem from ocnet options as a run does (plugin options parsed,
    an unknown one reported), measures its own sizes (heat on 16 points: S = 16, p = 1, no
    validation data, the contract's default forms), and ``predict`` reads them back."""
    out = tmp_path / "heat.json"
    p = perfmodel(["calibrate", "--problem", "heat", "-nx", "16", "-kappa", "0.2", "-activation", "tanh", "--steps", "16",
                   "--quick", "--out", str(out)])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "option -activation was given but never used" in p.stderr
    with open(out) as f:
        cal = json.load(f)
    pr = cal["problem"]
    assert (pr["spec"], pr["name"], pr["S"], pr["S_val"], pr["p"], pr["G"]) == ("heat", "heat", 16, None, 1, 0)
    assert pr["args"] == ["-problem", "heat", "-nx", "16", "-kappa", "0.2", "-activation", "tanh"]
    # the contract's defaults: no look-ahead nor in-place FAS (the ResNet's), but grad=/rows= (fused gradient)
    assert pr["extensions"] == {"ahead": False, "minus": False, "adjoint_ahead": False, "adjoint_minus": False,
                                "fuse": True}
    for k in pm.POINT_KIND.values():
        assert k in cal["steps"]
    for k in ("forward", "serial_forward", "adjoint", "serial_adjoint", "gradient", "steps", "adjoint_cycle"):
        assert pm.step_cost(cal, k, 16) > 0, k  # a Python step costs something at any size
    assert cal["concurrency"]["factor"] >= 1.0 and cal["mpi"]["bandwidth"] > 0
    assert cal["machine"]["load_average"] >= 0 and cal["machine"]["other_processes"] >= 0  # (recorded)
    assert cal["machine"]["other_processes_during"] >= 0
    assert 0.0 <= cal["overhead"]["iteration"] < 0.1  # (ocnet's bookkeeping per iteration, seconds)
    p = perfmodel(["predict", "--calibration", str(out), "--Ns", "64", "--Ps", "2,4"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "S = 16, S_val = None, p = 1" in p.stdout and "| 64 |" in p.stdout


def test_validation_script_table_for_any_problem(tmp_path):
    """runs/validate_perfmodel.py calibrates each case for its own problem, runs it, and prints one
    table row per (case, ranks, mode) with the model beside the measurement; a case whose options the
    problem does not read is skipped and named as such (no timing asserted: the numbers are the bench's);
    a run that stops at its starting point is a 'failed' row, named below the table (it ended the
    script with a ZeroDivisionError and no table, tester 39)."""
    script = os.path.join(ROOT, "runs", "validate_perfmodel.py")
    (tmp_path / "stops.opts").write_text("-problem heat\n-nx 8\n-tao_gatol 1e9\n")  # (outside the checkout)
    p = subprocess.run([sys.executable, script, "--case", "heat=-problem heat -nx 8", "--case",
                        "notheat=-problem heat -nx 8 -block double", "--case", "stops=-options_file stops.opts",
                        "--N", "16", "--its", "2", "--repeat", "1",
                        "--ranks", "1", "--modes", "serial,oneshot", "--quick", "--out", "res"],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[notheat] skipped: ocnet: warning: option -block was given but never used" in p.stdout
    with open(tmp_path / "res" / "table.md") as f:
        table = f.read()
    rows = [ln.split(" | ") for ln in table.splitlines() if ln.startswith("| heat |")]
    assert [(r[1], r[2]) for r in rows] == [("1", "serial"), ("1", "oneshot")], table
    assert all(float(r[8]) > 0 for r in rows)  # the model's prediction (ms) beside the measurement
    assert "notheat = `-problem heat -nx 8 -block double` (skipped: ocnet: warning: option -block was given but " \
        "never used" in table, table
    # the table says how to run it again: the command and its folder; a case's file outside the
    # checkout by its absolute path (it was shown relative to the checkout: tester 46)
    assert f"stops = `-options_file {tmp_path / 'stops.opts'}`" in table, table
    assert f"command (from {tmp_path}): `" in table and " --case 'stops=-options_file stops.opts' " in table, table
    assert [ln.split(" | ")[1:4] for ln in table.splitlines() if ln.startswith("| stops |")] == [
        ["1", "serial", "failed"], ["1", "oneshot", "failed"]], table
    assert ("failed (not in the errors below): stops serial 1 ranks: stopped at iteration 0 (CONVERGED_GATOL): "
            "nothing timed; stops oneshot 1 ranks: stopped") in table, table
    with open(tmp_path / "res" / "heat" / "calibration.json") as f:
        assert json.load(f)["problem"]["S"] == 8


@pytest.mark.parametrize("args", [["--Ps", "0"], ["--Ns", "0"], ["--state_its", "0"], ["--Ps", "2,x"],
                                  ["--evals", "0.5"], ["--fine_relax", "fcf"], ["--relax", "C"], ["--cfactor", "1"]])
def test_predict_bad_numbers_are_one_line(args, capsys, tmp_path):
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(dict(synthetic_calibration(), machine={"when": "test"})))
    assert pm.main(["predict", "--calibration", str(cal), "--Ns", "256", "--Ps", "2"]) == 0  # the file is usable
    capsys.readouterr()
    assert pm.main(["predict", "--calibration", str(cal)] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ocnet: error: --"), err
    assert ("expected one of F, FCF, FCFCF" in err[0]) if "relax" in args[0] else \
        ("at least 2" in err[0]) if args[0] == "--cfactor" else ("--Ps" in err[0]), err


def test_predict_evals_per_iteration(capsys, tmp_path):
    """--evals scales the predicted iteration (the layer-serial line says how many it assumes)."""
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(dict(synthetic_calibration(), machine={"when": "test"})))
    times = []
    for evals in ("1", "2"):
        assert pm.main(["predict", "--calibration", str(cal), "--Ns", "256", "--Ps", "2", "--evals", evals]) == 0
        line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("time per iteration"))
        assert f"of {evals} evaluation(s)" in line, line
        times.append(float(line.split("N = 256: ")[1].split()[0]))
    assert times[1] > 1.5 * times[0], times



def test_predict_fractional_iteration_counts(capsys, tmp_path):
    """--state_its/--adjoint_its take averages (adaptive one-shot's state_its / evaluations, e.g.
    4.53: a tester's was refused as 'invalid int value'); the model puts them between the whole
    counts' predictions."""
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(dict(synthetic_calibration(), machine={"when": "test"})))
    assert pm.main(["predict", "--calibration", str(cal), "--Ns", "256", "--Ps", "2", "--mode", "exact",
                    "--state_its", "4.53", "--adjoint_its", "2.5"]) == 0
    assert "(4.53+2.5 MGRIT its" in capsys.readouterr().out
    c = pm.load(str(cal))
    t = {k: pm.predict(c, pm.mode_config("exact", 256, 2, exact_its=(k, k, k), cal=c))["total"] for k in (4, 4.5, 5)}
    assert t[4] < t[4.5] < t[5], t
    # one-shot mode too (the docs ask for adaptive one-shot's averages there; it raised ValueError:
    # state_its 2.0 (an integer >= 1), even for --state_its 2)
    assert pm.main(["predict", "--calibration", str(cal), "--Ns", "256", "--Ps", "2", "--state_its", "2.4",
                    "--adjoint_its", "1.3"]) == 0
    assert "(2.4+1.3 MGRIT its" in capsys.readouterr().out
    t = {k: pm.predict(c, pm.mode_config("oneshot", 256, 2, state_its=k, adjoint_its=1, cal=c))["total"]
         for k in (2, 2.5, 3)}
    assert t[2] < t[2.5] < t[3], t


def test_predict_interconnect_and_phases(capsys, tmp_path):
    """--latency/--bandwidth replace the calibration's ping-pong (a cluster's interconnect; the
    header says so) and change the multi-rank prediction; the phase lines say where the time goes."""
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(dict(synthetic_calibration(), machine={"when": "test"})))
    args = ["predict", "--calibration", str(cal), "--Ns", "256", "--Ps", "64"]
    lines = {}
    for extra in ([], ["--latency", "1e-3", "--bandwidth", "1e6"]):
        assert pm.main(args + extra) == 0
        out = capsys.readouterr().out
        assert ("(given)" in out) == bool(extra), out
        lines[bool(extra)] = next(ln for ln in out.splitlines() if ln.startswith("  N = 256: total"))
        assert all(k in lines[bool(extra)] for k in ("state", "adjoint", "validation", "optimiser")), out
    slow = lambda ln: float(ln.split("total ")[1].split(";")[0])  # noqa: E731
    assert slow(lines[True]) > slow(lines[False]), lines
    assert pm.main(args + ["--latency", "-1"]) == 2
    assert "--latency -1.0: a positive number" in capsys.readouterr().err

def test_busy_machine_is_warned_of():
    import subprocess
    import sys
    from ocnet.perfmodel.calibration import busy_warning, other_runnable
    assert busy_warning(0, 2) is None and busy_warning(None, 2) is None
    assert busy_warning(2, 2).startswith("ocnet: warning: 2 other processes running on 2 CPUs before calibrating")
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:  # two busy loops are seen (at least one of them at any moment, on a loaded machine too)
        assert other_runnable() >= 1
    finally:
        for p in spin:
            p.kill()


def test_predict_exact_mode_and_mgrit_settings(capsys, tmp_path):
    """--mode exact, --cfactor and --relax reach the model: the speed-up table is mode_config's
    prediction with those settings (a tester's adaptive runs used other counts and settings than
    one-shot's 2 + 1 with F and factor 8)."""
    cal = tmp_path / "cal.json"
    c = dict(synthetic_calibration(), machine={"when": "test"})
    cal.write_text(json.dumps(c))
    args = ["predict", "--calibration", str(cal), "--Ns", "256", "--Ps", "4"]
    assert pm.main(args + ["--mode", "exact", "--state_its", "6", "--adjoint_its", "5", "--cfactor", "2",
                           "--relax", "FCFCF"]) == 0
    out = capsys.readouterr().out
    assert "speed-up of exact mode (6+5 MGRIT its, FCFCF relaxation, cfactor 2)" in out, out
    ts = pm.predict(c, pm.mode_config("serial", 256, 1, cal=c))["total"]
    te = pm.predict(c, pm.mode_config("exact", 256, 4, cal=c, exact_its=(6, 5, 6), relax="FCFCF", cf=2))["total"]
    v = ts / te
    assert f"| 256 | {v:.1f}x |" in out if v >= 0.1 else f"| 256 | {v:.2g}x |" in out, out
