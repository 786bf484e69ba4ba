"""-problem classify: users' data files in every format, the split, standardisation, plots, bad input."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io
from petsc4py import PETSc

from ocnet.run.cli import framework_options
from ocnet.base.errors import OcnetError
from ocnet_problems import datafiles
from ocnet_problems.classify import FileClassification
from tests.conftest import ROOT, history_column, read_history, run_ocnet

COMM = PETSc.COMM_WORLD.tompi4py()
NET = ["-problem", "classify", "-N", 4, "-width", 4, "-tao_max_it", 3, "-quiet"]


def blobs(n_per_class=40, nclasses=3, seed=0, shift=(10.0, -5.0)):
    """2-D Gaussian blobs, sorted by class (as the paper's Peaks files are), off-centre and scaled
    so that standardisation matters."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * np.array([[np.cos(a), np.sin(a)] for a in 2 * np.pi * np.arange(nclasses) / nclasses])
    X = np.vstack([c + 0.6 * rng.standard_normal((n_per_class, 2)) for c in centres])
    X = X * [1.0, 20.0] + shift
    y = np.repeat(np.arange(nclasses), n_per_class)
    return X, y


def onehot(y, C):
    return np.eye(C)[y]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same training (120 samples) and validation (60) data in every supported format."""
    d = tmp_path_factory.mktemp("data")
    X, y = blobs(40, seed=0)
    Xv, yv = blobs(20, seed=1)
    f = {}
    np.savez(d / "train.npz", X=X, y=y)
    np.savez(d / "val.npz", X=Xv, y=yv)
    f["npz"] = ["-train_file", d / "train.npz", "-val_file", d / "val.npz"]
    np.save(d / "Xtr.npy", X)
    np.save(d / "ytr.npy", y)
    np.save(d / "Xva.npy", Xv)
    np.save(d / "yva.npy", yv)
    f["npy"] = ["-train_file", d / "Xtr.npy", "-train_labels", d / "ytr.npy",
                "-val_file", d / "Xva.npy", "-val_labels", d / "yva.npy"]
    # CSV: header line, label in the first column
    np.savetxt(d / "train.csv", np.column_stack([y, X]), delimiter=",", header="label,x0,x1", comments="",
               fmt="%.17g")
    np.savetxt(d / "val.csv", np.column_stack([yv, Xv]), delimiter=",", header="label,x0,x1", comments="",
               fmt="%.17g")
    f["csv"] = ["-train_file", d / "train.csv", "-val_file", d / "val.csv", "-skip_rows", 1, "-label_column", 0]
    # the paper's .dat layout: whitespace features, one-hot labels in their own file
    for name, A in (("ftr", X), ("fva", Xv), ("ltr", onehot(y, 3)), ("lva", onehot(yv, 3))):
        np.savetxt(d / f"{name}.dat", A, fmt="%.17g")
    f["dat"] = ["-train_file", d / "ftr.dat", "-train_labels", d / "ltr.dat",
                "-val_file", d / "fva.dat", "-val_labels", d / "lva.dat"]
    # MATLAB: own variable names, 1-based labels as a (1, n) row
    scipy.io.savemat(d / "train.mat", {"feat": X, "cls": (y + 1)[None, :]})
    scipy.io.savemat(d / "val.mat", {"feat": Xv, "cls": (yv + 1)[:, None]})
    f["mat"] = ["-train_file", d / "train.mat", "-val_file", d / "val.mat", "-x_name", "feat", "-y_name", "cls",
                "-label_base", 1]
    f["dir"] = d
    return f


def test_every_format_gives_the_same_run(files, tmp_path):
    ref = None
    for fmt in ("npz", "npy", "csv", "dat", "mat"):
        run_ocnet(NET + files[fmt] + ["-run_dir", tmp_path / fmt])
        J = history_column(tmp_path / fmt)
        assert len(J) == 4
        if ref is None:
            ref = J
        np.testing.assert_array_equal(J, ref, err_msg=fmt)


def test_trains_sorted_file_rank_count_free_with_plots(files, tmp_path):
    """The training file is sorted by class; 30 iterations separate the blobs; 1 and 2 ranks agree."""
    args = ["-problem", "classify", "-N", 6, "-width", 4, "-tao_max_it", 30, "-quiet"] + files["npz"]
    hist = {}
    for p in (1, 2):
        run_ocnet(args + ["-run_dir", tmp_path / f"p{p}"], nprocs=p, plots=p == 2)
        hist[p] = read_history(tmp_path / f"p{p}")
    np.testing.assert_allclose(history_column(tmp_path / "p2"), history_column(tmp_path / "p1"), rtol=1e-10, atol=0)
    assert float(hist[1][-1]["val_accuracy"]) >= 0.95
    for name in ("confusion.png", "decision.png", "history.csv"):
        assert (tmp_path / "p2" / name).is_file(), name


def test_val_fraction_split_is_stratified_and_seeded(files, tmp_path):
    X, y = blobs(40)
    tr, va = datafiles.stratified_split(y, 30, seed=5)
    assert np.bincount(y[va]).tolist() == [10, 10, 10]
    assert np.intersect1d(tr, va).size == 0 and tr.size + va.size == 120
    tr2, va2 = datafiles.stratified_split(y, 30, seed=5)
    assert (va2 == va).all()
    # through the command line: 1 and 2 ranks split alike; no confusion without -val_fraction's val set
    a = NET + ["-train_file", files["dir"] / "train.npz", "-val_fraction", 0.25]
    for p in (1, 2):
        run_ocnet(a + ["-run_dir", tmp_path / f"s{p}"], nprocs=p)
    np.testing.assert_allclose(history_column(tmp_path / "s2"), history_column(tmp_path / "s1"), rtol=1e-10, atol=0)
    assert float(read_history(tmp_path / "s1")[0]["val_accuracy"]) >= 0  # a validation set exists


def test_labels_from_the_wrong_place_are_warned_of(tmp_path):
    """1-based labels without -label_base 1 (class 0 empty) and a feature column read as the labels
    (as many classes as samples) trained silently; now one warning each, naming where the labels
    came from.  The many-class run still writes its plots (confusion.png took > 10 min and 21 GB
    for 1681 classes: its cells' counts and ticks are left out above 30 classes)."""
    X, y = blobs(40)
    np.savez(tmp_path / "one.npz", X=X, y=y + 1)
    p = run_ocnet(NET + ["-train_file", tmp_path / "one.npz", "-tao_max_it", 1])
    assert p.stderr.count("ocnet: warning: class 0 of 0..3 has no training sample (labels from the variable 'y' "
                          "of") == 1 and "labels 1..C need -label_base 1" in p.stderr, p.stderr
    ints = np.abs(X[:, :1] * 10).astype(int)  # a feature column of integers (~150), last: taken for the labels
    np.savetxt(tmp_path / "wrong.csv", np.column_stack([y, X, ints]), delimiter=",", fmt="%g")
    p = run_ocnet(NET + ["-train_file", tmp_path / "wrong.csv", "-tao_max_it", 1, "-run_dir", tmp_path / "w"],
                  plots=True, timeout=300)
    assert f"ocnet: warning: {int(ints.max()) + 1} classes from 120 training samples (labels from the last column " \
           "of" in p.stderr and "is that the label column?" in p.stderr, p.stderr
    assert (tmp_path / "w" / "confusion.png").is_file()
    p = run_ocnet(NET + ["-train_file", tmp_path / "one.npz", "-label_base", 1, "-tao_max_it", 1])
    assert "warning" not in p.stderr, p.stderr


def test_scores_unlabelled_samples(files, tmp_path):
    """-val_unlabelled: a features-only file is scored by a loaded model (1 and 2 ranks, .npz and
    CSV): the predictions of the labelled run, no label column, no validation accuracy; without the
    option, one error line that names it."""
    d = files["dir"]
    run_ocnet(NET + files["npz"] + ["-tao_max_it", 10, "-predictions", "-run_dir", tmp_path / "a"])
    Xv, _ = blobs(20, seed=1)
    np.savez(tmp_path / "new.npz", X=Xv)
    np.savetxt(tmp_path / "new.csv", Xv, delimiter=",")
    known = np.loadtxt(tmp_path / "a" / "predictions_val.csv", delimiter=",", skiprows=1)
    score = ["-load", tmp_path / "a", "-train_file", d / "train.npz", "-tao_max_it", 0, "-predictions",
             "-val_unlabelled"]
    for p, f in ((1, "new.npz"), (2, "new.csv")):
        out = run_ocnet(score + ["-val_file", tmp_path / f, "-run_dir", tmp_path / f"s{p}"], nprocs=p)
        text = (tmp_path / f"s{p}" / "predictions_val.csv").read_text()
        assert text.startswith("sample,prediction,p_0,"), text
        np.testing.assert_array_equal(np.loadtxt(text.splitlines()[1:], delimiter=","), np.delete(known, 1, axis=1))
        assert np.isnan(float(read_history(tmp_path / f"s{p}")[0]["val_accuracy"]))
        assert "val nan" not in out.stdout and "val accuracy" not in out.stdout, out.stdout
    # a training file with only some of the classes (the model's count is saved, not 0: automatic)
    two = blobs(40)[1] < 2
    np.savez(tmp_path / "two.npz", X=blobs(40)[0][two], y=blobs(40)[1][two])
    run_ocnet(score[:2] + ["-train_file", tmp_path / "two.npz"] + score[4:] + ["-val_file", tmp_path / "new.npz",
                                                                              "-run_dir", tmp_path / "two"])
    text = (tmp_path / "two" / "predictions_val.csv").read_text()
    np.testing.assert_array_equal(np.loadtxt(text.splitlines()[1:], delimiter=","), np.delete(known, 1, axis=1))
    # a training file of other features than the model's: the error names the model's training file
    # (it blamed the new samples, which fitted the model: tester 48)
    X2, y2 = blobs(40)
    np.savez(tmp_path / "wide.npz", X=np.hstack([X2, X2]), y=y2)
    p = run_ocnet(score[:2] + ["-train_file", tmp_path / "wide.npz"] + score[4:] + ["-val_file", tmp_path / "new.npz",
                                                                                   "-run_dir", tmp_path / "w"],
                  check=False)
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet: error")]
    assert p.returncode == 2 and len(errs) == 1 and errs[0].endswith(
        f"(the loaded model was trained with -train_file {d / 'train.npz'} (now {tmp_path / 'wide.npz'}))"), p.stderr
    # without -predictions nothing is written: said (testers, 2026-12-07)
    p = run_ocnet(score[:-2] + ["-val_unlabelled", "-val_file", tmp_path / "new.npz"])
    assert "ocnet: warning: -val_unlabelled without -predictions: the new samples are scored but no prediction is " \
        "written" in p.stderr, p.stderr
    # a stand-in training file with more classes than the model: the message says what it stands in for
    np.savez(tmp_path / "four.npz", X=blobs(40)[0], y=np.arange(120) % 4)
    p = run_ocnet(score[:2] + ["-train_file", tmp_path / "four.npz"] + score[4:] + ["-val_file", tmp_path / "new.npz",
                                                                               "-run_dir", tmp_path / "four"],
                  check=False)
    assert p.returncode == 2 and "out of range of -nclasses 3 (the loaded model's class count: with -load the " \
        "training file only stands in for the training data; give one whose labels are within 0..2)" in p.stderr, \
        p.stderr
    # in-process (docs/user/run-folders.md): the loaded model scores a numpy array of new samples
    from ocnet.base.grid import LayerGrid
    from ocnet.optim.objective import ReducedObjective
    from ocnet.run.rundir import load_params, saved_meta
    meta = saved_meta(str(tmp_path / "a"), COMM)
    problem = FileClassification(meta["options"], COMM)
    problem.set_model_state(meta["model_state"])
    obj = ReducedObjective(LayerGrid.from_comm(meta["options"]["N"], meta["options"]["T"], COMM), problem, COMM)
    x = obj.design.create_vec(replicated=True)
    load_params(str(tmp_path / "a"), x, meta, COMM)
    new = problem.classification(Xv)
    assert not new.labelled
    bad = Xv.copy()
    bad[1, 1] = np.nan  # (it was scored: class 0)
    for X, text in ((bad, "features hold NaN or Inf (row 1, column 1"), (Xv[:, 0], "has shape (60,), the model"),
                    (Xv.T, "the model takes (samples, 2) features (transposed?)"), (Xv[:, [0, 1, 1]], "(60, 3)")):
        with pytest.raises(OcnetError, match=re.escape(text)):
            problem.classification(X)
    outputs, _ = obj.forward_outputs(x, new, problem.predict)
    np.testing.assert_array_equal(outputs, known[:, 2])
    for f in ("new.npz", "new.csv"):
        p = run_ocnet(NET + ["-train_file", d / "train.npz", "-val_file", tmp_path / f], check=False)
        assert p.returncode == 2 and p.stderr.strip().endswith("features without labels: -val_unlabelled"), p.stderr
    p = run_ocnet(NET + ["-train_file", d / "train.npz", "-val_unlabelled"], check=False)
    assert p.returncode == 2 and p.stderr.strip() == "ocnet: error: -val_unlabelled needs -val_file", p.stderr


def test_header_in_one_file_only_is_warned_of(tmp_path, capsys):
    """-skip_rows applies to every text file: one without the header line lost its first sample
    silently; now a warning names the file and the line, and a real header is not warned of."""
    X, y = blobs(5)
    table = np.column_stack([X, y])
    np.savetxt(tmp_path / "head.csv", table, delimiter=",", header="x0,x1,label", comments="", fmt="%.17g")
    np.savetxt(tmp_path / "bare.csv", table, delimiter=",", fmt="%.17g")
    np.savetxt(tmp_path / "bare.dat", table, fmt="%.17g")
    Xh, _ = datafiles.read_labelled(str(tmp_path / "head.csv"), skip_rows=1)
    assert Xh.shape == (15, 2) and capsys.readouterr().err == ""
    for name in ("bare.csv", "bare.dat"):
        Xb, _ = datafiles.read_labelled(str(tmp_path / name), skip_rows=1, what="-val_file")
        err = capsys.readouterr().err
        assert Xb.shape == (14, 2) and err.startswith(f"ocnet: warning: -val_file: -skip_rows 1 skips line 1 of "
                                                      f"'{tmp_path / name}', which reads as data"), err


def test_labels_file_beside_a_keyed_files_labels_is_warned_of(tmp_path, capsys):
    """-train_labels with a .npz/.mat features file that holds its own labels replaced them
    silently; now one warning names both (the labels file still wins), none without the clash."""
    import scipy.io
    X, y = blobs(5)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    scipy.io.savemat(tmp_path / "d.mat", {"X": X, "y": y})
    np.savez(tmp_path / "x.npz", X=X)
    np.save(tmp_path / "y.npy", 2 - y)
    for name in ("d.npz", "d.mat"):
        _, got = datafiles.read_labelled(str(tmp_path / name), str(tmp_path / "y.npy"))
        err = capsys.readouterr().err
        assert np.array_equal(got, 2 - y) and err == (
            f"ocnet: warning: -train_labels '{tmp_path / 'y.npy'}' replaces the labels 'y' that -train_file "
            f"'{tmp_path / name}' holds too (give one of them)\n"), err
    datafiles.read_labelled(str(tmp_path / "x.npz"), str(tmp_path / "y.npy"))
    datafiles.read_labelled(str(tmp_path / "d.npz"), str(tmp_path / "y.npy"), y_name="labels")
    assert capsys.readouterr().err == ""


def test_load_without_a_training_file_names_the_runs(files, tmp_path):
    """-load R -tao_max_it 0 without -train_file said only '-problem classify needs -train_file'
    (tester 42): the error names the loaded run's file (-load does not take data options over)."""
    run_ocnet(NET + files["npz"] + ["-run_dir", tmp_path / "r"])
    p = run_ocnet(["-load", tmp_path / "r", "-tao_max_it", 0, "-quiet"], check=False)
    train = files["npz"][1]
    assert p.returncode == 2 and p.stderr.strip() == (
        "ocnet: error: -problem classify needs -train_file (see docs/user/data.md) (the loaded run's: -train_file "
        f"{train}; -load does not take data options over)"), p.stderr


def test_resume_refuses_a_data_file_changed_in_place(tmp_path):
    """A training file overwritten in place (same path, other data) resumed silently (tester 40):
    -resume now compares its size and SHA-256 with those recorded at the start and refuses, on 1 and
    2 ranks; the restored file, or a symbolic link to a copy, resumes."""
    X, y = blobs(20)
    data = tmp_path / "train.npz"
    np.savez(data, X=X, y=y)
    run = tmp_path / "run"
    run_ocnet(NET + ["-train_file", data, "-val_fraction", 0.25, "-run_dir", run])
    saved = data.read_bytes()
    np.savez(data, X=2 * X, y=y)
    for nprocs in (None, 2):
        p = run_ocnet(["-resume", run, "-tao_max_it", 5], nprocs=nprocs, check=False)
        assert p.returncode == 2 and f"ocnet: error: -resume: the data changed since the run started: -train_file " \
            f"'{data}' (the same size" in p.stderr and f"-load {run} -run_dir NEW" in p.stderr, p.stderr
    (tmp_path / "copy.npz").write_bytes(saved)
    data.unlink()
    data.symlink_to(tmp_path / "copy.npz")
    run_ocnet(["-resume", run, "-tao_max_it", 5])
    assert read_history(run)[-1]["iteration"] == "5"


def test_layout_options_no_file_uses_are_reported(files, tmp_path):
    """-label_column with .npz files (and the other layout options where no file read uses them)
    was ignored silently: one warning line each; those a file uses are not warned of."""
    d = files["dir"]
    p = run_ocnet(NET + files["npz"] + ["-label_column", 0, "-skip_rows", 1, "-tao_max_it", 1])
    assert "ocnet: warning: -label_column 0 is not used: labels come from a labels file or a .npz/.mat variable" \
        in p.stderr and "ocnet: warning: -skip_rows 1 is not used: no text file is read" in p.stderr, p.stderr
    p = run_ocnet(NET + files["csv"] + ["-tao_max_it", 1])
    assert "warning" not in p.stderr, p.stderr
    unused = FileClassification.unused_layout_options
    base = dict(_problem_values(), train_file="a.csv", label_column=0, skip_rows=1, x_name="F", y_name="l")
    assert unused(base) == ["-x_name F is not used: no .npz/.mat features file is read",
                            "-y_name l is not used: no .npz/.mat file holds the labels"]
    assert unused(dict(base, train_labels="y.mat", x_name="X")) == [
        "-label_column 0 is not used: labels come from a labels file or a .npz/.mat variable"]
    assert unused(dict(base, train_file="a.npy", x_name="X", y_name="y", skip_rows=0)) == []


def test_load_keeps_the_trained_standardisation(files, tmp_path):
    """-load evaluates with the statistics the parameters were trained with, saved in params.json,
    even when the training file now is another one (other mean and std): the validation objective
    and accuracy of the trained run are reproduced."""
    d = files["dir"]
    run_ocnet(NET + files["npz"] + ["-tao_max_it", 10, "-run_dir", tmp_path / "a"])
    X, y = blobs(40, seed=0)
    np.savez(tmp_path / "other.npz", X=X[::2] * 2.0 + 7.0, y=y[::2])
    args = ["-problem", "classify", "-N", 4, "-width", 4, "-quiet", "-tao_max_it", 0, "-val_file", d / "val.npz",
            "-load", tmp_path / "a"]
    run_ocnet(args + ["-train_file", tmp_path / "other.npz", "-run_dir", tmp_path / "b"])
    last, again = read_history(tmp_path / "a")[-1], read_history(tmp_path / "b")[-1]
    assert again["val_accuracy"] == last["val_accuracy"]
    p = _problem(train_file=str(tmp_path / "other.npz"))
    state = p.model_state()
    assert not np.allclose(state["mean"], X.mean(0))
    p.set_model_state({"mean": X.mean(0).tolist(), "scale": X.std(0).tolist()})
    np.testing.assert_allclose(p.datasets["train"].X, ((X[::2] * 2.0 + 7.0 - X.mean(0)) / X.std(0)).T, rtol=1e-12)
    with pytest.raises(OcnetError, match="trained on 3 features"):
        p.set_model_state({"mean": [0, 0, 0], "scale": [1, 1, 1]})


def _problem_values():
    opts = framework_options()
    FileClassification.declare_options(opts)
    return {o.name: o.default for o in opts.options}


def _problem(**over):
    return FileClassification(dict(_problem_values(), **over), COMM)


def test_standardisation_from_training_statistics_only(files):
    d = files["dir"]
    p = _problem(train_file=str(d / "train.npz"), val_file=str(d / "val.npz"))
    Ztr, Zva = p.datasets["train"].X, p.datasets["val"].X
    assert Ztr.shape == (2, 120) and Zva.shape == (2, 60)
    np.testing.assert_allclose(Ztr.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(Ztr.std(axis=1), 1, rtol=1e-12)
    X, _ = blobs(40, seed=0)
    Xv, _ = blobs(20, seed=1)
    np.testing.assert_allclose(Zva, ((Xv - X.mean(0)) / X.std(0)).T, rtol=1e-12)
    raw = _problem(train_file=str(d / "train.npz"), standardize=False)
    np.testing.assert_array_equal(raw.datasets["train"].X, X.T)
    assert set(raw.datasets) == {"train"} and raw.nclasses == 3 and raw.nin == 2


def _write_bad(d):
    X, y = blobs(10)
    np.savez(d / "ok.npz", X=X, y=y)
    np.savetxt(d / "header.csv", np.column_stack([X, y]), delimiter=",", header="x0,x1,label", comments="")
    np.save(d / "X.npy", X)
    np.save(d / "y_short.npy", y[:-1])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    np.savez(d / "nan.npz", X=Xn, y=y)
    Xi = X.copy()
    Xi[5, 0] = np.inf
    np.savez(d / "inf.npz", X=Xi, y=y)
    np.savez(d / "frac.npz", X=X, y=y + 0.5)
    np.savez(d / "neg.npz", X=X, y=y - 1)
    np.savez(d / "one.npz", X=X, y=np.zeros_like(y))
    np.savez(d / "wide.npz", X=np.hstack([X, X]), y=y)
    np.savez(d / "big.npz", X=X, y=np.where(y == 2, 7, y))
    lab = onehot(y, 3)
    lab[4] = [1, 1, 0]
    np.savetxt(d / "notonehot.dat", lab)
    np.savetxt(d / "feat.dat", X)
    scipy.io.savemat(d / "d.mat", {"X": X, "y": y})
    with open(d / "names.csv", "w") as f:  # class names in the label column
        f.write("x0,x1,species\n" + "".join(f"{a},{b},{'abc'[k]}\n" for (a, b), k in zip(X, y)))
    np.savetxt(d / "labelfirst.csv", np.column_stack([y, X]), delimiter=",")  # the labels in column 1
    # damaged or mislabelled binary files (internal errors with tracebacks: tester, 2026-12-07)
    for ext in ("npz", "npy", "mat"):
        (d / f"empty.{ext}").write_bytes(b"")
    (d / "trunc.npz").write_bytes((d / "ok.npz").read_bytes()[:300])
    (d / "script.npz").write_text("print('hello')\n")
    (d / "text.mat").write_text("hello world\n" * 20)
    np.savetxt(d / "pipes.csv", np.column_stack([X, y]), delimiter="|")
    lines = [f"{a},{b},{k}" for (a, b), k in zip(X, y)]
    (d / "ragged.csv").write_text("\n".join(lines[:17] + ["1.0,2.0"] + lines[17:]) + "\n")  # (line 18 short)
    (d / "badval.csv").write_text("\n".join(lines[:4] + ["", "# a comment", "1.0,x,0"] + lines[4:]) + "\n")
    return d


BAD = [
    (["-train_file", "{d}/nosuch.npz"], "-train_file: no file '{d}/nosuch.npz'"),
    (["-train_file", "{d}/ok.npz", "-val_file", "{d}/nosuch.csv"], "-val_file: no file"),
    (["-train_file", "{d}/ok.npz", "-x_name", "features"], "no variable 'features' (option -x_name; the file holds: X, y)"),
    (["-train_file", "{d}/d.mat", "-y_name", "labels"], "no variable 'labels' (option -y_name"),
    (["-train_file", "{d}/X.npy", "-train_labels", "{d}/y_short.npy"], "-train_labels: 29 label rows for 30 feature rows"),
    (["-train_file", "{d}/nan.npz"], "-train_file: features hold NaN or Inf (row 3, column 1; both counted from 0)"),
    (["-train_file", "{d}/ok.npz", "-val_file", "{d}/inf.npz"], "-val_file: features hold NaN or Inf (row 5, column 0; both counted from 0)"),
    (["-train_file", "{d}/frac.npz"], "-train_file: labels must be integers (row 0: 0.5)"),
    (["-train_file", "{d}/neg.npz"], "label -1 (row 0) is out of range: labels start at 0"),
    (["-train_file", "{d}/ok.npz", "-nclasses", 2], "training label 2 (row 20) is out of range of -nclasses 2"),
    (["-train_file", "{d}/ok.npz", "-val_file", "{d}/big.npz"], "validation label 7 (row 20) is out of range of the training classes 0..2"),
    (["-train_file", "{d}/feat.dat", "-train_labels", "{d}/notonehot.dat"], "-train_labels: labels of 3 columns are not one-hot (row 4)"),
    (["-train_file", "{d}/one.npz"], "the training labels hold a single class (0)"),
    (["-train_file", "{d}/ok.npz", "-val_fraction", 0.01], "the split leaves 30 training and 0 validation samples"),
    (["-train_file", "{d}/ok.npz", "-val_fraction", 0.05], "cannot split 30 samples stratified by class"),
    (["-train_file", "{d}/ok.npz", "-val_fraction", 1.0], "option -val_fraction: 1.0 is out of range, must be in [0,1)"),
    (["-train_file", "{d}/ok.npz", "-val_file", "{d}/wide.npz"], "validation features have 4 columns, training features 2"),
    ([], "-problem classify needs -train_file"),
    (["-train_flie", "{d}/ok.npz"], "needs -train_file (see docs/user/data.md) (given: -train_flie; a misspelling "
     "of -train_file?)"),
    (["-train_file", "{d}/header.csv"], "cannot read '{d}/header.csv': line 1, field 1: 'x0' is not a number (lines "
     "and fields counted from 1, as an editor shows them; a header line: -skip_rows 1"),
    # (numpy's own texts counted rows from 1 in one message and from 0 in the other, and advised usecols)
    (["-train_file", "{d}/ragged.csv"], "cannot read '{d}/ragged.csv': line 18 has 2 fields, the lines before it 3"),
    (["-train_file", "{d}/badval.csv"], "cannot read '{d}/badval.csv': line 7, field 2: 'x' is not a number"),
    (["-train_file", "{d}/header.csv", "-label_column", 0], "-train_file: the first line read is text in every "
     "column ('x0,x1,label'): a header line? -skip_rows 1"),  # (it named the label column only)
    (["-train_file", "{d}/names.csv", "-skip_rows", 1], "-train_file: the label column (3 of 3, counted from 1: "
     "-label_column -1) holds text ('a'): labels must be numbers"),
    (["-train_file", "{d}/labelfirst.csv"], "(the labels are column 3 of 3, counted from 1: -label_column -1, the "
     "last, by default; labels in a file of their own: -train_labels FILE)"),
    (["-train_file", "{d}/empty.npz"], "-train_file: cannot read '{d}/empty.npz': the file is empty"),
    (["-train_file", "{d}/empty.npy", "-train_labels", "{d}/y_short.npy"], "cannot read '{d}/empty.npy': the file is "
     "empty"),
    (["-train_file", "{d}/empty.mat"], "cannot read '{d}/empty.mat': the file is empty"),
    (["-train_file", "{d}/trunc.npz"], "cannot read '{d}/trunc.npz': not a readable .npz file (BadZipFile"),
    (["-train_file", "{d}/script.npz"], "cannot read '{d}/script.npz': not a .npz file (numpy takes it for pickled "
     "data, which is not loaded)"),
    (["-train_file", "{d}/text.mat"], "cannot read '{d}/text.mat': not a readable .mat file"),
    (["-train_file", "{d}/pipes.csv"], "-train_file: the first line read is one column ("),
]


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    return _write_bad(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("nprocs", [None, 2])
@pytest.mark.parametrize("args,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_one_line_nothing_written(bad_dir, tmp_path, args, message, nprocs):
    d = str(bad_dir)
    run = tmp_path / "run"
    p = run_ocnet(NET + [str(a).format(d=d) for a in args] + ["-run_dir", run], nprocs=nprocs, timeout=120,
                  check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    ours = [line for line in (p.stdout + p.stderr).splitlines() if line.startswith("ocnet")]
    assert len(ours) == 1 and ours[0].startswith("ocnet: error: ") and message.format(d=d) in ours[0], p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert not run.exists()


def test_label_forms():
    assert datafiles.as_class_indices(np.array([[0, 1], [1, 0]]), "x").tolist() == [1, 0]
    assert datafiles.as_class_indices(np.array([[2.0], [1.0]]), "x").tolist() == [2, 1]
    assert datafiles.as_class_indices(np.array([3, 1]), "x", base=1).tolist() == [2, 0]
    with pytest.raises(OcnetError, match="not one-hot"):
        datafiles.as_class_indices(np.array([[0.5, 0.5], [1, 0]]), "x")
    with pytest.raises(OcnetError, match="must be integers"):
        datafiles.as_class_indices(np.array([np.nan, 1]), "x")


def test_data_paths_recorded_absolute(tmp_path):
    """File options are recorded as absolute paths (options.txt, params.json), so -resume from
    another folder finds the data (a tester's relative -train_file: 'no file' from elsewhere)."""
    X, y = blobs(10)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "t.npz", X=X, y=y)
    base = [sys.executable, "-m", "ocnet", "-problem", "classify", "-N", 4, "-width", 4, "-val_fraction", 0.3,
            "-quiet", "-run_dir_plots", 0]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    run = lambda args, cwd: subprocess.run([str(a) for a in base + args], cwd=cwd, env=env, capture_output=True,
                                           text=True, timeout=300)
    p = run(["-train_file", "data/t.npz", "-tao_max_it", 2, "-run_dir", "r"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"-train_file {tmp_path / 'data' / 't.npz'}" in (tmp_path / "r" / "options.txt").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = run(["-resume", tmp_path / "r", "-tao_max_it", 4], elsewhere)
    assert p.returncode == 0 and len(read_history(tmp_path / "r")) == 5, p.stderr
    # -load too: a scoring run's options.txt replays from any folder (it was recorded relative)
    p = run(["-train_file", "data/t.npz", "-load", "r", "-tao_max_it", 0, "-run_dir", "s"], tmp_path)
    assert p.returncode == 0 and f"-load {tmp_path / 'r'}\n" in (tmp_path / "s" / "options.txt").read_text()
    p = run(["-options_file", tmp_path / "s" / "options.txt", "-run_dir", "s2"], elsewhere)
    assert p.returncode == 0, p.stderr


def test_semicolon_csv_reads_like_comma_csv(tmp_path):
    """CSV with semicolons (many locales' CSV): read like commas (it was taken for a header, and
    -skip_rows k asked for k + 1, forever: tester, 2026-12-07)."""
    X, y = blobs(10)
    np.savetxt(tmp_path / "c.csv", np.column_stack([X, y]), delimiter=",")
    np.savetxt(tmp_path / "s.csv", np.column_stack([X, y]), delimiter=";")
    for name in ("c", "s"):
        run_ocnet(NET + ["-train_file", tmp_path / f"{name}.csv", "-val_fraction", 0.3,
                         "-run_dir", tmp_path / name])
    np.testing.assert_array_equal(history_column(tmp_path / "c"), history_column(tmp_path / "s"))


def test_load_with_another_class_count_names_only_that(tmp_path):
    """-load with another -nclasses: the error names it and the parameter sizes, not the data
    options that differ as well (a scoring run's own -val_file: any training file serves, tester
    38)."""
    data = "tests/data/blobs.npz"
    run_ocnet(["-problem", "classify", "-train_file", data, "-N", 4, "-tao_max_it", 2, "-quiet", "-run_dir",
               tmp_path / "r"])
    p = run_ocnet(["-problem", "classify", "-load", tmp_path / "r", "-tao_max_it", 0, "-train_file", data,
                   "-val_file", data, "-nclasses", 4, "-quiet"], check=False)
    assert p.returncode == 2 and "-nclasses 3 (now 4)" in p.stderr and "data options" not in p.stderr, p.stderr
