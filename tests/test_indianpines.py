"""-problem indianpines on a small generated scene in the standard .mat format (no package, no real data)."""
import numpy as np
import pytest
import scipy.io

from ocnet_problems.indianpines import labelled_pixels
from tests.conftest import read_history, run_ocnet

NET = ["-problem", "indianpines", "-N", 4, "-width", 6, "-T", 2, "-activation", "tanh", "-quiet"]


def scene(rows=14, cols=12, bands=6, seed=0):
    """A cube (rows, cols, bands) uint16 whose spectra depend on the class, and its ground truth
    (0 = unlabelled, classes 1..4) — the layout of Indian_pines_corrected.mat / Indian_pines_gt.mat."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((rows, cols), np.uint8)
    gt[1:7, 1:6], gt[1:7, 6:11], gt[7:13, 1:6], gt[7:13, 6:11] = 1, 2, 3, 4
    gt[rng.random(gt.shape) < 0.1] = 0
    base = rng.uniform(1000, 5000, (5, bands))
    cube = base[gt] + 150 * rng.standard_normal((rows, cols, bands))
    return np.round(cube).astype(np.uint16), gt


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ip")
    cube, gt = scene()
    scipy.io.savemat(d / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube})
    scipy.io.savemat(d / "Indian_pines_gt.mat", {"indian_pines_gt": gt})
    return d


def test_labelled_pixels_column_major():
    cube, gt = scene()
    X, y, pix = labelled_pixels(cube, gt)
    r, c = np.unravel_index(pix, gt.shape, order="F")
    assert (gt[r, c] == y + 1).all() and (X == cube[r, c]).all()
    assert np.all(np.diff(c * gt.shape[0] + r) > 0)  # MATLAB order: down the columns first


def test_trains_rank_count_free_with_class_map(data_dir, tmp_path):
    n = labelled_pixels(*scene())[1].size
    args = NET + ["-data_dir", data_dir, "-ntrain", 60, "-nval", 40, "-tao_max_it", 25]
    for p in (1, 2):
        run_ocnet(args + ["-run_dir", tmp_path / f"p{p}"], nprocs=p, plots=p == 2)
    h1, h2 = read_history(tmp_path / "p1"), read_history(tmp_path / "p2")
    J1 = np.array([float(r["objective"]) for r in h1])
    J2 = np.array([float(r["objective"]) for r in h2])
    np.testing.assert_allclose(J2, J1, rtol=1e-10, atol=0)
    assert n > 100 and float(h1[-1]["val_accuracy"]) >= 0.95
    for name in ("classmap.png", "confusion.png"):
        assert (tmp_path / "p2" / name).is_file()


BAD = [
    (["-data_dir", "{d}/nosuch"], "-data_dir: no folder '{d}/nosuch'"),
    (["-data_dir", "{e}"], "holds neither Indian_pines_corrected.mat nor Indian_pines.mat"),
    (["-data_dir", "{g}"], "holds no Indian_pines_gt.mat"),
    (["-data_dir", "{s}"], "do not fit"),
    (["-data_dir", "{k}"], "no variable 'indian_pines_corrected'"),
    (["-data_dir", "{d}", "-ntrain", 500, "-nval", 40], "500 training + 40 validation samples, but only"),
    (["-data_dir", "{d}", "-ntrain", 0], "option -ntrain: 0 is out of range"),
]


@pytest.fixture(scope="module")
def bad_dirs(data_dir, tmp_path_factory):
    cube, gt = scene()
    root = tmp_path_factory.mktemp("ipbad")
    dirs = {"d": str(data_dir)}
    for key in "egsk":
        (root / key).mkdir()
        dirs[key] = str(root / key)
    scipy.io.savemat(root / "e" / "Indian_pines_gt.mat", {"indian_pines_gt": gt})
    scipy.io.savemat(root / "g" / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube})
    scipy.io.savemat(root / "s" / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube[1:]})
    scipy.io.savemat(root / "s" / "Indian_pines_gt.mat", {"indian_pines_gt": gt})
    scipy.io.savemat(root / "k" / "Indian_pines_corrected.mat", {"cube": cube})
    return dirs


@pytest.mark.parametrize("nprocs", [None, 2])
@pytest.mark.parametrize("args,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_one_line_nothing_written(bad_dirs, tmp_path, args, message, nprocs):
    run = tmp_path / "run"
    p = run_ocnet(NET + [str(a).format(**bad_dirs) for a in args] + ["-run_dir", run], nprocs=nprocs,
                  timeout=120, check=False)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    ours = [line for line in (p.stdout + p.stderr).splitlines() if line.startswith("ocnet")]
    assert len(ours) == 1 and message.format(**bad_dirs) in ours[0], p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert not run.exists()


def test_packaged_scene_matches_the_standard_files(tmp_path):
    """The default data (tensorly's wheel, a declared dependency) is the 145 x 145 x 200 cube with
    10249 labelled pixels in 16 classes; -data_dir reads the same scene from .mat files."""
    from ocnet_problems.indianpines import load_scene

    cube, gt = load_scene()
    assert cube.shape == (145, 145, 200) and gt.shape == (145, 145)
    X, y, _ = labelled_pixels(cube, gt)
    assert X.shape == (10249, 200) and np.bincount(y).size == 16 and y.min() == 0
    scipy.io.savemat(tmp_path / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube.astype(np.uint16)})
    scipy.io.savemat(tmp_path / "Indian_pines_gt.mat", {"indian_pines_gt": gt.astype(np.uint8)})
    cube2, gt2 = load_scene(str(tmp_path))
    assert (cube2 == cube).all() and (gt2 == gt).all()


@pytest.mark.parametrize("nprocs", [None, 2])
def test_check_adjoint_passes(data_dir, nprocs):
    p = run_ocnet(NET + ["-data_dir", data_dir, "-ntrain", 60, "-nval", 40, "-N", 16, "-check_adjoint"], nprocs=nprocs)
    assert "all" in p.stdout and "checks passed" in p.stdout and "FAIL" not in p.stdout


def test_check_adjoint_passes_double_block(data_dir):
    """-block double (the two-layer block from two kernels) on Indian Pines' data."""
    p = run_ocnet(NET + ["-data_dir", data_dir, "-ntrain", 60, "-nval", 40, "-N", 8, "-block", "double",
                        "-hidden_width", 6, "-check_adjoint"], nprocs=2)
    assert "checks passed" in p.stdout and "FAIL" not in p.stdout, p.stdout
