"""Checkpoint/restart: a run killed with SIGKILL (after a checkpoint, or while writing one) and
resumed ends with parameters bitwise identical to an uninterrupted run on the same rank count,
and resumed on another rank count it continues the uninterrupted run to round-off."""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from ocnet.base.grid import LayerGrid, block_bounds
from ocnet.optim import checkpoint
from tests.conftest import read_history, run_ocnet

ARGS = ["-N", 12, "-width", 4, "-ntrain", 200, "-nval", 20, "-tao_max_it", 14, "-quiet", "-mode", "oneshot",
        "-mgrit_cfactor", 2, "-tao_type", "python", "-tao_python_type", "ocnet.optim.oneshot.OneShot",
        "-checkpoint_every", 3]


# (the third: killed within the exact start of adaptive one-shot, the first 7 of the 14 iterations;
# the fourth: mini-batches, whose objective shift (Trainer._refresh_batch) the checkpoint keeps)
@pytest.mark.parametrize("nprocs,kill,extra", [(1, "after:6", []), (2, "during:9", []),
                                               (1, "after:3", ["-oneshot_exact_start", 0.5]),
                                               (2, "after:6", ["-batch_size", 50]),
                                               (1, "after:9", ["-oneshot_calibrate", 2])])
def test_kill_and_resume_bitwise(tmp_path, nprocs, kill, extra, monkeypatch):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    args = ARGS + extra
    run_ocnet(args + ["-run_dir", ref], nprocs=nprocs)
    monkeypatch.setenv("OCNET_TEST_KILL", kill)
    p = run_ocnet(args + ["-run_dir", cut], nprocs=nprocs, check=False)
    # (summary.json: this start's RUNNING, not an earlier ending a job script would take as the run's)
    killed = json.loads((cut / "summary.json").read_text())
    assert p.returncode != 0 and killed["reason"] == "RUNNING" and killed["starts"][-1]["reason"] == "RUNNING"
    its = int(kill.split(":")[1])
    resumed_at = its if kill.startswith("after") else its - 3  # killed mid-write: the previous one
    # the killed folder: the parameters of the last complete save, the rows appended up to the kill
    assert json.loads((cut / "params.json").read_text())["iteration"] == resumed_at
    assert int(read_history(cut)[-1]["iteration"]) == its
    assert "gradient_error_estimate" in read_history(cut)[-1]  # adaptive one-shot's columns, as it went
    # warm starts: state, adjoint and the validation solve's; no training-data evaluation
    # trajectory (its metrics come from the state: allocating one cost 6 GB per rank on MNIST)
    import numpy as np
    with np.load(cut / "checkpoint" / "rank0.npz") as z:
        assert {"state", "adjoint", "eval_val"} <= set(z.files)
        assert ("eval_train" in z.files) == ("-batch_size" in extra)  # (a batch's state is not the training set's)
    monkeypatch.delenv("OCNET_TEST_KILL")
    out = run_ocnet(args + ["-resume", cut, "-log_phases"], nprocs=nprocs).stdout
    assert f"resuming {cut} at iteration {resumed_at}\n" in out  # (the one-shot TAO: bitwise, no note)
    assert [r["iteration"] for r in read_history(cut)] == [str(i) for i in range(15)]
    # wall_time continues from the checkpoint's row (it restarted at 0); phases.json: this start's
    walls = [float(r["wall_time"]) for r in read_history(cut)]
    assert all(b >= a for a, b in zip(walls, walls[1:])), walls
    assert json.loads((cut / "phases.json").read_text())["iterations"] == 14 - resumed_at
    assert (ref / "params.petsc").read_bytes() == (cut / "params.petsc").read_bytes()
    # the summary's totals count the whole run, as the uninterrupted one's (and the history's columns)
    starts = json.loads((cut / "summary.json").read_text())["starts"]
    assert [s["reason"] for s in starts] == ["KILLED", "DIVERGED_MAXITS"]
    # the killed start reached its last history row (it said where it began: tester 46)
    assert [(s["from_iteration"], s["iterations"]) for s in starts] == [(0, its), (resumed_at, 14)], starts
    totals = {d: json.loads((d / "summary.json").read_text())["adaptive_oneshot"] for d in (ref, cut)}
    assert totals[cut] == totals[ref], totals
    assert totals[cut]["state_its"] == sum(int(r["state_mgrit_its_total"]) for r in read_history(cut))


def test_resume_after_an_upgrade(tmp_path):
    """A checkpoint saved before an option existed (its meta lacks it) resumes: the option's value
    applies from there, and a note says so; a changed option is still refused."""
    d = tmp_path / "r"
    run_ocnet(ARGS + ["-run_dir", d, "-tao_max_it", 4])
    meta_file = next(d.glob("checkpoint*/history.json"))
    saved = json.loads(meta_file.read_text())
    del saved["meta"]["options"]["oneshot_exact_start"]
    meta_file.write_text(json.dumps(saved))
    p = run_ocnet(ARGS + ["-resume", d, "-tao_max_it", 6])
    assert "ocnet: note: -resume: -oneshot_exact_start 0.2 did not exist when the saved run started" in p.stderr, p.stderr
    assert [r["iteration"] for r in read_history(d)] == [str(i) for i in range(7)]
    p = run_ocnet(ARGS + ["-resume", d, "-tao_max_it", 8, "-oneshot_kappa", 0.1], check=False)
    assert p.returncode == 2 and "other settings: -oneshot_kappa 0.2 (now 0.1)" in p.stderr, p.stderr


def test_resume_takes_the_runs_own_options(tmp_path):
    """-resume R alone continues the run with the options it was started with (R/options.txt),
    one note; it compared them with the defaults before (-problem classify (now peaks) ...)."""
    d = tmp_path / "r"
    run_ocnet(ARGS + ["-run_dir", d, "-tao_max_it", 4])
    full = read_history(d)
    p = run_ocnet(["-resume", d, "-tao_max_it", 6], check=False)
    assert p.returncode == 0, p.stderr
    assert [r["iteration"] for r in read_history(d)] == [str(i) for i in range(7)]
    assert read_history(d)[:5] == full
    p = run_ocnet(["-resume", d, "-tao_max_it", 7, "-mgrit_monitor"])  # (only prints: it was refused)
    assert "mgrit it" in p.stdout and [r["iteration"] for r in read_history(d)] == [str(i) for i in range(8)]
    # summary.json's starts: each start's first and last iteration, ranks and ending (tester 37: a
    # resumed run's summary did not say that it had been stopped and resumed)
    starts = json.loads((d / "summary.json").read_text())["starts"]
    assert [(s["from_iteration"], s["iterations"], s["reason"]) for s in starts] == \
        [(0, 4, "DIVERGED_MAXITS"), (4, 6, "DIVERGED_MAXITS"), (6, 7, "DIVERGED_MAXITS")], starts
    p = run_ocnet(["-resume", d, "-tao_max_it", 8, "-N", 16], check=False)  # given: still compared
    assert p.returncode == 2 and "other settings: -N 12 (now 16)" in p.stderr and "options.txt" in p.stderr
    assert "its default changed" not in p.stderr, p.stderr
    # options.txt after a resume: a failed start leaves it as it was (a bad viewer made every later
    # -resume fail); of the options given, where the run ends is kept, what only prints is not
    before = (d / "options.txt").read_text()
    p = run_ocnet(["-resume", d, "-tao_max_it", 9, "-tao_monitor", 0], check=False)
    assert p.returncode == 2 and (d / "options.txt").read_text() == before, p.stderr
    run_ocnet(["-resume", d, "-tao_max_it", 9, "-tao_monitor", "-log_phases", "-widht", 3, "-checkpoint_every", 2,
               "-quiet", 0])
    kept = (d / "options.txt").read_text().splitlines()
    assert "-tao_max_it 9" in kept and "-checkpoint_every 2" in kept and "-quiet" in kept, kept
    assert not any(k.split()[0] in ("-tao_monitor", "-log_phases", "-widht", "-mgrit_monitor") for k in kept), kept
    # a misspelt TAO name is a misspelling, not a changed setting; -checkpoint 0 given replaces the
    # recorded -checkpoint_every (they conflicted), and controls saving only: not a difference
    p = run_ocnet(["-resume", d, "-tao_max_it", 10, "-tao_ls_typ", "armijo", "-checkpoint", 0])
    assert "other settings" not in p.stderr and "option -tao_ls_typ was given but is not used" in p.stderr, p.stderr
    assert "-checkpoint 0" in (d / "options.txt").read_text().splitlines()


def test_resume_after_ocnet_changed_a_default(tmp_path):
    """A run started when one of ocnet's own defaults was another (-oneshot_calibrate was 0 until
    2026-12-08; it is recorded in the checkpoint, not in options.txt): a plain -resume continues
    with the run's own value, one note, and ends where the uninterrupted run ends (it was refused
    with 'give -oneshot_calibrate 0': a requeued job failed after an upgrade); given now, the
    option is compared as before."""
    ref, d = tmp_path / "ref", tmp_path / "r"
    run_ocnet(ARGS + ["-oneshot_calibrate", 0, "-run_dir", ref, "-tao_max_it", 10])
    run_ocnet(ARGS + ["-oneshot_calibrate", 0, "-run_dir", d, "-tao_max_it", 6])
    opts = d / "options.txt"  # (as a run of the older ocnet recorded it: the default not written)
    opts.write_text("".join(f"{ln}\n" for ln in opts.read_text().splitlines() if not ln.startswith("-oneshot_calib")))
    p = run_ocnet(["-resume", d, "-tao_max_it", 10, "-quiet", 0], check=False)
    assert p.returncode == 0, p.stderr
    assert "ocnet: note: -resume: the run's own value of -oneshot_calibrate 0 (now 10): ocnet's default " \
        "changed since the run started" in p.stderr, p.stderr
    assert "calibrations" not in json.loads((d / "summary.json").read_text())["adaptive_oneshot"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]
    assert strip(read_history(d)) == strip(read_history(ref))
    p = run_ocnet(["-resume", d, "-tao_max_it", 12, "-oneshot_calibrate", 10], check=False)
    assert p.returncode == 2 and "other settings: -oneshot_calibrate 0 (now 10)" in p.stderr, p.stderr
    p = run_ocnet(["-resume", d, "-tao_max_it", 12, "-quiet", "maybe"], check=False)  # (-quiet read for the notes
    # first: PETSc's 'Unknown logical value' was the line)
    assert p.returncode == 2 and "option -quiet: expected true/false, got 'maybe'" in p.stderr, p.stderr


def test_resume_after_a_default_changed(tmp_path, monkeypatch):
    """A plugin's default edited between a run and its -resume: refused, and the line says that the
    option was neither given nor recorded, so its default changed, and what to give (it said that
    options not given are the run's own, from options.txt, where it was not; tester 46)."""
    d = tmp_path / "r"
    args = ["-problem", "tests.defaults_plugin:EditedDefault", "-N", 4, "-quiet"]
    run_ocnet(args + ["-run_dir", d, "-tao_max_it", 2])
    monkeypatch.setenv("OCNET_TEST_RATE", "0.5")
    p = run_ocnet(["-resume", d, "-tao_max_it", 3], check=False)
    assert p.returncode == 2 and "other settings: -rate 0.3 (now 0.5) (not given, and not in options.txt: its " \
        "default changed since the run started, an edited plugin or another ocnet; give -rate 0.3)" in p.stderr, \
        p.stderr
    run_ocnet(["-resume", d, "-tao_max_it", 3, "-rate", 0.3])


def test_resume_errors(tmp_path):
    p = run_ocnet(ARGS + ["-resume", tmp_path / "nothing"], check=False)
    assert p.returncode == 2 and "-resume: no run folder" in p.stderr
    (tmp_path / "empty").mkdir()
    p = run_ocnet(ARGS + ["-resume", tmp_path / "empty"], check=False)
    assert p.returncode == 2 and "is not an ocnet run folder (no .ocnet-run marker, no checkpoint)" in p.stderr, p.stderr
    run_ocnet(ARGS + ["-run_dir", tmp_path / "r", "-tao_max_it", 4])
    (tmp_path / "r" / "checkpoint" / "rank0.npz").write_bytes(b"garbage")
    p = run_ocnet(ARGS + ["-resume", tmp_path / "r"], check=False)
    assert p.returncode == 2 and "corrupt checkpoint" in p.stderr and "Traceback" not in p.stderr
    p = run_ocnet(ARGS + ["-resume", tmp_path / "r", "-N", 16], check=False)
    assert p.returncode == 2 and "other settings: -N 12 (now 16);" in p.stderr, p.stderr  # said once
    p = run_ocnet(ARGS + ["-resume", tmp_path / "r", "-load", tmp_path / "r"], check=False)  # (ignored, recorded)
    assert p.returncode == 2 and "-load with -resume: a resumed run continues from its checkpoint" in p.stderr
    p = run_ocnet(["-problem", "heat", "-N", 12, "-resume", tmp_path / "r"], check=False)
    assert p.returncode == 2 and "other settings: -problem peaks (now heat);" in p.stderr, p.stderr
    p = run_ocnet(ARGS[:ARGS.index("-tao_type")] + ["-tao_type", "lmvm", "-resume", tmp_path / "r"], check=False)
    assert p.returncode == 2 and "other settings: -tao_type python (now lmvm);" in p.stderr, p.stderr
    (tmp_path / "r" / "options.txt").rename(tmp_path / "options.txt")  # (the refusal named the missing file)
    p = run_ocnet(ARGS + ["-resume", tmp_path / "r", "-N", 16], check=False)
    assert p.returncode == 2 and "options.txt is missing: options not given take their defaults" in p.stderr, p.stderr
    (tmp_path / "options.txt").rename(tmp_path / "r" / "options.txt")
    (tmp_path / "r" / "checkpoint" / "history.json").rename(tmp_path / "history.json")  # (named rank0.npz)
    p = run_ocnet(ARGS + ["-resume", tmp_path / "r"], check=False)
    assert p.returncode == 2 and "corrupt checkpoint" in p.stderr and ": history.json: [Errno 2]" in p.stderr, p.stderr
    (tmp_path / "history.json").rename(tmp_path / "r" / "checkpoint" / "history.json")
    (tmp_path / "r" / "checkpoint" / "COMPLETE").unlink()  # damaged: never overwritten by a fresh start
    rows = (tmp_path / "r" / "history.csv").read_text()
    p = run_ocnet(ARGS + ["-resume", tmp_path / "r"], check=False)
    assert p.returncode == 2 and "is incomplete (no COMPLETE marker" in p.stderr, p.stderr
    assert (tmp_path / "r" / "history.csv").read_text() == rows
    p = run_ocnet(ARGS[:-2] + ["-checkpoint_every", 2], check=False)
    assert p.returncode == 2 and "-checkpoint_every needs -run_dir" in p.stderr


@pytest.mark.parametrize("damage", ["garbage", "missing", "truncated"])
def test_resume_with_one_rank_file_damaged_ends_every_rank(tmp_path, damage):
    """2 ranks, rank 1's file damaged: one line, exit 2 (before: rank 1 waited in allgather while
    rank 0 allocated the validation solve's Vecs, and both spun until killed)."""
    run_ocnet(ARGS + ["-run_dir", tmp_path / "r", "-tao_max_it", 4], nprocs=2)
    f = tmp_path / "r" / "checkpoint" / "rank1.npz"
    if damage == "garbage":
        f.write_bytes(b"junk\n")
    elif damage == "missing":
        f.unlink()
    else:
        f.write_bytes(f.read_bytes()[:200])
    p = run_ocnet(ARGS + ["-resume", tmp_path / "r"], nprocs=2, check=False, timeout=60)
    assert p.returncode == 2 and "corrupt checkpoint" in p.stderr and "rank1.npz" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def _saved_files(N, P, G, p, U, L, x, S, replicated):
    """What P ranks save of global arrays: forward trajectory U (N+1, s) as rows u[n0..n1], the
    adjoint L (N+1, s) back to front (rows lambda[n1..n0]), the design x (G + N p,) and pairs
    S (m, G + N p): replicated whole, distributed as [g on rank 0] + the block's layers."""
    files = {}
    for r in range(P):
        n0, n1 = block_bounds(N, P, r)
        part = lambda a: a.copy() if replicated else \
            np.concatenate([a[..., :G]] * (r == 0) + [a[..., G + n0 * p:G + n1 * p]], axis=-1)
        files[r] = {"state": U[n0:n1 + 1], "adjoint": L[n0:n1 + 1][::-1], checkpoint.OPT + "x": part(x),
                    checkpoint.OPT + "S": part(S), checkpoint.OPT + "f": np.array(2.5)}
        if r > 0:  # (replicated layout: only rank 0 keeps the optimiser's memory)
            del files[r][checkpoint.OPT + "f"]
    return files


@pytest.mark.parametrize("replicated", [False, True])
@pytest.mark.parametrize("P,Q", [(3, 2), (2, 3), (3, 5), (4, 1), (1, 4)])
def test_redistribute_takes_each_row_from_its_owner(P, Q, replicated):
    """Arrays saved by P ranks, read back for each of Q ranks: every row and layer is the global
    array's (halo rows too), the rank-0-only entries as saved; the replicated layout's design
    arrays whole."""
    N, G, p, s = 13, 3, 2, 4
    rng = np.random.default_rng(0)
    U, L = rng.standard_normal((N + 1, s)), rng.standard_normal((N + 1, s))
    x, S = rng.standard_normal(G + N * p), rng.standard_normal((2, G + N * p))
    saved = _saved_files(N, P, G, p, U, L, x, S, replicated)
    design = SimpleNamespace(G=G, p=p, global_size=G + N * p)
    for q in range(Q):
        grid = LayerGrid(N, 1.0, Q, q)
        need = checkpoint._overlapping(N, P, grid)
        out = checkpoint.redistribute({r: saved[r] for r in need}, N, P, grid, design, replicated)
        np.testing.assert_array_equal(out["state"], U[grid.n0:grid.n1 + 1])
        np.testing.assert_array_equal(out["adjoint"][::-1], L[grid.n0:grid.n1 + 1])
        mine = [slice(0, G)] * grid.first + [slice(G + grid.n0 * p, G + grid.n1 * p)]
        np.testing.assert_array_equal(out[checkpoint.OPT + "x"],
                                      x if replicated else np.concatenate([x[k] for k in mine]))
        np.testing.assert_array_equal(out[checkpoint.OPT + "S"],
                                      S if replicated else np.concatenate([S[:, k] for k in mine], axis=1))
        assert (checkpoint.OPT + "f" in out) == (0 in need)
        assert len(need) <= -(-P // Q) + 2  # (the overlapping blocks only, not every file)


@pytest.mark.parametrize("layout,saved,resumed,other", [("replicated", 3, 2, False), ("distributed", 2, 3, False),
                                                        ("replicated", 2, 2, True), ("distributed", 3, 2, True)])
def test_resume_on_another_rank_count(tmp_path, layout, saved, resumed, other, monkeypatch):
    """Killed on one rank count, resumed on another: the objective history is the uninterrupted
    1-rank run's to 1e-10 (one-shot TAO, whose resume is exact: warm starts and L-BFGS pairs
    redistributed), with one note; also resumed with the other -design_layout (refused before: the
    optimiser's vectors are converted, gathered or split)."""
    args = ARGS + ["-design_layout", layout]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    run_ocnet(args + ["-run_dir", ref])
    monkeypatch.setenv("OCNET_TEST_KILL", "after:6")
    assert run_ocnet(args + ["-run_dir", cut], nprocs=saved, check=False).returncode != 0
    monkeypatch.delenv("OCNET_TEST_KILL")
    new = {"replicated": "distributed", "distributed": "replicated"}[layout] if other else layout
    p = run_ocnet(ARGS + ["-design_layout", new, "-resume", cut], nprocs=resumed)
    notes = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet: note: -resume")]
    expected = ([f"the checkpoint was written by {saved} ranks; its warm starts and optimiser state are "
                 f"redistributed over {resumed}"] if saved != resumed else []) + \
        ([f"its optimiser vectors, saved with -design_layout {layout}, are converted to this run's {new} layout"]
         if other else [])
    assert notes == ["ocnet: note: -resume: " + "; ".join(expected)], p.stderr
    a, b = read_history(ref), read_history(cut)
    assert [r["iteration"] for r in b] == [str(i) for i in range(15)]
    np.testing.assert_allclose([float(r["objective"]) for r in b], [float(r["objective"]) for r in a],
                               rtol=1e-10, atol=0)
    assert len(list((cut / "checkpoint").glob("rank*.npz"))) == resumed


def test_resumed_oneshot_tao_rejects_nonfinite_trials(tmp_path):
    """A resumed one-shot TAO run took its first line-search trial for a solve's first evaluation:
    a non-finite trial stopped it (exit 3) where the uninterrupted run shrinks the step
    (verification tester, 2026-12-07; toy: J = inf once g is 0.3 from its start).  Finished at
    iterations 1..3 and continued to 6, the history is the uninterrupted run's."""
    args = ["-problem", "tests.faulty:Fenced", "-radius", 0.3, "-N", 8, "-oneshot_tao", "-mode", "oneshot",
            "-mgrit_cfactor", 2, "-quiet", "-oneshot_exact_start", 0]
    run_ocnet(args + ["-tao_max_it", 6, "-run_dir", tmp_path / "ref"])
    ref = read_history(tmp_path / "ref")
    assert json.loads((tmp_path / "ref" / "summary.json").read_text())["rejected_trial_points"] > 0
    for k in (1, 2, 3):
        run_ocnet(args + ["-tao_max_it", k, "-run_dir", tmp_path / f"k{k}"])
        run_ocnet(args + ["-tao_max_it", 6, "-resume", tmp_path / f"k{k}"])
        assert [(r["iteration"], r["objective"]) for r in read_history(tmp_path / f"k{k}")] == \
            [(r["iteration"], r["objective"]) for r in ref]


def test_resume_with_no_iterations_left_changes_nothing(tmp_path):
    """A finished run resumed with a -tao_max_it it has already reached: its summary said
    DIVERGED_MAXITS afterwards, losing that it had converged, and options.txt recorded the smaller
    budget (testers, 2026-12-07): one note, exit 0, the folder as it was (any optimiser)."""
    for name, extra in (("lmvm", []), ("oneshot_tao", ["-mode", "oneshot", "-oneshot_tao", "-mgrit_cfactor", 2])):
        d = tmp_path / name
        run_ocnet(["-problem", "tests.toy:LinearControl", "-N", 8, "-quiet", "-tao_gatol", "1e-3", "-run_dir", d]
                  + extra)
        before = {f: (d / f).read_bytes() for f in ("summary.json", "options.txt", "history.csv")}
        its = json.loads(before["summary.json"])["iterations"]
        assert json.loads(before["summary.json"])["reason"] == "CONVERGED_GATOL" and its > 2, before
        p = run_ocnet(["-tao_max_it", 2, "-resume", d])
        assert p.stderr.strip() == (f"ocnet: note: -resume: the run is at iteration {its}, -tao_max_it 2: no "
                                    "iterations left (give a larger -tao_max_it to continue); nothing was run or "
                                    "changed"), p.stderr
        assert {f: (d / f).read_bytes() for f in before} == before
    # killed while writing its final outputs (no summary of its end): -resume writes them, runs nothing
    (d / "summary.json").unlink()
    p = run_ocnet(["-resume", d])
    summary = json.loads((d / "summary.json").read_text())
    assert summary["iterations"] == its and (d / "history.csv").read_bytes() == before["history.csv"], summary


def test_killed_in_the_final_outputs_is_resumed_to_write_them(tmp_path):
    """SIGKILL while the problem's figures and predictions were written came after summary.json
    had recorded the run's end: -resume then said 'nothing was run or changed' and the outputs
    stayed missing (tester 37).  summary.json now comes last: it says RUNNING after such a kill,
    and -resume writes the outputs, running no iteration."""
    d = tmp_path / "run"
    args = ["-problem", "peaks", "-N", 8, "-width", 4, "-ntrain", 100, "-nval", 20, "-tao_max_it", 3, "-quiet",
            "-predictions"]
    p = run_ocnet(args + ["-run_dir", d], plots=True, check=False, env={"OCNET_TEST_SIGNAL": "plot:0:KILL"})
    assert p.returncode != 0 and json.loads((d / "summary.json").read_text())["reason"] == "RUNNING", p.stderr
    assert not (d / "predictions_train.csv").exists() and (d / "training.png").exists()
    rows = (d / "history.csv").read_bytes()
    p = run_ocnet(["-resume", d], plots=True)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["reason"] == "DIVERGED_MAXITS" and summary["iterations"] == 3, summary
    assert (d / "predictions_train.csv").exists() and (d / "predictions_val.csv").exists()
    assert (d / "decision.png").exists() and (d / "history.csv").read_bytes() == rows


def test_resume_of_a_run_killed_before_its_first_save(tmp_path):
    """A run killed (SIGKILL) before its first checkpoint: -resume -dry_run said only 'check out'
    (tester 39); now it says the run would start from the beginning, and -resume does so."""
    d = tmp_path / "run"
    args = ["-problem", "tests.toy:LinearControl", "-N", 8, "-quiet", "-tao_max_it", 4]
    p = run_ocnet(args + ["-run_dir", d], check=False, env={"OCNET_TEST_SIGNAL": "row:1:KILL"})
    assert p.returncode != 0 and not (d / "checkpoint").exists(), p.stderr
    p = run_ocnet(["-resume", d, "-dry_run"])
    assert p.stdout.startswith(f"ocnet: dry run: {d} holds no checkpoint yet: -resume would start the run from the "
                               "beginning\nocnet: dry run: options, data and problem"), p.stdout
    # (another -N given: the run starts again with it, and options.txt is this run's, whole: it kept
    # -N 8, and a plain -resume then refused the folder as another run's, tester 51)
    p = run_ocnet(["-resume", d, "-N", 12])
    assert f"ocnet: {d} holds no checkpoint yet: starting the run from the beginning" in p.stdout, p.stdout
    assert json.loads((d / "summary.json").read_text())["iterations"] == 4
    assert "-N 12" in (d / "options.txt").read_text().splitlines()
    p = run_ocnet(["-resume", d, "-tao_max_it", 6])
    assert json.loads((d / "summary.json").read_text())["iterations"] == 6


def test_resume_refuses_to_discard_a_finished_run(tmp_path, monkeypatch):
    """A finished run whose checkpoint is older than its end (-checkpoint 0: none at all, or the
    one a signal saved before a resumed run finished): -resume started it again from there and
    overwrote the rest (tester 37).  Now one line, exit 2, the folder as it was."""
    import shutil
    args = ["-problem", "tests.toy:LinearControl", "-N", 8, "-quiet", "-tao_max_it", 9]
    fin, cut = tmp_path / "fin", tmp_path / "cut"
    run_ocnet(args + ["-checkpoint", 0, "-run_dir", fin])
    args += ["-checkpoint_every", 3]
    before = {f: (fin / f).read_bytes() for f in ("summary.json", "history.csv", "params.petsc")}
    for extra in ([], ["-dry_run"]):
        p = run_ocnet(["-resume", fin, "-tao_max_it", 12] + extra, check=False)
        assert p.returncode == 2 and "finished at iteration 9, and resuming would discard the whole run: it " \
            "holds no checkpoint" in p.stderr and f"-load {fin} -run_dir NEW" in p.stderr, p.stderr
    assert {f: (fin / f).read_bytes() for f in before} == before
    monkeypatch.setenv("OCNET_TEST_KILL", "after:3")
    run_ocnet(args + ["-run_dir", cut], check=False)
    monkeypatch.delenv("OCNET_TEST_KILL")
    fin2 = tmp_path / "fin2"
    run_ocnet(args + ["-run_dir", fin2])
    shutil.rmtree(fin2 / "checkpoint")
    shutil.copytree(cut / "checkpoint", fin2 / "checkpoint")  # a stale save, as after a signal under -checkpoint 0
    p = run_ocnet(["-resume", fin2, "-tao_max_it", 12], check=False)
    assert p.returncode == 2 and "discard iterations 4..9: its checkpoint is of iteration 3" in p.stderr, p.stderr
