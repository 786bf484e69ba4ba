"""A regression plugin (tests/regress.py: no accuracy, metrics rmse and r2, mini-batches), as a
new-user tester wrote it: what ocnet shows for it, and mini-batches with the optimisers that keep
their own gradient copies (bncg) or none (nm)."""
import json
import re

import numpy as np

import pytest

from tests.conftest import read_history, run_ocnet

REG = ["-problem", "tests.regress:NeuralODERegression", "-N", 16, "-quiet"]


def test_headline_metric_of_a_regression_problem(tmp_path):
    """No accuracy: the progress line, the final line and final_exact show the problem's metrics."""
    p = run_ocnet(REG[:-1] + ["-tao_max_it", 3, "-batch_size", 100, "-run_dir", tmp_path / "r"])
    lines = p.stdout.splitlines()
    assert any(ln.startswith("it    3") and "train rmse" in ln and "val rmse" in ln for ln in lines), p.stdout
    assert "nan" not in p.stdout, p.stdout
    final = json.loads((tmp_path / "r" / "summary.json").read_text())["final_exact"]
    assert {"objective", "train_rmse", "val_rmse", "train_r2", "val_r2"} <= set(final), final
    assert f"val rmse {final['val_rmse']:.6g}" in p.stdout  # (the last row: the batch does not enter val)


def test_headline_metric_without_validation_data(tmp_path):
    """No "val" data set: the progress line, the final line and training.png show the training
    metric (they showed none, and an empty 'accuracy' panel)."""
    from ocnet.run.rundir import headline_metric
    p = run_ocnet(REG[:-1] + ["-problem", "tests.regress:TrainOnly", "-tao_max_it", 3, "-run_dir", tmp_path / "t"],
                  plots=True)
    rows = read_history(tmp_path / "t")
    assert headline_metric(rows) == "rmse" and "val_rmse" not in rows[0], rows[0]
    assert any(ln.startswith("it    3") and "train rmse" in ln for ln in p.stdout.splitlines()), p.stdout
    assert f"train rmse {float(rows[-1]['train_rmse']):.6g}" in p.stdout and "nan" not in p.stdout, p.stdout
    assert (tmp_path / "t" / "training.png").exists()
    assert b"\r" not in (tmp_path / "t" / "history.csv").read_bytes()  # (LF lines: it had CRLF, csv's default)

def test_bncg_with_mini_batches_restarts_its_line_search(tmp_path):
    """bncg keeps its own (unprojected) gradient: its line search on a new batch can start from the
    old batch's direction and fail (before: DIVERGED_LS_FAILURE at iteration 3 for this seed);
    the run restarts at the last accepted point on the current batch and uses its iterations."""
    p = run_ocnet(REG + ["-tao_max_it", 10, "-tao_type", "bncg", "-tao_bncg_type", "gd", "-batch_size", 100,
                         "-seed", 1, "-run_dir", tmp_path / "b"])
    restarts = re.findall(r"line search failed at iteration (\d+) on its mini-batch; restarting there", p.stderr)
    assert restarts, p.stderr
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["reason"] == "DIVERGED_MAXITS" and summary["line_search_restarts"] >= 1, summary
    rows = read_history(tmp_path / "b")
    assert [int(r["iteration"]) for r in rows] == list(range(len(rows))) and len(rows) >= 11  # (bncg: 11 or 12)
    assert int(restarts[0]) < len(rows) - 1


@pytest.mark.parametrize("nprocs", [None, 2])
def test_nelder_mead_with_mini_batches(nprocs):
    """-tao_type nm (no line search object to ask) with -batch_size: runs (asking it crashed)."""
    p = run_ocnet(REG + ["-tao_max_it", 5, "-tao_type", "nm", "-batch_size", 100], nprocs=nprocs, timeout=150)
    assert "TAO nm stopped after 5 iterations" in p.stdout, p.stdout + p.stderr


def test_diverged_run_is_reported(tmp_path):
    """A unit step that blows up ends on TAO's relative test (CONVERGED_GRTOL): one warning says
    the objective rose."""
    p = run_ocnet(REG + ["-tao_max_it", 30, "-tao_type", "bncg", "-tao_bncg_type", "gd", "-tao_ls_type", "unit"])
    assert "ocnet: warning: the objective rose from 5.35836 (iteration 0) to" in p.stderr, p.stderr
    ok = run_ocnet(REG + ["-tao_max_it", 5])
    assert "rose" not in ok.stderr


def test_predict_of_the_wrong_length_is_not_written(tmp_path):
    d = tmp_path / "p"
    p = run_ocnet(REG + ["-problem", "tests.regress:WrongPredictLength", "-tao_max_it", 1, "-predictions",
                         "-run_dir", d])
    assert "predict returned 5 rows for the 1000 samples of 'train': nothing written for it" in p.stderr, p.stderr
    assert not (d / "predictions_train.csv").exists() and not (d / "predictions_val.csv").exists()
    good = run_ocnet(REG + ["-tao_max_it", 1, "-predictions", "-run_dir", tmp_path / "g"])
    assert "predict returned" not in good.stderr
    assert len((tmp_path / "g" / "predictions_val.csv").read_text().splitlines()) == 201  # header + 200
    # the problem's sample_columns go between the index and the prediction; bad ones: one warning each
    p = run_ocnet(REG + ["-problem", "tests.regress:WithSampleColumns", "-tao_max_it", 1, "-predictions",
                         "-run_dir", tmp_path / "c"])
    for k in ("'prediction'", "'short'"):
        assert p.stderr.count(f"sample_columns column {k} of 'val' is not one number per sample (200) under a "
                              "new name: left out") == 1, p.stderr
    # prediction_columns: after the prediction, the same checks (a taken name, not numbers)
    for k in ("'target'", "'text'"):
        assert p.stderr.count(f"prediction_columns column {k} of 'val' is not one number per sample (200) under a "
                              "new name: left out") == 1, p.stderr
    table = np.loadtxt(tmp_path / "c" / "predictions_val.csv", delimiter=",", skiprows=1)
    assert (tmp_path / "c" / "predictions_val.csv").read_text().startswith("sample,target,prediction,double\n")
    assert table.shape == (200, 4) and np.sqrt(np.mean((table[:, 1] - table[:, 2]) ** 2)) == \
        pytest.approx(float(read_history(tmp_path / "c")[-1]["val_rmse"]), rel=1e-12)
    np.testing.assert_array_equal(table[:, 3], 2 * table[:, 2])


def test_array_metric_warns_once(tmp_path):
    p = run_ocnet(REG + ["-problem", "tests.regress:ArrayMetric", "-tao_max_it", 3, "-run_dir", tmp_path / "a"])
    assert p.stderr.count("problem metric 'residuals' is not a number") == 1, p.stderr
    assert p.stderr.count("problem metric 'note' is not a number") == 1, p.stderr  # (a string: internal error)
    row = read_history(tmp_path / "a")[0]
    assert "val_rmse" in row and "val_note" not in row and float(row["val_count"]) == 200, row


@pytest.mark.parametrize("cls,text", [
    ("NoneTerminal", "problem 'odereg': terminal returned NoneType None, expected a float (the loss of this batch)"),
    ("ListMetrics", "problem 'odereg': metrics returned list, expected a dict {name: number}")])
def test_wrong_return_types_are_one_line(cls, text):
    """A plugin method returning the wrong type is one line, exit 2, on 1 and 2 ranks (tester,
    2026-12-07: terminal returning None was an internal error, another one on 2 ranks)."""
    for nprocs in (None, 2):
        p = run_ocnet(REG + ["-problem", f"tests.regress:{cls}", "-tao_max_it", 2], nprocs=nprocs, check=False)
        ours = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet")]
        assert p.returncode == 2 and ours == [f"ocnet: error: {text}"], p.stdout + p.stderr


def test_subset_attribute_none_means_no_mini_batches():
    p = run_ocnet(REG + ["-problem", "tests.regress:SubsetNone", "-batch_size", 10], check=False)
    assert p.returncode == 2 and "-batch_size: problem 'odereg' has no mini-batches" in p.stderr, p.stderr
    assert "internal error" not in p.stderr


def test_bncg_rows_count_iterates(tmp_path):
    """PETSc's bncg reports its first step as iteration 0 again: the history numbers it on (one
    row per iterate, the iteration column strictly increasing), here and on 2 ranks alike."""
    for p in (None, 2):
        run_ocnet(["-N", 8, "-ntrain", 200, "-nval", 50, "-tao_max_it", 3, "-tao_type", "bncg", "-quiet",
                   "-run_dir", tmp_path / f"r{p}"], nprocs=p)
    rows = [read_history(tmp_path / f"r{p}") for p in (None, 2)]
    assert [int(r["iteration"]) for r in rows[0]] == [0, 1, 2, 3, 4]
    assert [r["objective"] for r in rows[1]] == [r["objective"] for r in rows[0]]
    assert len({r["objective"] for r in rows[0]}) == 5  # five iterates


def test_phases_summary_reports_the_headline_metric(tmp_path):
    """runs/scaling.py's validation column comes from phases.summarize: for a problem without
    accuracy it is the problem's first other metric (it was val_accuracy = nan)."""
    from ocnet.perfmodel import phases
    run_ocnet(REG + ["-tao_max_it", 2, "-log_phases", "-run_dir", tmp_path / "p"])
    s = phases.summarize(str(tmp_path / "p"))
    assert s["metric"] == "rmse" and s["val"] == float(read_history(tmp_path / "p")[-1]["val_rmse"]), s
    run_ocnet(["-N", 8, "-tao_max_it", 1, "-quiet", "-log_phases", "-run_dir", tmp_path / "c"])
    s = phases.summarize(str(tmp_path / "c"))
    assert s["metric"] == "accuracy" and 0 <= s["val"] <= 1, s
