"""-mode serial|exact|oneshot: exact follows serial; every mode is rank-count free."""
import numpy as np
import pytest

from tests.conftest import history_column, read_history, run_ocnet

BASE = ["-N", 24, "-width", 4, "-ntrain", 300, "-nval", 50, "-tao_max_it", 20, "-quiet", "-mgrit_cfactor", 2]


def test_exact_reproduces_serial(tmp_path):
    run_ocnet(BASE + ["-run_dir", tmp_path / "s"])
    run_ocnet(BASE + ["-mode", "exact", "-mgrit_rtol", 1e-12, "-run_dir", tmp_path / "e"], nprocs=2)
    s, e = history_column(tmp_path / "s"), history_column(tmp_path / "e")
    assert len(s) == len(e) == 21
    np.testing.assert_allclose(e, s, rtol=1e-8)
    # validation by MGRIT to tolerance (exact) and by the layer-serial sweep (serial) agree
    np.testing.assert_array_equal(history_column(tmp_path / "e", "val_accuracy"),
                                  history_column(tmp_path / "s", "val_accuracy"))
    assert np.isnan(history_column(tmp_path / "s", "val_state_residual")).all()
    assert (history_column(tmp_path / "e", "val_state_residual") < 1e-8).all()


@pytest.mark.parametrize("mode", ["exact", "oneshot"])
def test_mode_rank_count_free(tmp_path, mode):
    for p in (1, 2, 3):
        run_ocnet(BASE + ["-mode", mode, "-run_dir", tmp_path / f"p{p}"], nprocs=p)
    for column in ("objective", "val_accuracy", "train_accuracy", "val_state_residual"):
        ref = history_column(tmp_path / "p1", column)
        for p in (2, 3):
            np.testing.assert_allclose(history_column(tmp_path / f"p{p}", column), ref, rtol=1e-10, atol=0,
                                       err_msg=column)
    v = history_column(tmp_path / "p1", "val_state_residual")
    if mode == "exact":
        assert (v >= 0.0).all()  # validated through MGRIT
    else:  # adaptive one-shot: layer-serial (nan) at the exact start's iterates (20 %), then MGRIT
        assert np.isnan(v[:4]).all() and (v[5:] >= 0.0).all(), v


def test_oneshot_trains(tmp_path):
    run_ocnet(BASE + ["-mode", "oneshot", "-run_dir", tmp_path / "o"], nprocs=2)
    h = read_history(tmp_path / "o")
    assert float(h[-1]["objective"]) < 0.8 * float(h[0]["objective"])
    assert float(h[-1]["state_residual"]) >= 0.0 and float(h[-1]["adjoint_residual"]) >= 0.0


def test_oneshot_tao_type(tmp_path):
    """The paper's one-shot optimiser (TAO python type): trains, same history on 1 and 2 ranks."""
    args = BASE + ["-mode", "oneshot", "-tao_type", "python", "-tao_python_type", "ocnet.optim.oneshot.OneShot"]
    for p in (1, 2):
        run_ocnet(args + ["-run_dir", tmp_path / f"p{p}"], nprocs=p)
    h1, h2 = history_column(tmp_path / "p1"), history_column(tmp_path / "p2")
    assert len(h1) == 21 and h1[-1] < 0.8 * h1[0]
    np.testing.assert_allclose(h2, h1, rtol=1e-10, atol=0)


def test_oneshot_tao_flag(tmp_path):
    """-oneshot_tao is the same optimiser as -tao_type python -tao_python_type ...OneShot, and
    overrides another -tao_type (e.g. one from an options file)."""
    base = BASE + ["-mode", "oneshot", "-tao_max_it", 4]
    run_ocnet(base + ["-oneshot_tao", "-run_dir", tmp_path / "flag"])
    run_ocnet(base + ["-tao_type", "python", "-tao_python_type", "ocnet.optim.oneshot.OneShot", "-run_dir", tmp_path / "type"])
    assert np.array_equal(history_column(tmp_path / "flag"), history_column(tmp_path / "type"))
    p = run_ocnet(base + ["-oneshot_tao", "-tao_type", "lmvm", "-run_dir", tmp_path / "over"])
    assert "TAO python" in p.stdout
    assert np.array_equal(history_column(tmp_path / "over"), history_column(tmp_path / "type"))


@pytest.mark.parametrize("mode", ["serial", "oneshot"])
def test_mini_batches(tmp_path, mode):
    """-batch_size: trains, and the run is the same on 1 and 2 ranks."""
    args = BASE + ["-mode", mode, "-batch_size", 64]
    for p in (1, 2):
        run_ocnet(args + ["-run_dir", tmp_path / f"p{p}"], nprocs=p)
    h1, h2 = history_column(tmp_path / "p1"), history_column(tmp_path / "p2")
    assert h1[-1] < h1[0]
    np.testing.assert_allclose(h2, h1, rtol=1e-10, atol=0)


BATCH = ["-N", 8, "-ntrain", 1000, "-nval", 200, "-batch_size", 100, "-tao_max_it", 25, "-quiet"]


@pytest.mark.parametrize("opt", [[], ["-tao_type", "bncg", "-tao_bncg_type", "gd"], ["-mode", "oneshot", "-oneshot_tao"]],
                         ids=["lmvm", "gd", "oneshot_tao"])
def test_mini_batches_with_line_searches(tmp_path, opt):
    """Mini-batches with TAO's line searches: every line search compares values of one batch
    (Trainer._refresh_batch), so the run uses its iterations (before: DIVERGED_LS_FAILURE at
    iteration 9 with lmvm, 3 with gd, 0 with the one-shot TAO) and its objective falls."""
    p = run_ocnet(BATCH + opt + ["-run_dir", tmp_path / "b"])
    h = read_history(tmp_path / "b")
    assert int(h[-1]["iteration"]) == 25 + (opt[1:2] == ["bncg"]), (h[-1]["iteration"], p.stderr)  # (bncg: 0-26)
    assert "LS_FAILURE" not in p.stdout + p.stderr
    assert float(h[-1]["objective"]) < 0.5 * float(h[0]["objective"])


def test_mini_batch_of_all_data_is_the_full_batch_run(tmp_path):
    """-batch_size = all training samples: the batch machinery (a new batch and its re-evaluation
    after each iteration, the objective's shift) leaves the run bitwise the full-data run's."""
    run_ocnet(BASE + ["-run_dir", tmp_path / "full"])
    run_ocnet(BASE + ["-batch_size", 300, "-run_dir", tmp_path / "all"])
    for column in ("objective", "gradient_norm", "val_accuracy"):
        np.testing.assert_array_equal(history_column(tmp_path / "all", column),
                                      history_column(tmp_path / "full", column), err_msg=column)


def test_warm_skip_option():
    """-state_mgrit_warm_skip: only the state solves skip the first down-cycle's relaxation (off
    by default); exact mode reports it unused."""
    args = ["-problem", "dahlquist", "-N", 64, "-mgrit_view", "-tao_max_it", 1, "-quiet"]
    note = "no relaxation on the first down-cycle of each fixed-cycle solve"
    lines = run_ocnet(args + ["-mode", "oneshot", "-state_mgrit_warm_skip", 1]).stdout.splitlines()
    state = [ln for ln in lines if note in ln]
    assert len(state) == 1 and "state" in state[0].lower(), lines
    off = run_ocnet(args + ["-mode", "oneshot"]).stdout
    assert note not in off
    p = run_ocnet(args + ["-mode", "exact", "-mgrit_warm_skip", 1])
    assert "-mgrit_warm_skip has no effect in -mode exact" in p.stderr, p.stderr


DOUBLE = ["-block", "double", "-activation", "tanh", "-hidden_width", 6]


def test_double_block_exact_reproduces_serial(tmp_path):
    """-block double (forms generated from two kernels): exact = serial (one level bitwise: test_mgrit)."""
    run_ocnet(BASE + DOUBLE + ["-run_dir", tmp_path / "s"])
    run_ocnet(BASE + DOUBLE + ["-mode", "exact", "-mgrit_rtol", 1e-12, "-run_dir", tmp_path / "e"], nprocs=2)
    s, e = history_column(tmp_path / "s"), history_column(tmp_path / "e")
    assert len(s) == len(e) == 21 and s[-1] < 0.9 * s[0]
    np.testing.assert_allclose(e, s, rtol=1e-8)


@pytest.mark.parametrize("mode", ["serial", "oneshot"])
def test_double_block_rank_count_free(tmp_path, mode):
    args = BASE + DOUBLE + ["-mode", mode, "-tao_max_it", 8]
    for p in (1, 3):
        run_ocnet(args + ["-run_dir", tmp_path / f"p{p}"], nprocs=p)
    np.testing.assert_allclose(history_column(tmp_path / "p3"), history_column(tmp_path / "p1"), rtol=1e-10, atol=0)
