"""Adaptive one-shot (ocnet/optim/adaptive.py): rank-count free decisions, the exact fallback when
MGRIT does not contract, the line-search safeguard, fixed counts on request, bad input."""
import json

import numpy as np

from tests.conftest import assert_histories_agree, history_column, read_history, run_ocnet

# (-oneshot_exact_start 0: the tests of the controller's own decisions start one-shot at once;
# test_exact_start covers the exact start)
BASE = ["-N", 32, "-width", 4, "-ntrain", 200, "-nval", 50, "-quiet", "-mode", "oneshot", "-oneshot_exact_start", 0]
PEAKS = ["-N", 32, "-quiet", "-mode", "oneshot", "-oneshot_exact_start", 0]  # the problem's defaults


def test_adaptive_rank_count_free(tmp_path):
    """T = 6: MGRIT converges slowly, so the counts move and an evaluation falls back to exact:
    all of it the same on 1, 2 and 3 ranks."""
    args = BASE + ["-T", 6, "-tao_max_it", 16]
    err = {p: run_ocnet(args + ["-run_dir", tmp_path / f"p{p}"], nprocs=p).stderr for p in (1, 2, 3)}
    its = history_column(tmp_path / "p1", "state_mgrit_its")
    assert len(set(its)) > 2, its  # the counts did change
    fallbacks = history_column(tmp_path / "p1", "exact_evaluations").sum()
    assert fallbacks >= 1  # and fell back
    # the notes count what the summary and the history count (the warm-up evaluation is not the run's)
    total = json.loads((tmp_path / "p1" / "summary.json").read_text())["adaptive_oneshot"]["exact_evaluations"]
    notes = [ln for ln in err[1].splitlines() if "one-shot evaluation was replaced by an exact" in ln]
    assert total == fallbacks and len(notes) == min(total, 3) and notes[-1].endswith(f"({len(notes)} so far)"), \
        (total, err[1])
    assert_histories_agree(tmp_path / "p1", [tmp_path / "p2", tmp_path / "p3"],
                           equal=("state_mgrit_its", "adjoint_mgrit_its", "state_mgrit_its_total",
                                  "adjoint_mgrit_its_total", "exact_evaluations", "oneshot_level"),
                           close=("objective", "gradient_norm", "val_accuracy", "gradient_error_estimate"))


def test_rho_above_one_falls_back_to_exact(tmp_path):
    """T = 30: the state MGRIT diverges (rho >= 1); such evaluations are layer-serial, and the
    first one is the serial mode's evaluation at the same initial design (bitwise)."""
    args = ["-N", 32, "-T", 30, "-tao_max_it", 3, "-quiet"]
    p = run_ocnet(args + ["-mode", "oneshot", "-run_dir", tmp_path / "a"])
    assert "replaced by an exact (layer-serial) one: state MGRIT rho" in p.stderr, p.stderr
    run_ocnet(args + ["-run_dir", tmp_path / "s"])
    exact = history_column(tmp_path / "a", "exact_evaluations")
    assert exact.sum() >= 1
    # iteration 0: the warm-up evaluation fell back to exact, TAO's first is warm-started from it
    np.testing.assert_allclose(history_column(tmp_path / "a")[0], history_column(tmp_path / "s")[0], rtol=1e-10)
    totals = json.loads((tmp_path / "a" / "summary.json").read_text())["adaptive_oneshot"]
    assert totals["exact_evaluations"] >= 1 and totals["state_its"] > 0


def test_nonfinite_oneshot_evaluation_falls_back_to_exact(tmp_path):
    """A step that returns NaN above a state bound (a solver inside the step failing): MGRIT's
    unstable coarse steps reach it, the layer-serial solve does not.  Adaptive one-shot evaluates
    such evaluations exactly and trains on (it stopped with "non-finite objective"), as serial
    mode does, and the same on 2 ranks."""
    args = ["-problem", "tests.faulty:Stiff", "-T", 64, "-N", 64, "-mgrit_levels", 6, "-stiffness", 1.9,
            "-mgrit_cfactor", 2, "-nan_above", 100, "-tao_max_it", 6, "-quiet"]
    p = run_ocnet(args + ["-mode", "oneshot", "-run_dir", tmp_path / "a"])
    assert "exact (layer-serial) one: it went non-finite (J = nan)" in p.stderr, p.stderr
    run_ocnet(args + ["-mode", "serial", "-run_dir", tmp_path / "s"])
    # (every evaluation here goes non-finite in MGRIT, so the run is the serial one)
    np.testing.assert_allclose(history_column(tmp_path / "a"), history_column(tmp_path / "s"), rtol=1e-10)
    run_ocnet(args + ["-mode", "oneshot", "-run_dir", tmp_path / "a2"], nprocs=2)
    assert_histories_agree(tmp_path / "a", [tmp_path / "a2"], equal=("exact_evaluations",),
                           close=("objective", "gradient_norm"))


def test_safeguard_recovers_from_line_search_failure(tmp_path):
    """T = 6: fixed one-shot stops on a line-search failure.  The adaptive run held to the same
    counts (maximum 2 + 1, the estimate scaled so that it never falls back) is that run up to the
    failure; then the safeguard re-evaluates at the last accepted point, restarts lmvm with a
    fresh memory and goes on, its iterations numbered on; the same on 2 ranks."""
    args = PEAKS + ["-T", 6, "-tao_max_it", 20]
    run_ocnet(args + ["-oneshot_adapt", 0, "-run_dir", tmp_path / "f"])
    fixed = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert fixed["reason"] == "DIVERGED_LS_FAILURE" and fixed["iterations"] < 20
    held = ["-oneshot_state_its_max", 2, "-oneshot_adjoint_its_max", 1, "-oneshot_error_scale", 1e-6]
    p = run_ocnet(args + held + ["-run_dir", tmp_path / "a"])
    assert f"line search failed at iteration {fixed['iterations']}" in p.stderr, p.stderr
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["reason"] == "DIVERGED_MAXITS" and summary["iterations"] == 20
    assert summary["adaptive_oneshot"]["tightenings"] >= 1
    h = read_history(tmp_path / "a")
    assert [int(r["iteration"]) for r in h] == list(range(21))
    n = fixed["iterations"]
    np.testing.assert_array_equal(history_column(tmp_path / "a")[: n + 1], history_column(tmp_path / "f"))
    assert history_column(tmp_path / "a")[-1] < history_column(tmp_path / "f")[-1]
    assert max(int(r["oneshot_level"]) for r in h) >= 1
    run_ocnet(args + held + ["-run_dir", tmp_path / "a2"], nprocs=2)
    np.testing.assert_allclose(history_column(tmp_path / "a2"), history_column(tmp_path / "a"), rtol=1e-10, atol=0)


def test_oneshot_tao_safeguard_escalates_to_exact(tmp_path):
    """The one-shot TAO with a one-trial line search: failures tighten to the maximum counts,
    then to exact; only the exact evaluation's failure stops the run."""
    p = run_ocnet(PEAKS + ["-oneshot_tao", "-tao_oneshot_ls_max_it", 1, "-tao_max_it", 30, "-run_dir", tmp_path / "a"])
    assert p.stderr.count("line search failed at iteration") == 2, p.stderr
    assert "with max one-shot solves" in p.stderr and "with exact one-shot solves" in p.stderr
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert s["reason"] == "DIVERGED_LS_FAILURE" and s["adaptive_oneshot"]["level"] == "exact"


def test_fixed_counts_when_given(tmp_path):
    """-oneshot_state_its given: the fixed counts (no adaptive columns), as -oneshot_adapt 0."""
    args = BASE + ["-tao_max_it", 3]
    run_ocnet(args + ["-oneshot_state_its", 2, "-run_dir", tmp_path / "g"])
    run_ocnet(args + ["-oneshot_adapt", 0, "-run_dir", tmp_path / "z"])
    assert "gradient_error_estimate" not in read_history(tmp_path / "g")[0]
    np.testing.assert_array_equal(history_column(tmp_path / "g"), history_column(tmp_path / "z"))
    assert set(history_column(tmp_path / "g", "state_mgrit_its")) == {2}
    p = run_ocnet(args + ["-oneshot_adapt", 0, "-oneshot_kappa", 0.1])
    assert "-oneshot_kappa has no effect with fixed one-shot counts" in p.stderr
    # an explicit exact start of 0 is what fixed counts and serial mode do anyway: no warning
    for off in (["-oneshot_adapt", 0], ["-mode", "serial"]):
        p = run_ocnet(args + off + ["-oneshot_exact_start", 0])
        assert "exact_start" not in p.stderr, p.stderr
    p = run_ocnet(args + ["-oneshot_adapt", 0, "-oneshot_exact_start", 0.1])
    assert "-oneshot_exact_start has no effect with fixed one-shot counts" in p.stderr
    # adaptive counts starting outside their bounds start at the bound, and say so
    p = run_ocnet(args + ["-oneshot_adapt", 1, "-oneshot_state_its", 1, "-run_dir", tmp_path / "b"])
    assert "-oneshot_state_its 1 is outside [-oneshot_state_its_min 2, -oneshot_state_its_max 8]: the adaptive " \
        "state count starts at 2" in p.stderr, p.stderr
    assert history_column(tmp_path / "b", "state_mgrit_its")[1] >= 2


def test_adjoint_refresh(tmp_path):
    """-oneshot_adjoint_refresh 2: every second gradient evaluation runs at least 2 adjoint
    iterations (more in total than with 0, off), the same on 1 and 2 ranks."""
    args = BASE + ["-tao_max_it", 8]
    run_ocnet(args + ["-oneshot_adjoint_refresh", 0, "-run_dir", tmp_path / "d"])
    for p in (1, 2):
        run_ocnet(args + ["-oneshot_adjoint_refresh", 2, "-run_dir", tmp_path / f"r{p}"], nprocs=p)
    tot = {k: json.loads((tmp_path / k / "summary.json").read_text())["adaptive_oneshot"] for k in ("d", "r1")}
    assert tot["r1"]["adjoint_its"] > tot["d"]["adjoint_its"], tot
    assert_histories_agree(tmp_path / "r1", [tmp_path / "r2"],
                           equal=("adjoint_mgrit_its_total", "state_mgrit_its_total", "exact_evaluations"),
                           close=("objective",))


def test_calibration(tmp_path):
    """-oneshot_calibrate 3: every third one-shot gradient evaluation also computes the exact
    gradient; the error scale only grows from the option's value (here the estimate is low: it
    grows), the summary says so, the decisions follow it (more MGRIT iterations than without) and
    are the same on 1, 2 and 3 ranks; off (-oneshot_calibrate 0), the summary has no such keys."""
    args = ["-N", 32, "-quiet", "-mode", "oneshot", "-activation", "tanh", "-tao_max_it", 40]  # (exact start: 8)
    run_ocnet(args + ["-oneshot_calibrate", 0, "-run_dir", tmp_path / "off"])
    for p in (1, 2, 3):
        run_ocnet(args + ["-oneshot_calibrate", 3, "-run_dir", tmp_path / f"c{p}"], nprocs=p)
    tot = {k: json.loads((tmp_path / k / "summary.json").read_text())["adaptive_oneshot"] for k in ("off", "c1")}
    assert "error_scale" not in tot["off"] and "calibrations" not in tot["off"], tot
    one_shot = tot["c1"]["gradient_evaluations"] - tot["c1"]["exact_evaluations"]  # (no fallbacks after the start)
    assert tot["c1"]["exact_evaluations"] == tot["c1"]["exact_start_evaluations"] == 8, tot
    assert tot["c1"]["calibrations"] == one_shot // 3 > 0, tot
    assert tot["c1"]["error_scale"] > 1000.0, tot
    assert tot["c1"]["state_its"] + tot["c1"]["adjoint_its"] > tot["off"]["state_its"] + tot["off"]["adjoint_its"]
    assert_histories_agree(tmp_path / "c1", [tmp_path / "c2", tmp_path / "c3"],
                           equal=("state_mgrit_its", "adjoint_mgrit_its", "state_mgrit_its_total",
                                  "adjoint_mgrit_its_total", "exact_evaluations", "oneshot_level"),
                           close=("objective", "gradient_norm", "val_accuracy", "gradient_error_estimate"))
    # a scale the measurements never exceed stays: then the run is bitwise the run without the
    # calibration (the exact gradient touches nothing the one-shot solves use; tester 48's history
    # parted at row 67 while MGRIT's hierarchy was rebuilt after each calibration)
    # (the trajectories' C-points restored only, with plain MGRIT solves, on 1 and 2 ranks; with
    # -mgrit_warm_skip, whose first cycle reads every row of its warm start, all rows and caches)
    big = args + ["-oneshot_error_scale", 1e6]
    for p, extra in ((1, []), (2, []), (1, ["-mgrit_warm_skip", 1])):
        b0, b3 = tmp_path / f"b0_{p}{len(extra)}", tmp_path / f"b3_{p}{len(extra)}"
        run_ocnet(big + extra + ["-oneshot_calibrate", 0, "-run_dir", b0], nprocs=p)
        run_ocnet(big + extra + ["-oneshot_calibrate", 3, "-run_dir", b3], nprocs=p)
        assert json.loads((b3 / "summary.json").read_text())["adaptive_oneshot"]["error_scale"] == 1e6
        rows = {k: read_history(k) for k in (b0, b3)}
        assert [{c: v for c, v in r.items() if c != "wall_time"} for r in rows[b0]] == \
            [{c: v for c, v in r.items() if c != "wall_time"} for r in rows[b3]], (p, extra)


def test_exact_start(tmp_path):
    """-oneshot_exact_start 0.25 of 12 iterations: the first 3 gradient evaluations are exact
    (layer-serial), so the history is serial mode's bitwise until then; one-shot afterwards; the
    same on 2 and 3 ranks; the summary counts them."""
    args = ["-N", 32, "-width", 4, "-ntrain", 200, "-nval", 50, "-quiet", "-tao_max_it", 12]
    run_ocnet(args + ["-run_dir", tmp_path / "s"])
    out = {p: run_ocnet(args + ["-mode", "oneshot", "-oneshot_exact_start", 0.25, "-run_dir", tmp_path / f"e{p}"],
                        nprocs=p).stderr for p in (1, 2, 3)}
    for p in (1, 2, 3):  # said once, by rank 0
        assert out[p].count("ocnet: note: the exact start ends with this evaluation (3 exact gradient") == 1, out[p]
    ser, ex = history_column(tmp_path / "s"), history_column(tmp_path / "e1")
    n = int(np.argmax(ser != ex))  # the first row that differs
    assert n >= 3 and n < len(ser), (ser, ex)
    np.testing.assert_array_equal(ex[:n], ser[:n])
    assert history_column(tmp_path / "e1", "exact_evaluations")[:n].min() >= 1  # (exact: 0 MGRIT its)
    assert history_column(tmp_path / "e1", "state_mgrit_its")[n] >= 2  # one-shot from there
    totals = json.loads((tmp_path / "e1" / "summary.json").read_text())["adaptive_oneshot"]
    assert totals["exact_start_evaluations"] >= 3 and totals["exact_evaluations"] >= totals["exact_start_evaluations"]
    # the rows count what the totals count (not the command line's warm-up evaluation)
    assert history_column(tmp_path / "e1", "exact_evaluations").sum() == totals["exact_evaluations"]
    assert_histories_agree(tmp_path / "e1", [tmp_path / "e2", tmp_path / "e3"], equal=("exact_evaluations",),
                           close=("objective", "gradient_norm"))


def test_exact_start_everywhere(tmp_path):
    """-oneshot_exact_start 1: every evaluation exact, the history serial mode's bitwise."""
    args = ["-N", 16, "-width", 4, "-ntrain", 100, "-nval", 20, "-quiet", "-tao_max_it", 5]
    run_ocnet(args + ["-run_dir", tmp_path / "s"])
    run_ocnet(args + ["-mode", "oneshot", "-oneshot_exact_start", 1, "-run_dir", tmp_path / "e"])
    np.testing.assert_array_equal(history_column(tmp_path / "e"), history_column(tmp_path / "s"))
    assert set(history_column(tmp_path / "e", "state_mgrit_its_total")) == {0}
    # -tao_max_it 0 (evaluation only): its one evaluation is exact, so the row's validation accuracy
    # is the exact final one (a cold MGRIT gave another: 0.175 against 0.185, docs auditor 2026-12-07)
    p = run_ocnet(["-N", 256, "-mode", "oneshot", "-tao_max_it", 0, "-run_dir", tmp_path / "z"])
    summary = json.loads((tmp_path / "z" / "summary.json").read_text())
    assert history_column(tmp_path / "z", "val_accuracy")[0] == summary["final_exact"]["val_accuracy"], summary
    assert history_column(tmp_path / "z", "exact_evaluations")[0] >= 1, p.stdout


def test_run_that_ends_inside_the_exact_start_says_so(tmp_path):
    """A run that converges before its exact start ends (3 iterations of a start of 20 evaluations)
    ran no one-shot solve: its history is serial mode's, and one note says so and how to change it
    (a tester's plugin finished bitwise serial, silently)."""
    args = ["-N", 16, "-width", 4, "-ntrain", 100, "-nval", 20, "-quiet", "-tao_max_it", 100, "-tao_gatol", 0.3]
    run_ocnet(args + ["-run_dir", tmp_path / "s"])
    p = run_ocnet(args + ["-mode", "oneshot", "-run_dir", tmp_path / "o"])
    np.testing.assert_array_equal(history_column(tmp_path / "o"), history_column(tmp_path / "s"))
    assert "TAO lmvm stopped after 3 iterations (CONVERGED_GATOL)" in p.stdout, p.stdout
    notes = [ln for ln in p.stderr.splitlines() if "were in adaptive one-shot's exact start" in ln]
    assert len(notes) == 1 and "(the first 20 gradient evaluations: -oneshot_exact_start 0.2 of the run's first " \
        "-tao_max_it 100)" in notes[0] and "-oneshot_exact_start 0 tries one-shot" in notes[0], p.stderr
    for extra in (["-oneshot_exact_start", 0], ["-oneshot_exact_start", 1], ["-tao_max_it", 3, "-tao_gatol", 0]):
        q = run_ocnet(args + ["-mode", "oneshot"] + extra)
        assert "exact start (the first" not in q.stderr, (extra, q.stderr)

def test_bad_adaptive_options():
    for extra, text in ((["-oneshot_state_its_min", 5, "-oneshot_state_its_max", 3],
                         "-oneshot_state_its_min 5 is above -oneshot_state_its_max 3"),
                        (["-oneshot_kappa", 1.5], "option -oneshot_kappa")):
        p = run_ocnet(BASE + ["-tao_max_it", 1] + extra, check=False)
        assert p.returncode == 2, p.stderr
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ocnet: error: ") and text in lines[0], p.stderr


# ---- a problem's defaults are its configuration (ControlProblem.option_defaults) -------------
CONFIGURED = ["-problem", "tests.defaults_plugin:Configured", "-quiet"]


def test_problem_option_defaults(tmp_path):
    """Defaults of framework, MGRIT, TAO and plugin options; -help shows them; the user's win;
    the problem's MGRIT defaults count as chosen (-mode oneshot keeps -mgrit_cfactor 2) and
    draw no warning; peaks keeps its own defaults."""
    text = run_ocnet(CONFIGURED + ["-help"]).stdout
    for line in ("-N <6>", "-dim <2>", "-mode <oneshot>", "-mgrit_cfactor <2>", "-tao_max_it 3"):
        assert line in text, line
    p = run_ocnet(CONFIGURED + ["-mgrit_view", "-run_dir", tmp_path / "a"])
    assert "after 3 iterations" in p.stdout and "cfactor 2" in p.stdout and "N=6" in p.stdout, p.stdout
    assert "warning" not in p.stderr, p.stderr
    p = run_ocnet(CONFIGURED + ["-N", 8, "-tao_max_it", 2, "-mode", "serial"])
    assert "N=8" in p.stdout and "after 2 iterations" in p.stdout, p.stdout
    assert "warning" not in p.stderr, p.stderr  # the problem's MGRIT defaults are not the user's
    assert "-N <32>" in run_ocnet(["-help"]).stdout


def test_problem_option_defaults_bad_name():
    p = run_ocnet(["-problem", "tests.defaults_plugin:Misconfigured", "-quiet"], check=False)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert lines == ["ocnet: error: problem 'misconfigured': option_defaults names -nosuch, which is not an option"], p.stderr
    p = run_ocnet(["-problem", "tests.defaults_plugin:MisspeltOwn", "-quiet"], check=False)
    assert p.returncode == 2 and p.stderr.strip() == ("ocnet: error: problem 'misspeltown': option_defaults names "
                                                      "-dims, which is not an option (did you mean -dim?)"), p.stderr
    # a TAO option (PETSc's: checked when TAO reads its options) is reported like a user's, at
    # iteration 0 and at the end, naming where it came from; one TAO reads is not
    p = run_ocnet(["-problem", "tests.defaults_plugin:MisspeltTao", "-N", 8, "-tao_max_it", 2, "-quiet"])
    said = "ocnet: warning: option -tao_maxit (option_defaults of problem 'misspelt') was given but"
    assert p.stderr.count(said) == 2 and "did you mean -tao_max_it?" in p.stderr, p.stderr
    assert "tao_ls_type" not in p.stderr, p.stderr
    # -check_adjoint runs no TAO: the problem's TAO defaults went unread and were reported, -tao_ls_type
    # with 'did you mean -tao_type?' (tester 43); -help shows them beside ocnet's TAO defaults
    p = run_ocnet(["-problem", "tests.defaults_plugin:MisspeltTao", "-N", 4, "-check_adjoint"])
    assert "warning" not in p.stderr and "tao_" not in p.stdout, p.stdout + p.stderr
    p = run_ocnet(["-problem", "tests.defaults_plugin:MisspeltTao", "-help"])
    assert "defaults: -tao_type lmvm -tao_max_it 300 -tao_gatol 1e-6 -tao_maxit 5 -tao_ls_type armijo)" in p.stdout


def test_counts_settle_where_mgrit_is_exact(tmp_path):
    """MNIST's 30 layers: MGRIT is exact after 3-4 cycles, so r_k / rho of an exact solve says
    nothing about one cycle fewer.  The counts drop only where the residual measured before the
    last cycle met the target: after the cold start's fallbacks they settle, with no further
    exact evaluation (the first rule dropped a cycle after every exact solve and fell back at
    every second evaluation)."""
    d = tmp_path / "m"
    run_ocnet(["-problem", "mnist", "-ntrain", 100, "-nval", 50, "-tao_max_it", 10, "-quiet", "-mode", "oneshot",
               "-run_dir", d])
    exact = history_column(d, "exact_evaluations")
    assert exact[:3].sum() >= 1 and exact[3:].sum() == 0, exact
    assert len(set(history_column(d, "state_mgrit_its")[3:])) == 1


def test_monitor_leaves_the_run_as_it_is(tmp_path):
    """-mgrit_monitor only reports: adaptive (with its fallbacks) and fixed one-shot histories are
    bitwise those without it (it switched one-shot solves to the tolerance loop, which left the
    adaptive controller without ||u||: estimates 0, no fallbacks, another objective); one line per
    cycle of every fixed-cycle solve."""
    for name, extra in (("adaptive", ["-T", 6]), ("fixed", ["-oneshot_adapt", 0])):
        args = BASE + extra + ["-tao_max_it", 6]
        run_ocnet(args + ["-run_dir", tmp_path / name])
        p = run_ocnet(args + ["-mgrit_monitor", "-run_dir", tmp_path / f"{name}_mon"])
        a, b = ([{k: v for k, v in row.items() if k != "wall_time"} for row in read_history(tmp_path / d)]
                for d in (name, f"{name}_mon"))
        assert a == b, (a, b)
        assert "state mgrit it   2" in p.stdout and "adjoint mgrit it   1" in p.stdout, p.stdout[-2000:]


def test_note_when_most_evaluations_fall_back(tmp_path):
    """A one-shot run whose MGRIT never contracts at the counts allowed (T = 30, at most 2 + 1
    cycles) falls back at nearly every evaluation: one note at the end says so and what to change
    (it ended as a slower serial run with only the rate-limited fallback notes)."""
    p = run_ocnet(["-N", 32, "-T", 30, "-tao_max_it", 6, "-quiet", "-mode", "oneshot", "-oneshot_exact_start", 0,
                   "-oneshot_state_its_max", 2, "-oneshot_adjoint_its_max", 1])
    assert "one-shot evaluations were exact (layer-serial fallbacks" in p.stderr and "-mgrit_relax FCF" in p.stderr
    q = run_ocnet(BASE + ["-tao_max_it", 6])  # (a run that contracts: no such note)
    assert "evaluations were exact" not in q.stderr, q.stderr


def test_state_nonfinite_before_its_last_cycle_falls_back():
    """A one-shot state solve whose iterate went non-finite before its last cycle and ended at
    round-off anyway (MGRIT is exact after enough cycles on few coarse intervals; a new user's
    reaction-diffusion plugin, N 64, 8 + 8 cycles per evaluation) was accepted silently: rho was
    not measured (the residual before the last cycle read as 'not measured').  It is rho = inf
    now: the evaluation becomes exact, with the note and the summary's count."""
    import math
    from types import SimpleNamespace

    from mpi4py import MPI

    from ocnet.optim.adaptive import AdaptiveOneShot, _rho
    values = {"oneshot_state_its_min": 2, "oneshot_state_its_max": 8, "oneshot_adjoint_its_min": 1,
              "oneshot_adjoint_its_max": 8, "oneshot_state_its": 8, "oneshot_adjoint_its": 8, "oneshot_kappa": 0.2,
              "oneshot_state_share": 0.25, "oneshot_relax_after": 20, "oneshot_error_scale": 1e3,
              "oneshot_adjoint_refresh": 3, "oneshot_exact_start": 0.0}
    mg = SimpleNamespace(history=[math.nan, math.inf, 1.6e-15], unorm=1.0, s=SimpleNamespace(max_it=8))
    assert _rho(mg) == math.inf
    ctl = AdaptiveOneShot(values, MPI.COMM_SELF)
    assert ctl.after_state(SimpleNamespace(mgrit=mg)) and "rho inf >= 1" in ctl.fallback_reason
    mg.history = [math.nan, 1.6e-15]  # (not measured: no decision)
    assert math.isnan(_rho(mg)) and not ctl.after_state(SimpleNamespace(mgrit=mg))


def test_restore_of_older_checkpoints():
    """Checkpoints of the controller written before the calibration (9 state entries) or before
    the exact start (7) restore their totals and leave the new entries at their starting values."""
    from petsc4py import PETSc
    from ocnet.optim.adaptive import TOTALS, AdaptiveOneShot
    from ocnet.run.cli import framework_options
    values = {o.name: o.default for o in framework_options().options}
    comm = PETSc.COMM_WORLD.tompi4py()
    new = AdaptiveOneShot(values, comm, 100)
    totals = list(range(1, len(TOTALS) + 1))
    for n in (9, 7):
        ad = AdaptiveOneShot(values, comm, 100)
        ad.restore(np.concatenate([new.get_state()[:n], totals]))
        assert [ad.totals[k] for k in TOTALS] == totals and ad.scale == values["oneshot_error_scale"], n
        assert ad.ncal == ad.calibrations == 0 and ad.k == new.k
    ad = AdaptiveOneShot(values, comm, 100)
    ad.scale, ad.ncal, ad.calibrations = 3000.0, 7, 2
    back = AdaptiveOneShot(values, comm, 100)
    back.restore(ad.saved())
    assert (back.scale, back.ncal, back.calibrations) == (3000.0, 7, 2)
