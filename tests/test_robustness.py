"""Every bad run ends cleanly and says why (issue 8): no hangs, no silent no-ops, honest reports.

Each case is a command line that once went wrong; under mpiexec every error must end every rank
with a non-zero status well within the subprocess timeout (a hang fails the test, never the suite).
"""
import json
import os
import re
import sys

import numpy as np
import pytest

from tests.conftest import SUMMARY_KEYS, history_column, read_history, run_ocnet

PEAKS = ["-N", 4, "-width", 4, "-ntrain", 100, "-nval", 20, "-tao_max_it", 3, "-quiet"]
DAHL = ["-problem", "dahlquist", "-N", 8, "-tao_max_it", 3, "-quiet"]
TOY = ["-problem", "tests.faulty:Poisoned", "-N", 8, "-quiet"]


def ocnet_lines(p):
    return [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet")]


def one_error(p, status, text):
    errors = [ln for ln in ocnet_lines(p) if ln.startswith("ocnet: error:")]
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    assert len(errors) == 1 and text in errors[0], p.stderr
    assert "Traceback" not in p.stdout + p.stderr


# ---- 1. an error on one rank ends every rank -------------------------------------------------
@pytest.mark.parametrize("nprocs", [2, 3])
def test_error_inside_optimizer_on_rank0_ends_all_ranks(nprocs):
    # (TAO sets up its quasi-Newton matrix inside the solve, on rank 0 of the replicated layout;
    # -tao_type nls, used before, is refused up front now: it needs a Hessian)
    p = run_ocnet(DAHL + ["-tao_lmvm_mat_type", "lmvmnosuch"], nprocs=nprocs, timeout=150, check=False)
    one_error(p, 2, "Unknown Mat type given: lmvmnosuch")


@pytest.mark.parametrize("nprocs", [2, 3])
def test_plugin_bug_on_one_rank_ends_all_ranks(nprocs):
    p = run_ocnet(["-problem", "tests.faulty:FailsOnRank", "-N", 8, "-fail_rank", nprocs - 1, "-quiet"],
                  nprocs=nprocs, timeout=150, check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "ZeroDivisionError: deliberate failure in step" in p.stderr  # a bug: with its traceback
    # ... blamed on the plugin's line, not reported as ocnet's internal error
    assert "ocnet: error: the problem plugin failed (ZeroDivisionError: deliberate failure in step) at " \
        f"{os.path.join(os.path.dirname(__file__), 'faulty.py')}:" in p.stderr, p.stderr
    assert "internal error" not in p.stderr


@pytest.mark.parametrize("fail_rank", [0, 1])
def test_plugin_bug_mid_run_leaves_a_summary(tmp_path, fail_rank):
    """A plugin that fails mid-run (exit 1) leaves summary.json saying so, with the error line and
    the checkpoint to resume from (before: history.csv and options.txt only), whichever rank failed."""
    folder = tmp_path / "run"
    p = run_ocnet(["-problem", "tests.faulty:FailsLater", "-N", 8, "-fail_rank", fail_rank, "-fail_call", 200,
                   "-quiet", "-tao_max_it", 1000, "-checkpoint_every", 5, "-run_dir", folder], nprocs=2, timeout=150,
                  check=False)
    assert p.returncode == 1, (p.returncode, p.stderr)
    summary = json.loads((folder / "summary.json").read_text())
    rows = read_history(folder)
    assert summary["reason"] == "FAILED" and summary["exit_status"] == 1 and SUMMARY_KEYS <= set(summary), summary
    assert summary["error"].startswith("the problem plugin failed (ZeroDivisionError: deliberate failure in step)")
    assert summary["iterations"] == int(rows[-1]["iteration"]) > 5, (summary, rows[-1])
    saved = json.loads((folder / "params.json").read_text())["iteration"]
    assert f"the checkpoint of iteration {saved} is kept" in summary["note"] and saved % 5 == 0, summary


def test_plugin_author_mistakes_say_what_to_check():
    """A wrong sign in a plugin's parameter gradient ended on a line-search failure with no hint; a
    state_size that does not match opening's array gave numpy's broadcast error only; a misspelt
    class in -problem module:Class named no candidate (tester 50)."""
    p = run_ocnet(["-problem", "tests.faulty:SignErrorGrad", "-N", 8, "-tao_max_it", 30, "-quiet"])
    notes = [ln for ln in p.stderr.splitlines() if "line search failed" in ln]
    assert len(notes) == 1 and re.match(r"ocnet: note: the line search failed at iteration \d+ with \|g\| still "
                                        r"\S+ of its starting value: an error in the plugin's gradient \(step_adjoint, "
                                        r"opening_adjoint, terminal's lamN\) is one cause; -check_adjoint tests it",
                                        notes[0]), p.stderr
    # (a built-in problem's line-search failure: no such note; the one-shot TAO with one trial per line search)
    ok = run_ocnet(["-N", 32, "-quiet", "-mode", "oneshot", "-oneshot_exact_start", 0, "-oneshot_tao",
                    "-tao_oneshot_ls_max_it", 1, "-tao_max_it", 30])
    assert "-check_adjoint" not in ok.stderr and "DIVERGED_LS_FAILURE" in ok.stdout + ok.stderr, ok.stderr
    p = run_ocnet(["-problem", "tests.faulty:HalfStateSize", "-N", 8, "-quiet"], check=False)
    assert p.returncode == 1 and p.stderr.strip().splitlines()[-1].endswith(
        "in opening; the arrays ocnet hands a plugin have the sizes it declares: state_size(data), cache_size(data), "
        "layer_param_size, global_param_size (CONTRACT.md)"), p.stderr
    p = run_ocnet(["-problem", "tests.faulty:SignErrorGrd", "-N", 8], check=False)
    assert p.returncode == 2 and p.stderr.strip() == (
        "ocnet: error: cannot load problem 'tests.faulty:SignErrorGrd': module 'tests.faulty' has no attribute "
        "'SignErrorGrd' (did you mean tests.faulty:SignErrorGrad?)"), p.stderr


@pytest.mark.parametrize("cls,text", [
    ("WrongInitialShape", "initial_layer_parameters returned shape (2,), expected (3,) (layer_param_size = 3)"),
    ("WrongTerminal", "terminal returned shape (64,), expected a float"),
    ("NoLayerParamSize", "initial_layer_parameters returned shape (3,), expected (0,) (layer_param_size = 0: the "
                         "problem never sets layer_param_size, ControlProblem's default is 0; set it in the class or "
                         "__init__)"),
    ("NoAdjoint", "problem 'linear' (NoAdjoint) does not define step_adjoint (required of every plugin: "
                  "docs/plugins/contract.md)"),
    # (an AttributeError reported as an internal error; a zero gradient, CONVERGED_GATOL at iteration 0: tester 50)
    ("NoSuperInit", "problem 'linear': NoSuperInit.__init__ does not call super().__init__(values, comm) "
                    "(ControlProblem's sets values, comm and the regularisation weights): call it first "
                    "(docs/plugins/contract.md)"),
    ("TerminalNoLam", "problem 'linear': terminal wrote nothing into lamN, the loss's gradient with respect to the "
                      "final state: write it in place, lamN[:] = ... (CONTRACT.md)"),
])
def test_plugin_return_shape_is_one_line(cls, text):
    for nprocs in (None, 2):
        one_error(run_ocnet(["-problem", f"tests.faulty:{cls}", "-N", 8, "-quiet"], nprocs=nprocs, timeout=150,
                            check=False), 2, text)


@pytest.mark.parametrize("nprocs", [None, 2])
def test_missing_options_file(nprocs):
    one_error(run_ocnet(["-options_file", "/no/such.opts"], nprocs=nprocs, timeout=150, check=False), 2,
              "-options_file: cannot read '/no/such.opts'")


@pytest.mark.parametrize("args,text,nprocs", [
    (["--N", 8], "'--N': options start with one '-' (PETSc's convention): -N", 2),
    (["---tao_max_it", 1], "'---tao_max_it': options start with one '-'", None),
    (["-run_dir=R"], "'-run_dir=R': an option's value follows it after a blank: -run_dir R", None),
    (["-N", 8, "extra"], "stray argument 'extra'", 2),
    (["N=8"], "stray argument 'N=8'", None),
    (["-tao_gatol", "abc"], "option -tao_gatol: expected a real number, got 'abc'", 2),  # (PETSc named the value only)
    (["-", "N", 8], "a lone '-'", None),
])
def test_arguments_petsc_would_ignore(args, text, nprocs):
    """Words PETSc drops silently (a stray word) or takes as option names that never match
    (--N, -N=8: reported only as unused when the run ended): one line before anything runs."""
    one_error(run_ocnet(args + ["-quiet", "-N", 4, "-tao_max_it", 1], nprocs=nprocs, timeout=120, check=False), 2,
              text)


BAD_LINES = [
    ("--N 16", "'--N': options start with one '-'"),
    ("-this is not an option line", "has more than an option and its value"),
    ("N 16", "is not an option line"),
    ('-problem "peaks', "unbalanced double quote"),
    ("alias -a", "is not 'alias -newname -oldname'"),
]


@pytest.mark.parametrize("line,text,nprocs", [b + (n,) for b, n in zip(BAD_LINES, (None, 2, None, None, None))],
                         ids=[t for _, t in BAD_LINES])
def test_malformed_options_file(tmp_path, nprocs, line, text):
    """A line PETSc cannot parse: one line naming the file and line, exit 2 (PETSc would print its
    error block and a traceback on every rank); comments, quoted values and blank lines pass."""
    opts = tmp_path / "bad.opts"
    opts.write_text("# a comment\n\n-N 4   # trailing comment\n-problem \"peaks\"\n" + line + "\n")
    p = run_ocnet(["-options_file", opts] + PEAKS, nprocs=nprocs, timeout=120, check=False)
    one_error(p, 2, f"-options_file '{opts}', line 5: ")
    assert text in p.stderr and "PETSC ERROR" not in p.stderr and "petsc4py" not in p.stderr, p.stderr
    if "quote" in text:  # the same file without the bad line runs
        good = tmp_path / "good.opts"
        good.write_text("# a comment\n\n-N 4   # trailing comment\n-problem \"peaks\"\n")
        run_ocnet(["-options_file", good] + PEAKS, nprocs=nprocs, timeout=120)


def test_nested_malformed_options_file(tmp_path):
    inner, outer = tmp_path / "inner.opts", tmp_path / "outer.opts"
    inner.write_text("-N 4 5\n")
    outer.write_text(f"-options_file {inner}\n")
    one_error(run_ocnet(["-options_file", outer] + PEAKS, timeout=120, check=False), 2,
              f"-options_file '{inner}', line 1: ")


def test_options_file_including_itself(tmp_path):
    """A cycle of -options_file lines: one line naming it (PETSc recursed into a segmentation fault)."""
    a, b = tmp_path / "a.opts", tmp_path / "b.opts"
    a.write_text(f"-N 4\n-options_file {b}\n")
    b.write_text(f"-options_file {a}\n")
    one_error(run_ocnet(["-options_file", a] + PEAKS, timeout=120, check=False), 2,
              f"-options_file '{a}' includes itself (through {a} -> {b})")


def test_options_file_without_name_or_with_bom(tmp_path):
    """-options_file without a file name (last on the command line or in a file) and a file that
    starts with a byte-order mark: one line each (PETSc printed its error block and a traceback)."""
    one_error(run_ocnet(PEAKS + ["-options_file"], timeout=120, check=False), 2, "-options_file needs a file name")
    f = tmp_path / "last.opts"
    f.write_text("-N 4\n-options_file\n")
    one_error(run_ocnet(["-options_file", f] + PEAKS, timeout=120, check=False), 2,
              "its last option -options_file needs a file name")
    f = tmp_path / "bom.opts"
    f.write_bytes(b"\xef\xbb\xbf-N 4\n")
    one_error(run_ocnet(["-options_file", f] + PEAKS, timeout=120, check=False), 2, "byte-order mark")


def test_overflow_reported_once():
    """An overflowing state: the one 'non-finite objective' line, no numpy warning per array."""
    p = run_ocnet(PEAKS + ["-T", "1e150"], timeout=120, check=False)
    one_error(p, 3, "non-finite objective")
    assert "RuntimeWarning" not in p.stderr, p.stderr


# ---- derived values that under- or overflow: range-checked where they are derived ------------
@pytest.mark.parametrize("args,text,nprocs", [
    (["-T", "1e-320"], "-T 1e-320 with -N 4: the step h = T/N = 2.5e-321 is out of range", 2),
    (["-T", "1e300", "-N", 4], "the step h = T/N = 2.5e+299 is out of range", None),
    (["-T", "1e-100", "-gamma_ddt", "1e300"], "the smoothness weight gamma_ddt/h^2", 2),
    (["-T", "1e-150", "-gamma_ddt", "1"], "gamma_ddt/h^2 = 1.6e+301, out of range", None),  # finite, its square not
    (["-gamma_tik", "1e300"], "option -gamma_tik: 1e+300 is out of range", None),
], ids=["h-underflow", "h-overflow", "weight-overflow", "weight-square-overflow", "tikhonov-overflow"])
def test_derived_values_range_checked(args, text, nprocs):
    one_error(run_ocnet(PEAKS + args, nprocs=nprocs, timeout=120, check=False), 2, text)


# ---- 2. non-finite numbers stop the run, say where, keep the last good parameters ------------
@pytest.mark.parametrize("nprocs", [None, 2])
def test_nonfinite_objective_stops_and_keeps_last_good(tmp_path, nprocs):
    run = tmp_path / "r"
    p = run_ocnet(TOY + ["-nan_at", 6, "-tao_max_it", 20, "-run_dir", run], nprocs=nprocs, timeout=300, check=False)
    one_error(p, 3, "non-finite objective")
    assert "coarse levels" not in p.stderr  # layer-serial: no MGRIT hint
    hist = read_history(run)
    assert len(hist) >= 2 and all(np.isfinite(float(r["objective"])) for r in hist)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reason"] == "DIVERGED_NAN" and summary["iterations"] == int(hist[-1]["iteration"])
    assert SUMMARY_KEYS <= set(summary) and summary["exit_status"] == 3, summary
    # the kept parameters reproduce the last good row
    p2 = run_ocnet(TOY + ["-nan_at", 10**6, "-load", run, "-tao_max_it", 0, "-run_dir", tmp_path / "e"])
    assert "evaluated the starting parameters (-tao_max_it 0)" in p2.stdout + p2.stderr
    assert float(read_history(tmp_path / "e")[0]["objective"]) == pytest.approx(float(hist[-1]["objective"]),
                                                                                 rel=1e-12), p2.stdout


FENCED = ["-problem", "tests.faulty:Fenced", "-N", 8, "-quiet", "-tao_max_it", 20, "-radius", 0.3]


@pytest.mark.parametrize("nprocs", [None, 2])
def test_nonfinite_trial_point_is_a_rejected_step(tmp_path, nprocs):
    """A line search's trial point that goes non-finite is +inf to the optimiser, which shrinks
    the step (it stopped the run); a line search that fails on one stops it as before, with the
    last good parameters (toy: J = inf once g is 0.3 from its start)."""
    run = tmp_path / "armijo"
    p = run_ocnet(FENCED + ["-tao_ls_type", "armijo", "-run_dir", run], nprocs=nprocs, timeout=300)
    summary = json.loads((run / "summary.json").read_text())
    hist = read_history(run)
    assert summary["reason"] == "DIVERGED_MAXITS" and summary["rejected_trial_points"] > 0, summary
    assert f"ocnet: note: {summary['rejected_trial_points']} line-search trial points went non-finite" in p.stderr
    assert len(hist) == 21 and float(hist[-1]["objective"]) < 0.7 * float(hist[0]["objective"])
    assert all(np.isfinite(float(r["objective"])) for r in hist)
    for args, name in (([], "mt"), (["-oneshot_tao"], "oneshot")):  # More-Thuente fails on it; the one-shot
        run = tmp_path / name                                          # TAO's Armijo runs into the fence
        p = run_ocnet(FENCED + args + ["-run_dir", run], nprocs=nprocs, timeout=300, check=False)
        one_error(p, 3, "the line search failed on non-finite trial points (")
        summary, hist = json.loads((run / "summary.json").read_text()), read_history(run)
        assert summary["reason"] == "DIVERGED_NAN" and summary["iterations"] == int(hist[-1]["iteration"]) >= 1
        assert all(np.isfinite(float(r["objective"])) for r in hist)


def test_nonfinite_in_mgrit_mode_checked_layer_serially():
    """A plugin whose loss turns NaN in one-shot mode: the layer-serial solve at the design is NaN
    too, so the error blames the model, not MGRIT's coarse steps (test_diverged_mgrit_told_from_the_model:
    the other case)."""
    p = run_ocnet(TOY + ["-nan_at", 6, "-tao_max_it", 20, "-mode", "oneshot"], timeout=300, check=False)
    # adaptive one-shot evaluates the non-finite evaluation exactly: NaN too, so the model's
    assert "a one-shot evaluation was replaced by an exact (layer-serial) one: it went non-finite" in p.stderr
    one_error(p, 3, "non-finite objective (J = nan): the terminal loss")
    assert "mgrit" not in p.stderr.splitlines()[-1], p.stderr
    p = run_ocnet(TOY + ["-nan_at", 6, "-tao_max_it", 20, "-mode", "oneshot", "-oneshot_adapt", 0], timeout=300,
                  check=False)
    one_error(p, 3, "the layer-serial solve at this design is non-finite too (the model, not MGRIT)")


@pytest.mark.parametrize("nprocs", [None, 2])
def test_overflowing_state_named_with_its_layer(nprocs, tmp_path):
    """Non-finite at the starting point: named with its layer; summary.json DIVERGED_NAN with no
    history (it said FAILED, "history.csv holds its rows", with no history.csv)."""
    run = tmp_path / "r"
    p = run_ocnet(PEAKS + ["-init_layer", 1e200, "-activation", "relu", "-run_dir", run], nprocs=nprocs,
                  timeout=300, check=False)
    one_error(p, 3, "non-finite")
    assert "the state from layer" in p.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reason"] == "DIVERGED_NAN" and summary["iterations"] is None and summary["exit_status"] == 3
    assert "before its first history row" in summary["note"] and not (run / "history.csv").exists(), summary
    assert SUMMARY_KEYS <= set(summary) and "non-finite" in summary["error"], summary


@pytest.mark.parametrize("nprocs", [None, 2])
def test_overflowing_loss_named(nprocs):
    """A finite final state whose loss overflows: the error names the terminal loss and the final
    state's size (it blamed "the adjoint from layer N down", which only follows from it)."""
    p = run_ocnet(["-problem", "tests.faulty:LossOverflow", "-N", 8, "-quiet", "-tao_max_it", 3], nprocs=nprocs,
                  timeout=300, check=False)
    one_error(p, 3, "the terminal loss, of a finite final state (max |u[N]| = ")


# a stiff linear ODE whose fine steps are stable and whose coarse steps (factor 2, 6 levels) are
# not, with a step that returns NaN from states above 100 (a solver inside the step failing)
STIFF = ["-problem", "tests.faulty:Stiff", "-T", 64, "-N", 64, "-mgrit_levels", 6, "-stiffness", 1.9,
         "-mgrit_cfactor", 2, "-nan_above", 100, "-tao_max_it", 6, "-quiet"]


@pytest.mark.parametrize("nprocs", [None, 2])
def test_diverged_mgrit_told_from_the_model(nprocs):
    """A non-finite MGRIT evaluation (fixed one-shot) is checked against the layer-serial solve at
    its design: MGRIT's divergence, not the model's (it advised smaller -T, -N or weights alone).
    The advice leaves out what the settings already are (factor 2: no smaller factor)."""
    p = run_ocnet(STIFF + ["-mode", "oneshot", "-oneshot_adapt", 0, "-mgrit_relax", "F"], nprocs=nprocs,
                  timeout=300, check=False)
    one_error(p, 3, "the layer-serial solve at this design is finite: the MGRIT iteration diverged, not the model: "
                    "-mgrit_relax FCF (now F) or fewer levels (-mgrit_levels, now 6) may make it contract")
    assert "cfactor" not in p.stderr and "smaller initial weights" not in p.stderr, p.stderr


def test_diverged_exact_solves_replaced_by_layer_serial(tmp_path):
    """Exact mode: a state solve that goes non-finite (or diverges) is replaced by the layer-serial
    solve under -unconverged warn (the optimiser got its garbage: J 2e4 against 0.18 in a tester's
    Burgers plugin), so the run is the serial run; -unconverged stop makes it an error."""
    p = run_ocnet(STIFF + ["-mode", "exact", "-run_dir", tmp_path / "e"])
    assert "state MGRIT went non-finite (residual nan) in iteration 1; the layer-serial solve replaces it" in p.stderr
    run_ocnet(STIFF + ["-run_dir", tmp_path / "s"])
    np.testing.assert_allclose(history_column(tmp_path / "e"), history_column(tmp_path / "s"), rtol=1e-13)
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["serial_fallbacks"] == summary["unconverged_solves"] > 6, summary
    assert f"{summary['serial_fallbacks']} that diverged, blew up or went non-finite replaced by the layer-serial" in p.stderr
    one_error(run_ocnet(STIFF + ["-mode", "exact", "-unconverged", "stop"], nprocs=2, check=False, timeout=300), 3,
              "state MGRIT went non-finite (residual nan) in iteration 1; its coarse steps (h*m) may be unstable")


def test_fixed_oneshot_failed_line_search_row_and_cause(tmp_path):
    """Fixed one-shot counts far from converged (T 400): lmvm's line search fails on a trial point
    where the layer-serial solve overflows too.  The error says so and names the inexact gradient
    the step came from; the failed iteration's row repeats its starting point's evaluation and
    metrics (it held the rejected trial's residual, inf, and metrics warm-started from it)."""
    run = tmp_path / "r"
    p = run_ocnet(["-N", 32, "-T", 400, "-mode", "oneshot", "-oneshot_adapt", 0, "-tao_max_it", 3, "-quiet",
                   "-run_dir", run], timeout=300, check=False)
    one_error(p, 3, "the layer-serial solve at this design is non-finite too (the model, not MGRIT)")
    assert "the step came from a one-shot gradient of fixed counts, with state residual" in p.stderr, p.stderr
    rows = read_history(run)
    assert len(rows) == 2 and float(rows[1]["step_length"]) == 0, rows
    for key in rows[0]:
        if key not in ("iteration", "wall_time"):
            assert rows[1][key] == rows[0][key], key


def test_nonfinite_options_and_loaded_nan(tmp_path):
    one_error(run_ocnet(PEAKS + ["-T", "inf"], check=False), 2, "option -T: expected a finite real number")
    one_error(run_ocnet(PEAKS + ["-gamma_ddt", "nan"], check=False), 2, "finite")
    run = tmp_path / "r"
    run_ocnet(PEAKS + ["-run_dir", run])
    raw = bytearray((run / "params.petsc").read_bytes())
    vals = np.frombuffer(raw, ">f8", offset=8).copy()  # PETSc binary Vec: classid, n, big-endian reals
    vals[3] = np.nan
    raw[8:] = vals.astype(">f8").tobytes()
    (run / "params.petsc").write_bytes(bytes(raw))
    for nprocs in (None, 2):
        p = run_ocnet(PEAKS + ["-load", run, "-tao_max_it", 0], nprocs=nprocs, timeout=300, check=False)
        one_error(p, 2, "holds 1 non-finite parameter value")


# ---- 3. options that would do nothing are reported -------------------------------------------
@pytest.mark.parametrize("args,expected", [
    (["-mode", "serial", "-mgrit_levels", 3, "-mgrit_monitor"],
     ["-mgrit_levels has no effect in -mode serial", "-mgrit_monitor has no effect in -mode serial"]),
    (["-mode", "exact", "-N", 8, "-mgrit_levels", 2, "-mgrit_cfactor", "4,2"],
     ["-mgrit_cfactor 4,2: the state hierarchy has 2 level(s), so only the first 1 factor(s) are used"]),
    (["-mode", "exact", "-N", 3, "-mgrit_levels", 4],
     ["-mgrit_levels 4: the state hierarchy of N=3 has only 1 level(s)"]),
    (["-mode", "oneshot", "-mgrit_max_it", 7], ["-mgrit_max_it has no effect in -mode oneshot"]),
    (["-mode", "exact", "-oneshot_state_its", 1], ["-oneshot_state_its has no effect in -mode exact"]),
    # each option's advice names the modes that use it (serial advised exact for a one-shot count, whose
    # exact-mode warning then advised oneshot; tester 40), and -oneshot_adapt is reported too
    (["-mode", "serial", "-oneshot_state_its", 3, "-unconverged", "stop", "-oneshot_adapt", 0],
     ["-oneshot_state_its has no effect in -mode serial (layer-serial sweeps, no MGRIT): use -mode oneshot",
      "-unconverged has no effect in -mode serial (layer-serial sweeps, no MGRIT): use -mode exact",
      "-oneshot_adapt has no effect in -mode serial (layer-serial sweeps, no MGRIT): use -mode oneshot"]),
    (["-mode", "exact", "-oneshot_adapt", 1], ["-oneshot_adapt has no effect in -mode exact"]),
    (["-run_dir_overwrite", "-checkpoint_seconds", 5, "-run_dir_plots", 0],
     [f"-{k} has no effect without -run_dir (no run folder is written)"
      for k in ("run_dir_overwrite", "checkpoint_seconds", "run_dir_plots")]),
    (["-mode", "exact", "-N", 3], ["-mode exact: N=3 is too short for a coarse level"]),
    (["-mode", "exact", "-N", 32, "-mgrit_min_coarse", 100],
     ["-mode exact: N=32 is too short for a coarse level of -mgrit_min_coarse 100 points"]),
    (["-mode", "exact", "-N", 8, "-mgrit_levels", 1, "-mgrit_relax", "F", "-adjoint_mgrit_cycle", "F"],
     ["-mgrit_relax has no effect: the state and adjoint solves have one level, the layer-serial sweep",
      "-adjoint_mgrit_cycle has no effect: the adjoint solve has one level"]),
])
def test_inactive_options_warn(args, expected):
    p = run_ocnet(PEAKS + args)
    warnings = [ln for ln in ocnet_lines(p) if ln.startswith("ocnet: warning:")]
    for text in expected:
        assert sum(text in w for w in warnings) == 1, (text, warnings)


@pytest.mark.parametrize("args,text", [
    (["-mgrit_min_coarse", 0], "option -mgrit_min_coarse: 0 is out of range, must be in [2,inf)"),
    (["-mgrit_min_coarse", -5], "option -mgrit_min_coarse: -5 is out of range"),
    (["-gamma_tik", -1], "option -gamma_tik: -1 is out of range, must be in [0,inf)"),
    (["-gamma_ddt", -1], "option -gamma_ddt: -1 is out of range"),
    (["-problem", "dahlquist", "-gamma_tik", -1], "option -gamma_tik: -1 is out of range"),
    (["-problem", "heat", "-kappa", -0.1], "option -kappa: -0.1 is out of range"),
])
def test_out_of_range_values(args, text):
    for nprocs in (None, 2, 3):
        one_error(run_ocnet(PEAKS + args, nprocs=nprocs, timeout=300, check=False), 2, text)


# ---- 5. unconverged exact solves are visible ------------------------------------------------
def test_unconverged_exact_solves_warn_and_stop(tmp_path):
    args = PEAKS + ["-N", 16, "-mode", "exact", "-mgrit_max_it", 1, "-mgrit_rtol", 1e-12]
    p = run_ocnet(args + ["-run_dir", tmp_path / "w", "-adjoint_ksp_converged_reason"])
    warnings = [ln for ln in ocnet_lines(p) if "above its tolerance" in ln]
    assert warnings and len(warnings) <= 3, warnings  # rate-limited (1st, 10th, 100th, ...)
    assert "DIVERGED_MAX_IT" in p.stdout + p.stderr  # the adjoint KSP tells the truth
    hist = read_history(tmp_path / "w")
    assert all(float(r["state_mgrit_its"]) == 1 and float(r["adjoint_mgrit_its"]) == 1 for r in hist)
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    by = summary["unconverged_by_solve"]  # the validation solves counted apart (they have no _its column)
    assert summary["unconverged_solves"] == sum(by.values()) and by["state"] > 0 and by["val state"] > 0, by
    assert f"({', '.join(f'{k} {n}' for k, n in by.items())}; history.csv" in p.stderr, p.stderr
    one_error(run_ocnet(args + ["-unconverged", "stop"], nprocs=2, timeout=300, check=False), 3,
              "state MGRIT stopped after 1 iteration ")


# ---- 6. resume / load into a different problem ---------------------------------------------
ONESHOT = ["-width", 4, "-ntrain", 100, "-nval", 20, "-quiet", "-mode", "oneshot", "-mgrit_cfactor", 2,
           "-oneshot_tao", "-checkpoint_every", 2]


def test_resume_and_load_with_other_settings(tmp_path):
    run = tmp_path / "r"
    run_ocnet(ONESHOT + ["-N", 8, "-tao_max_it", 4, "-run_dir", run])
    p = run_ocnet(ONESHOT + ["-N", 16, "-tao_max_it", 6, "-resume", run], check=False)
    one_error(p, 2, "-N 8 (now 16)")
    for extra, text in ((["-T", 2], "-T 1.0 (now 2.0)"), (["-activation", "tanh"], "-activation smoothrelu (now tanh)")):
        p = run_ocnet(ONESHOT[:-2] + ["-N", 8, "-load", run, "-tao_max_it", 0] + extra, check=False)
        one_error(p, 2, text)
    # data-selecting options may differ: the saved model is evaluated on other data
    run_ocnet(ONESHOT[:-2] + ["-N", 8, "-load", run, "-tao_max_it", 0, "-ntrain", 50])


# ---- 7. run folders are never mixed ----------------------------------------------------------
def test_run_folder_refused_unless_overwrite(tmp_path):
    run = tmp_path / "r"
    run_ocnet(PEAKS + ["-run_dir", run], plots=True)
    assert (run / "decision.png").exists()
    one_error(run_ocnet(DAHL + ["-run_dir", run], check=False), 2, "is not empty")
    run_ocnet(DAHL + ["-run_dir", run, "-run_dir_overwrite"])
    assert not (run / "decision.png").exists() and (run / "params.petsc").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    one_error(run_ocnet(DAHL + ["-run_dir", other, "-run_dir_overwrite"], check=False), 2,
              "is not an ocnet run folder")
    assert (other / "notes.txt").read_text() == "keep me"


# ---- 8. reported numbers say what they are ---------------------------------------------------
def test_reason_names_and_exact_final_numbers(tmp_path):
    run = tmp_path / "o"
    p = run_ocnet(PEAKS + ["-N", 8, "-mode", "oneshot", "-run_dir", run], nprocs=2, timeout=120)
    assert "(DIVERGED_MAXITS)" in p.stdout
    assert "exact (layer-serial) forward solve on all training data: objective" in p.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reason"] == "DIVERGED_MAXITS" and "final_exact" in summary and summary["machine"]
    # the exact objective is what a serial evaluation of the saved parameters gives
    ev = tmp_path / "ev"
    run_ocnet(PEAKS + ["-N", 8, "-load", run, "-tao_max_it", 0, "-run_dir", ev])
    assert summary["final_exact"]["objective"] == pytest.approx(float(read_history(ev)[0]["objective"]), rel=1e-12)


def test_validation_monitor_lines_are_labelled():
    p = run_ocnet(PEAKS + ["-N", 8, "-mode", "exact", "-mgrit_monitor", "-tao_max_it", 1])
    assert "val state mgrit it" in p.stdout


# ---- 9. a corrupt Numba cache recompiles ------------------------------------------------------
def test_corrupt_numba_cache_recompiles(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    run_ocnet(PEAKS)
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "cache") for f in fs]
    assert any(f.endswith(".nbi") for f in files) and any(f.endswith(".nbc") for f in files)
    for f in files:
        with open(f, "r+b") as fh:  # keep the leading version pickle of an index, damage the rest
            data = fh.read()
            fh.seek(len(data) // 2)
            fh.write(b"\x00garbage" * 8)
    p = run_ocnet(PEAKS)
    assert "recompiling: corrupt Numba cache file" in p.stderr
    run_ocnet(PEAKS)  # and the cache works again


def test_plugin_frame_skips_compiled_extension_frames():
    """An error raised inside petsc4py's Cython code (frames named like petsc4py/PETSc/x.pxi) is
    not blamed on that file as if it were a plugin: the innermost frame of real Python code is."""
    from ocnet.run.cli import plugin_frame
    try:
        exec(compile("raise KeyError('x')", "petsc4py/PETSc/petscopt.pxi", "exec"))
    except KeyError as e:
        frame = plugin_frame(e)
    assert frame is not None and frame.filename == __file__, frame


def test_unconverged_solve_says_why():
    """The unconverged-solve line tells a diverging MGRIT (residual above its start: more
    iterations would not help) and a non-finite one (stopped at once) from a slow one."""
    from types import SimpleNamespace

    from ocnet.base.errors import NumericalFailure
    from ocnet.optim.objective import ReducedObjective

    def line(history):
        obj = SimpleNamespace(unconverged_count=0, unconverged_by={}, unconverged="stop")
        mg = SimpleNamespace(tolerance_set=True, converged=False, history=history, residual=history[-1],
                             levels=[None] * 3, s=SimpleNamespace(max_it=20, rtol=1e-9, atol=0.0, relax="F",
                                                                  cfactor=(4,)))
        with pytest.raises(NumericalFailure) as e:
            ReducedObjective._check_converged(obj, mg, "adjoint")
        return str(e.value)
    text = line([53.0, 400.0, 1.3e5])
    assert "adjoint MGRIT diverged: its residual grew from 5.300e+01 to 1.300e+05 in 2 iterations" in text, text
    assert "a smaller -adjoint_mgrit_cfactor (now 4), -adjoint_mgrit_relax FCF (now F) or fewer levels " \
           "(-adjoint_mgrit_levels, now 3) may make it contract" in text and "max_it" not in text, text
    assert "raise -adjoint_mgrit_max_it" in line([1.0, 0.5, 0.25])
    assert "went non-finite (residual nan) in iteration 2" in line([1.0, 0.5, float("nan")])
    # up 1e5-fold, then down to below its start without converging: blew up (a tester's oscillator)
    text = line([6.1, 3.0e9, 6.6e14, 0.845])
    assert "MGRIT blew up: its residual rose from 6.100e+00 to 6.600e+14 and ended at 8.450e-01 after 3 " \
           "iterations (tolerance -adjoint_mgrit_rtol 1e-09 of its starting residual 6.100e+00" in text, text
    assert "max_it" not in text, text
    # up 1e4-fold in the first cycle, then far below its start and stalled there (a tester's explicit
    # stepper, 2026-12-07: was 'blew up' and replaced, with advice to raise max_it): a stall, and
    # an atol that accepts it
    text = line([7.2e-5, 0.65, 1e-8, 2.7e-13, 2.6e-13, 2.65e-13, 2.62e-13])
    assert "blew up" not in text and "stopped after 6 iterations with residual 2.620e-13" in text, text
    assert "stalled (rho 0.99 over the last 3 iterations)" in text and "-adjoint_mgrit_atol 5e-13 accepts it" \
        in text and "max_it" not in text, text


def test_stall_at_round_off_counts_as_converged():
    """A residual that stops falling (less than halved in 3 cycles) below 1000 times the round-off
    floor (1.4e-11 |u|) is the step's round-off (a tester's explicit stepper stalled at 3.4e-14 |u|,
    above 64 eps |u|, and every warm solve ran to -mgrit_max_it); above that level (a frozen
    iterate at 8e-9 |u|, 5e-11 off in J: sqrt(eps) took it), or still falling, it is not."""
    from types import SimpleNamespace

    from ocnet.mgrit.solver import MGRIT
    stalled = lambda h, unorm=10.0: MGRIT.stalled(SimpleNamespace(history=h), unorm)
    assert stalled([6e-10, 2.7e-13, 2.6e-13, 2.65e-13, 2.61e-13])
    assert not stalled([6e-10, 2.7e-13, 2.6e-13, 2.65e-13])  # (3 cycles needed)
    assert not stalled([6e-10, 2.7e-13, 1e-13, 5e-14, 2.5e-14])  # still falling (rho ~0.6)
    assert not stalled([1e-3, 9e-4, 8.5e-4, 8.4e-4, 8.3e-4])  # a stall far above round-off: not converged
    assert not stalled([0.14, 1.161e-9, 1.1545e-9, 1.1545e-9, 1.1545e-9], 0.14)  # 8e-9 |u|: a frozen iterate


def test_nonfinite_mgrit_stops_at_once():
    """A singular coarse step (Dahlquist, 1 - m h lambda = 0): each state solve stops at its first
    non-finite residual (it ran all -mgrit_max_it cycles on NaN and advised raising it), and the
    layer-serial solve replaces it."""
    p = run_ocnet(["-problem", "dahlquist", "-N", 32, "-lambda", 8, "-mode", "exact", "-mgrit_levels", 2,
                   "-tao_max_it", 2, "-mgrit_monitor", "-quiet"])
    assert "state MGRIT went non-finite (residual nan) in iteration 1; the layer-serial solve replaces it" \
        in p.stderr, p.stderr
    its = [ln.split()[3] for ln in p.stdout.splitlines() if "state mgrit it" in ln]
    assert "max_it" not in p.stderr and its and set(its) == {"0", "1"}, p.stdout + p.stderr  # (0: the start)


def test_fixed_one_shot_says_mgrit_does_not_contract():
    """Fixed one-shot counts on a problem whose MGRIT diverges ended on a line-search failure with a
    note about the inexact gradient only (residuals 597 and 1e6 in the history; new-user tester
    2026-12-07): a warning names the residuals against the iterate's norm, and what may make MGRIT
    contract; a contracting run (Peaks) has none."""
    p = run_ocnet(STIFF + ["-mode", "oneshot", "-oneshot_adapt", 0, "-nan_above", 1e300], check=False)
    assert "ocnet: warning: the fixed one-shot counts' last MGRIT solves are far from converged (state residual" \
        in p.stderr and ("more iterations per solve (-oneshot_state_its, -oneshot_adjoint_its); -mgrit_relax FCF (now "
                         "F) or fewer levels (-mgrit_levels, now 6) may make it contract faster") in p.stderr, p.stderr
    p = run_ocnet(["-mode", "oneshot", "-oneshot_adapt", 0, "-tao_max_it", 20, "-quiet"])
    assert "far from converged" not in p.stderr, p.stderr


def test_fixed_one_shot_convergence_on_diverged_solves_is_a_failure(tmp_path):
    """Fixed one-shot whose MGRIT solves diverge (coarse steps h m = 8 of u' = A u, A about -I):
    J 3.3e62 with a relative gradient below TAO's grtol, so TAO said CONVERGED_GRTOL at iteration 0
    and the run exited 0 against an exact objective of 3.64 (tester 39).  Now one error line, exit
    status 3, summary.json FAILED with TAO's reason kept; on 1 and 2 ranks alike.  Its validation
    solve, as far from converged, gave metrics of no meaning (tester 39: rmse 5.0 against serial's
    0.71): they come from the layer-serial sweep now, with one note."""
    serial = tmp_path / "serial"
    run_ocnet(["-problem", "tests.toy:LinearControl", "-N", 256, "-T", 256, "-tao_max_it", 0, "-quiet",
               "-run_dir", serial])
    exact_row = read_history(serial)[0]
    for n in (None, 2):
        d = tmp_path / f"r{n}"
        p = run_ocnet(["-problem", "tests.toy:LinearControl", "-N", 256, "-T", 256, "-mode", "oneshot",
                       "-oneshot_adapt", 0, "-tao_max_it", 3, "-quiet", "-run_dir", d], nprocs=n, check=False)
        errors = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet: error:")]
        assert p.returncode == 3 and len(errors) == 1 and errors[0].startswith(
            "ocnet: error: TAO's CONVERGED_GRTOL was judged on fixed one-shot evaluations whose MGRIT solves diverged "
            "(state residual") and "is not the exact 3.64397 at the final parameters" in errors[0], p.stderr
        s = json.loads((d / "summary.json").read_text())
        assert (s["reason"], s["tao_reason"], s["exit_status"], s["starts"][-1]["reason"]) == (
            "FAILED", "CONVERGED_GRTOL", 3, "FAILED"), s
        row = read_history(d)[0]
        assert (row["val_rmse"], row["val_state_residual"]) == (exact_row["val_rmse"], "0.0"), (row, exact_row)
        assert s["val_serial_fallbacks"] >= 1 and p.stderr.count("ocnet: note: the one-shot val MGRIT solve ended far "
                                                                "from converged") == 1, p.stderr


def test_monitor_calls_a_blow_up_one():
    """A cycle whose residual grew 1e15-fold was explained by -mgrit_monitor as a warm start's
    first cycle (harmless; tester 43): above 1e3 it says the coarse steps may be unstable."""
    p = run_ocnet(["-problem", "tests.toy:LinearControl", "-N", 256, "-T", 256, "-mode", "exact", "-tao_max_it", 1,
                   "-mgrit_monitor", "-quiet"], check=False)
    rho = lambda ln: ln.split("rho ")[1].split()[0]  # noqa: E731  ('-': not measured)
    grew = [ln for ln in p.stdout.splitlines() if "mgrit it" in ln and rho(ln) != "-" and float(rho(ln)) > 1e3]
    assert grew and all("(blew up: coarse steps h*m too large for the step's stability may cause it" in ln
                        for ln in grew), p.stdout


def test_unstable_fine_step_in_exact_mode_blames_the_model():
    """Exact mode with a fine step that is itself unstable (h * stiffness 2.5): the MGRIT solve's
    warning advised MGRIT settings or -mode serial (tester, 2026-12-07), which fail alike; the
    layer-serial solve that replaces it is non-finite too, so only the model's error is said."""
    args = STIFF + ["-stiffness", 2.5, "-mgrit_levels", 2, "-mgrit_relax", "FCF", "-mode", "exact"]
    for nprocs in (None, 2):
        p = run_ocnet(args, nprocs=nprocs, timeout=300, check=False)
        one_error(p, 3, "non-finite objective (J = nan)")
        assert "warning" not in p.stderr and "-mode serial" not in p.stderr and "try a smaller step (-T, -N)" \
            in p.stderr, p.stderr


def test_full_disk_is_one_line():
    """A full disk (or quota, or a read-only file system) while writing: one line naming the file,
    not an 'internal error' with a traceback (tester 37, a 600 KB tmpfs); a plugin's own OSError
    is still the plugin's failure."""
    import errno

    from ocnet.run.cli import describe
    status, text = describe(OSError(errno.ENOSPC, "No space left on device", "/r/summary.json"), None)
    assert (status, text) == (1, "ocnet: error: No space left on device writing '/r/summary.json': make room (or move "
                                 "the run folder) and -resume (it continues from the last complete checkpoint)")
    assert describe(OSError(errno.EDQUOT, "Disk quota exceeded"), None)[1].startswith(
        "ocnet: error: Disk quota exceeded: make room")


def test_ranks_with_different_options_are_one_line():
    """An MPMD command line whose ranks got other options (`mpiexec -n 1 ocnet A : -n 1 ocnet B`)
    ended in a segmentation fault or a hang (tester 37): one line, exit 2, on every rank."""
    import subprocess

    from tests.conftest import ROOT, mpiexec_prefix
    ocnet = [sys.executable, "-m", "ocnet", "-problem", "peaks", "-tao_max_it", "2", "-quiet"]
    cmd = mpiexec_prefix(1) + ocnet + ["-N", "8", ":", "-n", "1"] + ocnet + ["-N", "16"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    one_error(p, 2, "the ranks were given different options (rank 1's differ from rank 0's)")


def test_help_version_and_petsc_options_spellings():
    """-h is -help (it ran a default training, tester 38), -version prints the versions, and
    PETSC_OPTIONS gets the command line's spelling checks (--N 4 there trained with N 32)."""
    p = run_ocnet(["-h"])
    assert p.stdout.startswith("ocnet: layer-parallel") and "-problem <peaks>" in p.stdout and " it " not in p.stdout
    p = run_ocnet(["-version"])
    assert p.stdout.startswith("ocnet ") and "petsc4py" in p.stdout, p.stdout
    one_error(run_ocnet(["-N", 4, "-tao_max_it", 1], env={"PETSC_OPTIONS": "--N 4"}, check=False), 2,
              "PETSC_OPTIONS: '--N': options start with one '-'")


def test_bad_value_in_an_options_file_names_it(tmp_path):
    """A value error of an option given in an options file (nested too) names the file and line
    (syntax errors did; value errors named the option only, tester 38)."""
    inner, outer = tmp_path / "inner.opts", tmp_path / "outer.opts"
    inner.write_text("-N 4\n# a comment\n-activation tanhh\n")
    outer.write_text(f"-options_file {inner}\n-tao_max_it 1\n")
    for nprocs in (None, 2):
        one_error(run_ocnet(["-options_file", outer], nprocs=nprocs, check=False), 2,
                  f"option -activation: 'tanhh' is not one of tanh, relu, smoothrelu (given in -options_file "
                  f"'{inner}', line 3)")


def test_view_file_in_a_missing_folder_is_one_line():
    """-log_view :/no/such/folder/x: PETSc opens the file only when it finalises, after the whole
    run, with an error block and exit status 1 (tester 37): one line at the start now."""
    for nprocs in (None, 2):
        p = run_ocnet(["-N", 4, "-tao_max_it", 1, "-quiet", "-log_view", ":/no/such/folder/x.txt"], nprocs=nprocs,
                      check=False)
        one_error(p, 2, "-log_view :/no/such/folder/x.txt: cannot write '/no/such/folder/x.txt'")
        assert "PETSC ERROR" not in p.stderr, p.stderr
