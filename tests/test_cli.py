"""The command line: bad input gives one line and exit 2 on every rank; help; unused options; load."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, read_history, run_ocnet

SMALL = ["-N", 4, "-width", 4, "-ntrain", 100, "-nval", 20, "-tao_max_it", 3, "-quiet"]

BAD = [
    (["-problem", "nosuch"], "unknown problem 'nosuch'"),
    (["-problem", "nosuch.mod:Cls"], "cannot load problem 'nosuch.mod:Cls': No module named 'nosuch'; ocnet imports "
     "it as a Python module: put its folder on PYTHONPATH"),
    (["-problem", "/home/me/plug.py:Cls"], "; give a module name, not a file: -problem module:Class"),
    (["-N", 0], "option -N: 0 is out of range, must be in [1,inf)"),
    (["-N", "abc"], "option -N: expected an integer, got 'abc'"),
    (["-activation", "sigmoid"], "option -activation: 'sigmoid' is not one of"),
    (["-gamma_tik", "x1"], "option -gamma_tik: expected a real number"),
    (["-load", "/nonexistent/run"], "-load: no folder or file '/nonexistent/run'"),
    (["-load", "/"], "-load: no parameter file '/params.petsc' (a run folder with saved parameters"),
    (["-tao_type", "nosuch"], "unknown TAO type 'nosuch'"),
    (["-tao_type", "pounders"], "TAO type 'pounders' needs what ocnet does not provide"),  # (it crashed: SEGV)
    (["-tao_type", "nls"], "TAO type 'nls' needs what ocnet does not provide (a Hessian"),
    (["-tao_max_it", -3], "option -tao_max_it: -3 is out of range, must be in [0,inf)"),
    # (PETSc took -1 for its 'default' and ran with gatol 1e-8, tester 39)
    (["-tao_gatol", -1], "option -tao_gatol: -1 is out of range, must be in [0,inf)"),
    (["-mgrit_levels", 0], "option -mgrit_levels: 0 is out of range, must be in [1,inf)"),
    (["-batch_size", 5000], "-batch_size 5000: must be between 1 and the 100 training samples"),
    (["-mode", "fast"], "option -mode: 'fast' is not one of serial, exact, oneshot"),
    (["-state_mgrit_cfactor", 1], "option -state_mgrit_cfactor: coarsening factors must be >= 2"),
    (["-mgrit_relax", "FF"], "option -mgrit_relax: 'FF' is not one of F, FCF, FCFCF"),
    (["-stop_adjoint_residual", -1e-3], "option -stop_adjoint_residual: -0.001 is out of range"),
    (["-tao_ls_type", "nosuch"], "PETSc: Unable to find requested TaoLineSearch type nosuch"),
]


@pytest.mark.parametrize("nprocs", [None, 2])
@pytest.mark.parametrize("args,message", BAD, ids=[m for _, m in BAD])
def test_bad_input_one_line(args, message, nprocs):
    p = run_ocnet(SMALL + args, nprocs=nprocs, timeout=120, check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    # exactly one line from ocnet (mpiexec may add its own notice about the exit status)
    ours = [line for line in (p.stdout + p.stderr).splitlines() if line.startswith("ocnet")]
    assert len(ours) == 1 and ours[0].startswith("ocnet: error: ") and message in ours[0], p.stderr
    if nprocs is None:
        assert p.stderr.strip() == ours[0]
    assert "Traceback" not in p.stdout + p.stderr


def test_owlqn_without_its_weight_is_warned_of():
    """-tao_type owlqn adds lambda |x|_1 with PETSc's default lambda 100: it zeroed every weight and
    reported CONVERGED_GATOL (testers 39, 40).  One warning; none with -tao_owlqn_lambda given."""
    p = run_ocnet(SMALL + ["-tao_type", "owlqn", "-tao_max_it", 2])
    assert p.stderr.startswith("ocnet: warning: -tao_type owlqn minimises the objective plus lambda |x|_1 over the "
                               "whole design, with PETSc's default lambda 100 (-tao_owlqn_lambda)"), p.stderr
    p = run_ocnet(SMALL + ["-tao_type", "owlqn", "-tao_owlqn_lambda", 0, "-tao_max_it", 2])
    assert "warning" not in p.stderr, p.stderr


def test_seed_with_load_is_reported(tmp_path):
    """-seed draws the initial parameters, which -load replaces: it was ignored silently (tester 40);
    with mini-batches it still draws them, so nothing is said."""
    run_ocnet(SMALL + ["-run_dir", tmp_path / "r"])
    p = run_ocnet(SMALL + ["-load", tmp_path / "r", "-seed", 3])
    assert p.stderr.strip() == (f"ocnet: warning: -seed has no effect with -load (the parameters come from "
                                f"{tmp_path / 'r'}; -seed draws initial parameters and mini-batches)"), p.stderr
    p = run_ocnet(SMALL + ["-load", tmp_path / "r", "-seed", 3, "-batch_size", 50])
    assert "-seed" not in p.stderr, p.stderr
    # the initial weights' scales are training options: they do not make another model (they were
    # compared, and -load refused; tester 43's initial-guess option alike)
    run_ocnet(SMALL + ["-load", tmp_path / "r", "-init_layer", 0.5, "-tao_max_it", 0])


def test_a_tao_option_spelt_right_but_unread_has_no_hint():
    """-tao_bncg_type with lmvm: TAO never reads it; it was reported as a misspelling of -tao_type
    (tester 43, of a problem's -tao_ls_type under -check_adjoint).  Now only at the end, with no hint."""
    p = run_ocnet(SMALL + ["-tao_bncg_type", "gd"])
    assert p.stderr.strip() == "ocnet: warning: option -tao_bncg_type was given but never used", p.stderr


def test_other_frameworks_options_are_reported_at_once_with_what_ocnet_has():
    """-epochs 50 -lr 0.1 (PyTorch habits) trained with neither and were reported only at the run's
    end, with no hint (tester 42): at iteration 0, each with what ocnet has instead."""
    cmd = [sys.executable, "-m", "ocnet"] + [str(a) for a in SMALL] + ["-epochs", "50", "-lr", "0.1", "-cf", "4"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    lines = p.stdout.splitlines()
    early = [ln for ln in lines if ln.endswith("the run goes on without it")]
    assert early == [  # (in alphabetical order) PyMGRIT's / XBraid's names too (tester 45)
                     "ocnet: warning: option -cf was given but is not used (MGRIT's coarsening factor: -mgrit_cfactor "
                     "(one value, or one per level)); the run goes on without it",
                     "ocnet: warning: option -epochs was given but is not used (ocnet counts optimisation iterations: "
                     "-tao_max_it; with -batch_size B an epoch is (training samples) / B of them); the run goes on "
                     "without it",
                     "ocnet: warning: option -lr was given but is not used (TAO's line search chooses each step, there "
                     "is no learning rate: -tao_type, -tao_ls_type); the run goes on without it"], p.stdout
    assert lines.index(early[0]) < next(i for i, ln in enumerate(lines) if ln.startswith("ocnet: peaks")), p.stdout


def test_too_many_ranks():
    p = run_ocnet(["-N", 2, "-width", 2, "-ntrain", 10, "-nval", 0, "-quiet"], nprocs=3, timeout=120, check=False)
    assert p.returncode == 2 and "3 MPI ranks for only 2 layers" in p.stderr


def test_help_lists_options_with_defaults():
    p = run_ocnet(["-help"])
    for text in ("-N <32>", "-activation <smoothrelu>", "-gamma_ddt <1e-05>", "-run_dir", "-problem <peaks>",
                 "-stop_state_residual <0.0>", "-stop_adjoint_residual <0.0>"):
        assert text in p.stdout


def test_help_lists_ocnets_options_and_petsc_help_on_request():
    """-help alone: ocnet's options, not PETSc's 40-line start-up help before them nor its
    -log_view help after them; -help petsc: both."""
    p = run_ocnet(["-help"])
    assert p.stdout.startswith("ocnet: layer-parallel") and "PETSc Release Version" not in p.stdout, p.stdout[:500]
    assert "Viewer (-log_view)" not in p.stdout and p.stdout.rstrip().endswith("ocnet -help petsc)"), p.stdout[-500:]
    p = run_ocnet(["-help", "petsc"])
    assert "PETSc Release Version" in p.stdout and "ocnet: layer-parallel" in p.stdout and "petsc" not in p.stderr


def test_help_does_not_report_the_options_given_with_it():
    p = run_ocnet(["-N", 8, "-width", 4, "-help"])
    assert "-N <32>" in p.stdout and "never used" not in p.stderr, p.stderr


def test_unused_option_reported():
    p = run_ocnet(SMALL + ["-widht", 5, "-zzz", 1])
    assert "option -widht was given but never used (did you mean -width?)" in p.stderr
    assert "option -zzz was given but never used\n" in p.stderr  # nothing close: no hint


def test_misspelt_option_reported_at_the_first_iteration():
    """A near-miss of an option that was read (-tao_max_itt, a PETSc one: no ocnet declaration)
    is reported at iteration 0, not only when the run ends (hours later on a cluster), and so is any
    unread option named like ocnet's own (-mgrit_nu); options read late (-tao_view) or not close
    to any (-zzz) wait for the end."""
    cmd = [sys.executable, "-m", "ocnet", "-N", "8", "-tao_max_it", "3", "-tao_max_itt", "5", "-tao_view", ":/dev/null",
           "-zzz", "1", "-mode", "exact", "-mgrit_nu", "2", "-tao_monitr"]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1"))
    lines = p.stdout.splitlines()
    early = ("ocnet: warning: option -tao_max_itt was given but is not used (did you mean -tao_max_it?); "
             "the run goes on without it")
    assert p.returncode == 0 and lines.count(early) == 1, p.stdout
    first = next(i for i, ln in enumerate(lines) if ln.startswith("it    1"))
    assert lines.index(early) < first, p.stdout
    assert "ocnet: warning: option -tao_max_itt was given but never used (did you mean -tao_max_it?)" in lines[first:]
    assert not any("tao_view" in ln or "zzz" in ln for ln in lines[:first]), p.stdout
    # an unread option in ocnet's own namespaces (-mgrit_, -oneshot_, ...) needs no close match: all
    # of them are read by the first iteration (tester, 2026-12-07: -mgrit_nu said only at the end)
    assert lines.index("ocnet: warning: option -mgrit_nu was given but is not used (no ocnet option has this name: "
                       "-help lists them); the run goes on without it") < first, p.stdout
    # a near-miss of a TAO option that was not given (-tao_monitor: TAO never reads it then) has its
    # hint too, from TAO's common options (tester 39: said at the end only, with no hint)
    assert lines.index("ocnet: warning: option -tao_monitr was given but is not used (did you mean -tao_monitor?); "
                       "the run goes on without it") < first, p.stdout


def test_options_file_and_run_folder_and_load(tmp_path):
    opts = tmp_path / "small.opts"
    opts.write_text("-N 4\n-width 4\n-ntrain 100\n-nval 20\n-tao_max_it 5\n-quiet\n")
    run1 = tmp_path / "run1"
    run_ocnet(["-options_file", opts, "-run_dir", run1], plots=True)
    for f in ("options.txt", "history.csv", "training.png", "decision.png", "params.petsc", "params.json"):
        assert (run1 / f).is_file(), f
    hist = read_history(run1)
    assert list(hist[0])[:6] == ["iteration", "objective", "gradient_norm", "train_accuracy", "val_accuracy", "wall_time"]
    assert int(hist[-1]["iteration"]) == 5
    assert all(float(r["step_length"]) > 0 for r in hist[1:])  # the line search's accepted step
    assert float(hist[0]["step_length"]) == 0  # the starting point: no step (TAO reports its initial 1)
    # evaluation only, on another rank count: the saved design gives the same objective
    run2 = tmp_path / "run2"
    run_ocnet(["-options_file", opts, "-load", run1, "-tao_max_it", 0, "-run_dir", run2], nprocs=2)
    h2 = read_history(run2)
    assert len(h2) == 1
    assert json.loads((run2 / "summary.json").read_text())["reason"] == "EVALUATED"  # (was TAO's ITERATING)
    assert float(h2[0]["objective"]) == pytest.approx(float(hist[-1]["objective"]), rel=1e-12)
    # continue training from the loaded parameters
    run3 = tmp_path / "run3"
    run_ocnet(["-options_file", opts, "-load", run1, "-run_dir", run3])
    assert float(read_history(run3)[-1]["objective"]) < float(hist[-1]["objective"])


def test_options_txt_gives_the_run_again(tmp_path):
    """A run folder's options.txt is an options file: flags bare (they were written '-quiet None',
    which -options_file rejected), without the options ocnet sets for itself."""
    run1 = tmp_path / "r"
    run_ocnet(SMALL + ["-predictions", "-run_dir", run1])
    text = (run1 / "options.txt").read_text()
    assert "-quiet\n" in text and "-predictions\n" in text and "None" not in text, text
    assert "options_left" not in text and "use_gemv" not in text, text
    run_ocnet(["-options_file", run1 / "options.txt", "-load", run1, "-tao_max_it", 0, "-run_dir", tmp_path / "e"])
    assert float(read_history(tmp_path / "e")[0]["objective"]) == float(read_history(run1)[-1]["objective"])


def test_options_txt_replays_safely(tmp_path):
    """options.txt leaves out where the run went (-run_dir, -run_dir_overwrite): replayed without
    -run_dir it writes nothing, rather than overwriting the run it came from; an evaluation's
    -tao_max_it 0 (removed from PETSc's database for TAO) is in it, so its replay evaluates again."""
    run1 = tmp_path / "r"
    run_ocnet(SMALL + ["-run_dir", run1, "-run_dir_overwrite"])
    text = (run1 / "options.txt").read_text()
    assert "-run_dir " not in text and "-run_dir_overwrite" not in text, text
    final = json.loads((run1 / "summary.json").read_text())["final_row"]  # (the last row's numbers)
    last = read_history(run1)[-1]
    assert final["objective"] == float(last["objective"]) and final["val_accuracy"] == float(last["val_accuracy"])
    before = (run1 / "history.csv").read_text()
    p = run_ocnet(["-options_file", run1 / "options.txt", "-tao_max_it", 5])
    assert p.returncode == 0 and (run1 / "history.csv").read_text() == before
    run_ocnet(["-load", run1, "-tao_max_it", 0, "-quiet", "-run_dir", tmp_path / "e"])
    assert "-tao_max_it 0\n" in (tmp_path / "e" / "options.txt").read_text()
    run_ocnet(["-options_file", tmp_path / "e" / "options.txt", "-run_dir", tmp_path / "e2"])
    assert len(read_history(tmp_path / "e2")) == 1


def test_load_takes_the_saved_models_options(tmp_path):
    """-load DIR alone evaluates the saved model: the model options not given come from its
    params.json (one note line lists them); one given otherwise is still a mismatch."""
    run1 = tmp_path / "r"
    run_ocnet(["-N", 6, "-width", 5, "-activation", "tanh", "-ntrain", 100, "-nval", 20, "-tao_max_it", 3, "-quiet",
               "-run_dir", run1])
    p = run_ocnet(["-load", run1, "-tao_max_it", 0, "-ntrain", 100, "-nval", 20, "-run_dir", tmp_path / "e"],
                  nprocs=2)
    assert "ocnet: note: -load: the saved model's options: -problem peaks -N 6 -T 1.0 -activation tanh" in p.stderr
    assert "-width 5" in p.stderr and "-ntrain" not in p.stderr, p.stderr  # (data options are this run's)
    assert float(read_history(tmp_path / "e")[0]["objective"]) == pytest.approx(
        float(read_history(run1)[-1]["objective"]), rel=1e-12)
    p = run_ocnet(["-load", run1, "-tao_max_it", 0, "-width", 6], check=False)
    assert p.returncode == 2 and "holds parameters of another model" in p.stderr and "-width 5 (now 6)" in p.stderr
    assert "parameter sizes per layer / global [" in p.stderr and "-shapes" not in p.stderr, p.stderr
    # another problem: said as such (its options, -N included, were listed as differences)
    p = run_ocnet(["-problem", "heat", "-load", run1, "-tao_max_it", 0], check=False)
    assert p.returncode == 2 and "a model of problem 'peaks' (-problem peaks), this run's is 'heat'" in p.stderr
    assert "-N " not in p.stderr, p.stderr
    # the regularisation weights are training settings, not the model: -load trains on with others
    p = run_ocnet(["-load", run1, "-tao_max_it", 1, "-gamma_tik", 0.5, "-gamma_class", 0.1, "-ntrain", 100,
                   "-nval", 20, "-run_dir", tmp_path / "g"])
    assert "another model" not in p.stderr and len(read_history(tmp_path / "g")) == 2, p.stderr


def test_load_from_another_implementation(tmp_path):
    """A model saved by one implementation loads into another of the same plugin name (a fast
    KernelProblem of a Python plugin): -load takes the saved model's options for it too."""
    run1 = tmp_path / "r"
    run_ocnet(["-problem", "tests.toy:LinearControl", "-N", 8, "-dim", 2, "-tao_max_it", 3, "-quiet", "-run_dir", run1])
    p = run_ocnet(["-problem", "tests.toy_fast:LinearControlFast", "-load", run1, "-tao_max_it", 0,
                   "-run_dir", tmp_path / "e"])
    assert "the saved model's options: -N 8 -T 1.0" in p.stderr and "-dim 2" in p.stderr, p.stderr
    assert float(read_history(tmp_path / "e")[0]["objective"]) == pytest.approx(
        float(read_history(run1)[-1]["objective"]), rel=1e-10)


def test_params_layout_as_documented(tmp_path):
    """params.petsc is [g (G), theta[0..N-1] (N x p)] (docs/user/run-folders.md): with zero initial
    layer weights the layer part of the starting design is 0, the global part (opening, classifier) not."""
    import json

    from petsc4py import PETSc
    run_ocnet(["-N", 4, "-width", 3, "-init_layer", 0, "-tao_max_it", 0, "-quiet", "-run_dir", tmp_path / "r"],
              nprocs=2)
    meta = json.loads((tmp_path / "r" / "params.json").read_text())
    p, G = meta["shapes"]
    a = PETSc.Vec().load(PETSc.Viewer().createBinary(str(tmp_path / "r" / "params.petsc"), "r",
                                                     comm=PETSc.COMM_SELF)).getArray()
    g, theta = a[:G], a[G:].reshape(meta["N"], p)
    assert len(a) == G + 4 * p and np.abs(g).max() > 0 and not theta.any()


def test_load_wrong_size(tmp_path):
    run1 = tmp_path / "r"
    run_ocnet(SMALL + ["-run_dir", run1])
    p = run_ocnet(["-N", 8] + SMALL[2:] + ["-load", run1], check=False)
    assert p.returncode == 2 and "holds parameters of another model: -N 4 (now 8)" in p.stderr


def _params(run):
    """A run folder's params.petsc (PETSc's binary Vec: class id, size, big-endian doubles)."""
    raw = (run / "params.petsc").read_bytes()
    n = int(np.frombuffer(raw[4:8], ">i4")[0])
    return np.frombuffer(raw[8:8 + 8 * n], ">f8")


def test_load_resample_in_depth(tmp_path):
    """-load_resample: a model of N 16 loaded at N 32 (and 8) takes its layers piecewise constant
    in t (32: each layer twice; 8: the second of each pair), on 1 and 2 ranks; without it the
    refusal names the option, and another T stays another model."""
    base = ["-width", 4, "-ntrain", 200, "-nval", 50, "-quiet"]
    run_ocnet(["-N", 16, "-tao_max_it", 4, "-run_dir", tmp_path / "c"] + base)
    p = run_ocnet(["-N", 32, "-tao_max_it", 0, "-load", tmp_path / "c"] + base, check=False)
    assert p.returncode == 2 and p.stderr.strip().endswith(
        "-N 16 (now 32); -load_resample resamples its layers to this -N"), p.stderr
    saved = _params(tmp_path / "c")
    lp, G = json.loads((tmp_path / "c" / "params.json").read_text())["shapes"]
    layers = saved[G:].reshape(16, lp)
    for n, nprocs, want in ((32, None, np.repeat(layers, 2, axis=0)), (32, 2, np.repeat(layers, 2, axis=0)),
                            (8, 2, layers[1::2])):
        d = tmp_path / f"r{n}_{nprocs}"
        run_ocnet(["-N", n, "-tao_max_it", 0, "-load", tmp_path / "c", "-load_resample", "-run_dir", d] + base,
                  nprocs=nprocs)
        got = _params(d)
        np.testing.assert_array_equal(got[:G], saved[:G])
        np.testing.assert_array_equal(got[G:].reshape(n, lp), want)
    p = run_ocnet(["-N", 32, "-T", 2, "-tao_max_it", 0, "-load", tmp_path / "c", "-load_resample"] + base,
                  check=False)
    assert p.returncode == 2 and "-T 1.0 (now 2.0)" in p.stderr and "resamples" not in p.stderr, p.stderr
    p = run_ocnet(["-tao_max_it", 0, "-load_resample"] + base, check=False)
    assert p.returncode == 2 and "-load_resample needs -load" in p.stderr, p.stderr


def test_mgrit_training_matches_serial(tmp_path):
    """Training with an MGRIT state solve to tight tolerance follows the serial history."""
    base = ["-N", 16, "-width", 4, "-ntrain", 200, "-nval", 20, "-tao_max_it", 8, "-quiet"]
    run_ocnet(base + ["-run_dir", tmp_path / "s"])
    run_ocnet(base + ["-run_dir", tmp_path / "m", "-mode", "exact", "-mgrit_levels", 3, "-mgrit_cfactor", 2,
                      "-mgrit_rtol", 1e-14, "-mgrit_atol", 1e-13, "-mgrit_max_it", 50], nprocs=2)
    hs, hm = read_history(tmp_path / "s"), read_history(tmp_path / "m")
    js = np.array([float(r["objective"]) for r in hs])
    jm = np.array([float(r["objective"]) for r in hm])
    np.testing.assert_allclose(jm, js, rtol=1e-8)
    assert float(hm[-1]["state_residual"]) < 1e-10
    assert float(hm[-1]["adjoint_residual"]) < 1e-10


def test_load_with_another_split_warns(tmp_path):
    """digits splits one image set: -load with another -nval may put training images into the
    validation set (a warning); Peaks draws fresh points (none); the same split: none."""
    args = ["-problem", "digits", "-N", 2, "-ntrain", 300, "-nval", 100, "-quiet"]
    run_ocnet(args + ["-tao_max_it", 1, "-run_dir", tmp_path / "d"])
    text = "splits the samples into training and validation sets otherwise than the saved run did"
    p = run_ocnet(args + ["-load", tmp_path / "d", "-tao_max_it", 0, "-nval", 150])
    assert f"ocnet: warning: -load: -nval 100 (now 150) {text}" in p.stderr, p.stderr
    assert text not in run_ocnet(args + ["-load", tmp_path / "d", "-tao_max_it", 0]).stderr
    run_ocnet(SMALL + ["-tao_max_it", 1, "-run_dir", tmp_path / "p"])
    assert text not in run_ocnet(SMALL + ["-load", tmp_path / "p", "-tao_max_it", 0, "-nval", 30]).stderr
    # classify: another -val_fraction re-splits the training file; scoring a new file does not
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", X=rng.standard_normal((60, 2)), y=rng.integers(0, 2, 60))
    cls = ["-problem", "classify", "-train_file", tmp_path / "t.npz", "-N", 2, "-quiet"]
    run_ocnet(cls + ["-val_fraction", 0.2, "-tao_max_it", 1, "-run_dir", tmp_path / "c"])
    load = cls + ["-load", tmp_path / "c", "-tao_max_it", 0]
    assert f"-val_fraction 0.2 (now 0.3) {text}" in run_ocnet(load + ["-val_fraction", 0.3]).stderr
    assert text not in run_ocnet(load + ["-val_file", tmp_path / "t.npz"]).stderr


def test_main_once_per_process(tmp_path):
    """ocnet.run.cli.main from a script: a run, then a second call refused in one line (PETSc
    reads a process's options once), as is a call after petsc4py.PETSc was imported with other
    options."""
    import subprocess
    import sys
    script = ("import sys\nfrom ocnet.run.cli import main\n"
              f"print(main(['ocnet', '-N', '4', '-tao_max_it', '1', '-quiet', '-run_dir', {str(tmp_path / 'a')!r}]))\n"
              "print(main(['ocnet', '-N', '8']))\n")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.stdout.split()[-2:] == ["0", "2"], p.stdout + p.stderr
    assert (tmp_path / "a" / "summary.json").exists()
    assert p.stderr.strip().splitlines()[-1].startswith("ocnet: error: ocnet.run.cli.main: another run already")
    p = subprocess.run([sys.executable, "-c", "from petsc4py import PETSc\nfrom ocnet.run.cli import main\n"
                        "print(main(['ocnet', '-N', '8']))"], capture_output=True, text=True, timeout=300)
    assert p.stdout.split() == ["2"] and "petsc4py.PETSc was initialised before" in p.stderr, p.stdout + p.stderr
    # the same with the script's own command line: PETSc read none of it (imported without init)
    p = subprocess.run([sys.executable, "-c", "import sys\nfrom petsc4py import PETSc\nfrom ocnet.run.cli import main\n"
                        "print(main())", "-N", "8"], capture_output=True, text=True, timeout=300)
    assert p.stdout.split() == ["2"] and "petsc4py.PETSc was initialised before" in p.stderr, p.stdout + p.stderr
    # initialised with other values (not only other names): refused, naming the first difference;
    # the same argv (an options file among it) runs
    script = ("import petsc4py\npetsc4py.init(['ocnet', '-N', '8', '-tao_max_it', '1', '-quiet'])\n"
              "from ocnet.run.cli import main\nprint(main(['ocnet', '-N', '16', '-tao_max_it', '1', '-quiet']))")
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.stdout.split() == ["2"] and "-N 16 (PETSc holds 8)" in p.stderr, p.stdout + p.stderr
    (tmp_path / "o.opts").write_text("-tao_max_it 1\n")
    argv = ["ocnet", "-options_file", str(tmp_path / "o.opts"), "-N", "4", "-quiet"]
    script = f"import petsc4py\npetsc4py.init({argv!r})\nfrom ocnet.run.cli import main\nprint(main({argv!r}))"
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert p.stdout.split()[-1] == "0" and "stopped after 1 iteration " in p.stdout, p.stdout + p.stderr


def test_predictions(tmp_path):
    """-predictions: one row per sample and dataset (the same from a -load on 2 ranks); a problem
    without predict warns; without -run_dir, one error line."""
    run_ocnet(SMALL + ["-predictions", "-run_dir", tmp_path / "a"])
    val = (tmp_path / "a" / "predictions_val.csv").read_text().splitlines()
    probs = [f"p_{k}" for k in range(5)]
    assert val[0] == ",".join(["sample,x,y,label,prediction"] + probs) and len(val) == 1 + 20 and \
        val[5].split(",")[0] == "4", val
    table = np.loadtxt(tmp_path / "a" / "predictions_train.csv", delimiter=",", skiprows=1)
    assert table.shape == (100, 10) and set(table[:, 4]) <= set(range(5))
    # the class probabilities: each row sums to 1 and its largest is the predicted class
    np.testing.assert_allclose(table[:, 5:].sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_array_equal(np.argmax(table[:, 5:], axis=1), table[:, 4])
    # Peaks' generated points, with their true classes: the file is readable without the run
    from problems.peaks import label
    np.testing.assert_array_equal(table[:, 3], label(table[:, 1:3].T))
    hist = read_history(tmp_path / "a")
    assert np.mean(table[:, 3] == table[:, 4]) == float(hist[-1]["train_accuracy"])
    run_ocnet(SMALL + ["-load", tmp_path / "a", "-tao_max_it", 0, "-predictions", "-run_dir", tmp_path / "b"], nprocs=2)
    assert (tmp_path / "b" / "predictions_val.csv").read_text() == "\n".join(val) + "\n"
    p = run_ocnet(["-problem", "heat", "-N", 4, "-tao_max_it", 1, "-quiet", "-predictions", "-run_dir", tmp_path / "h"])
    assert "-predictions: problem 'heat' defines no predict: nothing written" in p.stderr
    p = run_ocnet(SMALL + ["-predictions"], check=False)
    assert p.returncode == 2 and "ocnet: error: -predictions needs -run_dir" in p.stderr


def test_other_metrics_are_history_columns(tmp_path):
    """The toy's metrics besides accuracy (rmse) are recorded as train_rmse and val_rmse."""
    run_ocnet(["-problem", "tests.toy:LinearControl", "-N", 4, "-tao_max_it", 3, "-quiet", "-run_dir", tmp_path / "a"])
    rows = read_history(tmp_path / "a")
    assert all(np.isfinite(float(r["train_rmse"])) and np.isfinite(float(r["val_rmse"])) for r in rows), rows[0]
    assert float(rows[-1]["train_rmse"]) < float(rows[0]["train_rmse"])


def test_dry_run_checks_and_writes_nothing(tmp_path):
    """-dry_run: options, data, problem and TAO settings are checked (2 ranks), nothing is computed
    and the run folder is not made; a bad value is the usual one line, exit 2."""
    run = tmp_path / "r"
    p = run_ocnet(SMALL + ["-mode", "oneshot", "-checkpoint_every", 5, "-run_dir", run, "-dry_run"], nprocs=2)
    assert "ocnet: dry run: options, data and problem 'peaks' (N=4, 2 ranks, -mode oneshot) check out" in p.stdout
    assert not run.exists() and "it    0" not in p.stdout
    for bad, text in ((["-mgrit_cfactor", 1], "option -mgrit_cfactor"), (["-tao_type", "lmvmm"], "lmvmm")):
        p = run_ocnet(SMALL + bad + ["-mode", "oneshot", "-dry_run"], nprocs=2, check=False)
        errs = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet")]
        assert p.returncode == 2 and len(errs) == 1 and text in errs[0], p.stderr
    # what the run would refuse of its folder (read-only): a non-empty folder, one that is not
    # ocnet's for -run_dir_overwrite, a -resume with other settings
    run_ocnet(SMALL + ["-run_dir", run])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    before = sorted(p.name for p in run.iterdir())
    for args, text in ((["-run_dir", run], "is not empty"),
                       (["-run_dir", tmp_path / "mine", "-run_dir_overwrite"], "is not an ocnet run folder"),
                       (["-resume", run, "-N", 8], "holds a run with other settings: -N 4 (now 8)")):
        p = run_ocnet(SMALL + args + ["-dry_run"], check=False)
        assert p.returncode == 2 and text in p.stderr, p.stderr
    run_ocnet(SMALL + ["-resume", run, "-tao_max_it", 6, "-dry_run"])
    assert sorted(p.name for p in run.iterdir()) == before and (tmp_path / "mine" / "notes.txt").exists()


def test_resume_with_other_tao_options(tmp_path):
    """-resume: TAO's tolerances may change (a note; applied), options that only print pass, an
    option that changes the iterates (-tao_ls_type) is refused like any other setting (a tester's
    resume took -tao_ls_type armijo silently, where the docs promised an error)."""
    run = tmp_path / "r"
    run_ocnet(SMALL + ["-tao_max_it", 3, "-run_dir", run])
    p = run_ocnet(["-resume", run, "-tao_ls_type", "armijo", "-tao_max_it", 6], check=False)
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and len(errs) == 1 and "other settings: -tao_ls_type TAO's default (now armijo)" \
        in errs[0], p.stderr
    p = run_ocnet(["-resume", run, "-tao_gatol", 1e3, "-tao_max_it", 6, "-tao_converged_reason"])
    assert "ocnet: note: -resume: -tao_gatol 1000.0 (the run had 1e-6): TAO's stopping test from here on" \
        in p.stderr, p.stderr
    assert "stopped after 3 iterations (CONVERGED_GATOL)" in p.stdout, p.stdout  # (applied: |g| < 1e3 at once)
    assert "-tao_gatol 1000.0" in (run / "options.txt").read_text()

def test_study_script_after_mpi_init(tmp_path):
    """A study script that has initialised MPI (mpi4py, petsc4py, an ocnet import that reads a run
    folder) and then starts a 2-rank run with ocnet.run.launch.mpiexec: the child mpiexec would
    inherit Open MPI's singleton variables and exit 1 without a word; mpiexec() leaves them out."""
    script = f"""
import subprocess, sys
from mpi4py import MPI            # initialises MPI in this process
from ocnet.run.launch import mpiexec
args = {[str(a) for a in SMALL]!r} + ["-run_dir", {str(tmp_path / "r")!r}, "-run_dir_plots", "0"]
p = subprocess.run(mpiexec(2) + [sys.executable, "-m", "ocnet", *args], capture_output=True, text=True)
print("STATUS", p.returncode, p.stderr[-300:])
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert "STATUS 0" in p.stdout, p.stdout + p.stderr
    assert len(read_history(tmp_path / "r")) == 4


def test_one_blas_thread_per_rank_unless_set():
    """ocnet limits numpy/scipy's BLAS and OpenMP pools to one thread per process (its ranks are
    its parallelism; a tester's runs were 3.5 to 37 times slower with OpenBLAS's default threads
    on a loaded 2-core machine), unless the user set a thread count."""
    code = ("from ocnet.base import threads; threads.limit(); import scipy.linalg; "
            "from threadpoolctl import threadpool_info; print(sorted({i['num_threads'] for i in threadpool_info()}))")
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS", "BLIS_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=clean, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "[1]", p.stdout + p.stderr
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                       env=dict(clean, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2"))
    assert p.returncode == 0 and "2" in p.stdout, p.stdout + p.stderr  # the user's choice stands


def test_option_of_another_problem_named_at_iteration_zero():
    """An option of another registered problem (-ntrain given to heat) is named as such at
    iteration 0, not only as 'never used' at the end (a tester believed a run trained on 500
    samples)."""
    p = run_ocnet(["-problem", "heat", "-ntrain", 500, "-tao_max_it", 2])
    lines = [ln for ln in p.stderr.splitlines() if "-ntrain" in ln]
    hint = "(an option of -problem digits, indianpines, mnist, peaks; this run's problem is heat)"
    assert lines == [f"ocnet: warning: option -ntrain was given but is not used {hint}; the run goes on without it",
                     f"ocnet: warning: option -ntrain was given but never used {hint}"], p.stderr
    assert p.stdout.index("it    0") < p.stdout.index("it    2")


def test_tao_type_with_oneshot_tao_is_reported():
    """-oneshot_tao overrides -tao_type: a type given with it went unreported (a resumed one-shot
    TAO run with -tao_type cg continued as TAO python, silently; new-user tester 2026-12-07)."""
    p = run_ocnet(["-N", 8, "-oneshot_tao", "-tao_type", "cg", "-tao_max_it", 1, "-quiet"])
    assert p.stderr.count("ocnet: warning: -tao_type cg has no effect with -oneshot_tao") == 1, p.stderr
    assert "TAO python stopped after 1 iteration (" in p.stdout, p.stdout
    p = run_ocnet(["-N", 8, "-oneshot_tao", "-tao_max_it", 1, "-quiet"])
    assert "warning" not in p.stderr, p.stderr


def test_mgrit_view_shows_the_adaptive_range():
    """-mgrit_view in adaptive one-shot printed max_it 2 / 1 only, read as fixed counts (new-user
    tester, 2026-12-07): the range per evaluation is shown beside the starting count."""
    p = run_ocnet(["-N", 32, "-mode", "oneshot", "-mgrit_view", "-tao_max_it", 0, "-quiet",
                   "-oneshot_state_its_max", 6])
    assert "max_it 2 (adaptive one-shot: the start; 2..6 per evaluation, -oneshot_state_its_min/max)," in p.stdout
    assert "max_it 1 (adaptive one-shot: the start; 1..8 per evaluation, -oneshot_adjoint_its_min/max)," in p.stdout
    p = run_ocnet(["-N", 32, "-mode", "oneshot", "-oneshot_adapt", 0, "-mgrit_view", "-tao_max_it", 0, "-quiet"])
    assert "V-cycles, max_it 2, rtol 0" in p.stdout and "adaptive" not in p.stdout, p.stdout


def test_choices_are_case_insensitive():
    """-mgrit_relax fcf was refused (only FCF); a choice given in another case is the choice."""
    from ocnet.base.errors import OcnetError
    from ocnet.base.options import OptionSet
    opts = OptionSet().add("relax", str, "F", "", choices=("F", "FCF", "FCFCF"))
    o = opts.options[0]
    assert o.parse("fcf") == "FCF" and o.parse("FCF") == "FCF"
    with pytest.raises(OcnetError, match="'ff' is not one of F, FCF, FCFCF"):
        o.parse("ff")


def test_oneshot_tao_options_declared():
    """The one-shot TAO's options (-tao_oneshot_*) were read by OneShot alone: not in -help, no
    bounds checked, and silently ignored without -oneshot_tao (docs auditor, 2026-12-07)."""
    assert "-tao_oneshot_ls_shrink <0.5> (float in (0,1))" in run_ocnet(["-help"]).stdout
    p = run_ocnet(SMALL + ["-tao_oneshot_lbfgs_m", 3])
    assert "ocnet: warning: -tao_oneshot_lbfgs_m has no effect without -oneshot_tao" in p.stderr, p.stderr
    p = run_ocnet(SMALL + ["-oneshot_tao", "-tao_oneshot_lbfgs_m", 3])
    assert "warning" not in p.stderr, p.stderr
    p = run_ocnet(SMALL + ["-oneshot_tao", "-tao_oneshot_ls_shrink", 2], check=False)
    assert p.returncode == 2 and p.stderr.strip() == \
        "ocnet: error: option -tao_oneshot_ls_shrink: 2 is out of range, must be in (0,1)", p.stderr


def test_option_values_for_in_process_use():
    """ocnet.run.cli.option_values: the command line's values (defaults, the problem's
    option_defaults, then the names given, parsed and checked); bad names/values one OcnetError."""
    from ocnet.base.errors import OcnetError
    from ocnet.plugin.loader import load_problem_class
    from ocnet.run.cli import option_values
    v = option_values(load_problem_class("peaks"), N=64, activation="Tanh", gamma_tik="1e-3", mgrit_relax="fcf")
    assert (v["N"], v["activation"], v["gamma_tik"], v["mgrit_relax"], v["T"], v["mode"]) == \
        (64, "tanh", 1e-3, "FCF", 1.0, "serial"), v
    assert option_values(load_problem_class("mnist"))["N"] == 30  # (its option_defaults)
    import numpy as np  # (a sweep over a numpy float array: 16.0 was refused, tester 44)
    assert option_values(load_problem_class("peaks"), N=np.float64(16.0))["N"] == 16
    for given, text in (({"gama_tik": 1}, "'gama_tik' is not an option of problem 'peaks' or of ocnet (did you "
                                          "mean gamma_tik?)"),
                        ({"N": 16.5}, "option -N: expected an integer, got '16.5'"),
                        ({"N": 0}, "option -N: 0 is out of range"), ({"T": "one"}, "expected a real number")):
        with pytest.raises(OcnetError, match=re.escape(text)):
            option_values(load_problem_class("peaks"), **given)


def test_load_names_data_options_left_at_their_defaults(tmp_path):
    """-load R -tao_max_it 0 of a run with -ntrain 120 evaluated the default 5000 samples (another
    objective than the run's last row; tester 46): a note names the option and the run's options
    file, with which the row's objective is reproduced bitwise; a data option given: the data are chosen, no note."""
    run_ocnet(SMALL + ["-ntrain", 120, "-run_dir", tmp_path / "a"])
    p = run_ocnet(["-load", tmp_path / "a", "-tao_max_it", 0, "-quiet"])
    assert "ocnet: note: -load: data options not given take their defaults, not the saved run's: -ntrain 120 (now " \
        f"5000), -nval 20 (now 200); -options_file {tmp_path / 'a' / 'options.txt'} before -load gives the run's own" \
        in p.stderr, p.stderr
    run_ocnet(["-options_file", tmp_path / "a" / "options.txt", "-load", tmp_path / "a", "-tao_max_it", 0, "-quiet",
               "-run_dir", tmp_path / "b"])
    assert read_history(tmp_path / "b")[0]["objective"] == read_history(tmp_path / "a")[-1]["objective"]
    p = run_ocnet(["-load", tmp_path / "a", "-tao_max_it", 0, "-quiet", "-ntrain", 200])
    assert "data options not given" not in p.stderr, p.stderr


def test_regularisation_dominating_the_start_is_noted(tmp_path):
    """A deep ResNet whose starting objective is mostly regularisation (the smoothness term of
    independently drawn layers grows like N^3; a tester's N = 64 ReLU network stayed at 47.5 %):
    one note at iteration 0 naming the options; none at N = 8 or for a problem without -init_layer."""
    p = run_ocnet(["-N", 64, "-ntrain", 50, "-nval", 10, "-tao_max_it", 1, "-quiet"], nprocs=2)
    notes = [ln for ln in p.stderr.splitlines() if "at the starting parameters the regularisation is" in ln]
    assert len(notes) == 1 and "deep networks may train better with a smaller -init_layer or regularisation " \
        "(-gamma_tik, -gamma_ddt): docs/user/resnets.md" in notes[0], p.stderr
    share = float(notes[0].split("(")[1].split(" %")[0])
    assert 75 <= share < 100, notes
    for args in (["-N", 8, "-ntrain", 50, "-nval", 10], ["-problem", "tests.toy:LinearControl", "-N", 16],
                 ["-N", 64, "-ntrain", 50, "-nval", 10, "-gamma_ddt", 0]):  # (no smoothness term to blame)
        p = run_ocnet(args + ["-tao_max_it", 1, "-quiet"])
        assert "regularisation is" not in p.stderr, p.stderr
    # a loaded (trained) model's objective is not a start from drawn weights (tester 48)
    run_ocnet(["-N", 64, "-ntrain", 50, "-nval", 10, "-tao_max_it", 1, "-quiet", "-run_dir", tmp_path / "a"])
    p = run_ocnet(["-options_file", tmp_path / "a" / "options.txt", "-load", tmp_path / "a", "-tao_max_it", 0])
    assert "regularisation is" not in p.stderr, p.stderr


def test_first_steps_of_a_new_user(tmp_path):
    """What a docs-walking tester (49) ran into: ``--help`` was refused (exit 2); ``-problem Peaks``
    was an unknown problem while ``-activation Tanh`` ran; the end-of-run line for an unknown
    -mgrit_* option dropped the reason the iteration-0 line gave; replaying a run's options file
    to evaluate it with -load warned that its -seed had no effect."""
    p = run_ocnet(["--help"])
    assert "ocnet options:" in p.stdout and "-problem" in p.stdout, p.stdout + p.stderr
    run = tmp_path / "r"
    p = run_ocnet(["-problem", "Peaks", "-mgrit_nu", 2, "-run_dir", run] + SMALL)
    assert "-problem peaks" in (run / "options.txt").read_text().splitlines()
    warn = [ln for ln in p.stderr.splitlines() if "-mgrit_nu" in ln]
    assert warn == ["ocnet: warning: option -mgrit_nu was given but is not used (no ocnet option has this name: -help "
                    "lists them); the run goes on without it",
                    "ocnet: warning: option -mgrit_nu was given but never used (no ocnet option has this name: -help "
                    "lists them)"], p.stderr
    # the run's options file given to -check_adjoint (tester 51): one note for its TAO options, no warnings
    chk = run_ocnet(["-options_file", run / "options.txt", "-check_adjoint"])
    note = [ln for ln in chk.stderr.splitlines() if "tao_" in ln]
    assert len(note) == 1 and note[0].startswith("ocnet: note: -check_adjoint runs no optimiser: -tao_gatol, "
                                                 "-tao_max_it, -tao_type have no effect"), chk.stderr
    same = run_ocnet(["-options_file", run / "options.txt", "-load", run, "-tao_max_it", 0, "-quiet"])
    other = run_ocnet(["-load", run, "-seed", 5, "-tao_max_it", 0, "-quiet"])
    assert "-seed has no effect" not in same.stderr, same.stderr
    assert "ocnet: warning: -seed has no effect with -load" in other.stderr, other.stderr


def test_resume_after_the_data_moved_says_how(tmp_path):
    """-resume of a run whose training file was moved (scratch purged): the one line says to restore
    it or leave a symbolic link there (it said only 'no file'; tester 49)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(int))
    run = tmp_path / "r"
    run_ocnet(["-problem", "classify", "-train_file", tmp_path / "d.npz", "-val_fraction", 0.3, "-N", 4,
               "-tao_max_it", 2, "-quiet", "-run_dir", run])
    os.rename(tmp_path / "d.npz", tmp_path / "moved.npz")
    p = run_ocnet(["-resume", run, "-tao_max_it", 4], check=False)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        f"ocnet: error: -train_file: no file '{tmp_path / 'd.npz'}': the run was started on that file; a resumed run "
        "continues on its own data: restore it there, or leave a symbolic link at that path to where it is now "
        "(docs/user/data.md)"], p.stderr
    os.symlink(tmp_path / "moved.npz", tmp_path / "d.npz")
    run_ocnet(["-resume", run, "-tao_max_it", 4])
