"""-log_phases: RUN/phases.json holds the solver's PETSc log events, read back by ocnet.perfmodel.phases."""
import json

from ocnet.perfmodel import phases
from tests.conftest import run_ocnet

BASE = ["-N", 16, "-width", 4, "-ntrain", 200, "-nval", 40, "-tao_max_it", 3, "-quiet", "-log_phases"]


def test_phases_json(tmp_path):
    # fixed 2 + 1 MGRIT cycles per evaluation (the adaptive counts move): the counts below are known
    run_ocnet(BASE + ["-mode", "oneshot", "-oneshot_adapt", 0, "-run_dir", tmp_path / "o"], nprocs=2)
    doc = json.loads((tmp_path / "o" / "phases.json").read_text())
    ev = doc["events"]
    assert doc["ranks"] == 2 and doc["iterations"] == 3 and doc["evaluations"] >= 4
    assert ev["OcnetEval"]["count"] + ev["OcnetLineSearch"]["count"] == doc["evaluations"]
    assert ev["OcnetState"]["count"] >= doc["evaluations"] and ev["OcnetValidation"]["count"] == 4
    for name in ("MGRITRelax", "MGRITRestrict", "AdjMGRITRelax", "AdjMGRITSetup"):
        assert ev[name]["count"] > 0 and ev[name]["time"] > 0.0, name
    assert doc["mgrit"]["state"] == [2 * doc["evaluations"], doc["evaluations"]]  # 2 cycles per solve
    assert doc["mgrit"]["adjoint"][0] == doc["mgrit"]["adjoint"][1]  # 1 cycle per solve
    s = phases.summarize(str(tmp_path / "o"))
    assert s["t_it"] > 0 and s["mgrit_its"]["state"] == 2.0 and set(s["phases"]) >= {"state", "adjoint", "optimiser"}


def test_serial_has_no_mgrit_events(tmp_path):
    run_ocnet(BASE + ["-run_dir", tmp_path / "s"])
    ev = json.loads((tmp_path / "s" / "phases.json").read_text())["events"]
    assert ev["OcnetState"]["count"] > 0 and ev["MGRITRelax"]["count"] == 0 and ev["OcnetGradient"]["count"] > 0


def test_needs_run_dir():
    p = run_ocnet(BASE, check=False)
    assert p.returncode == 2 and p.stderr.strip() == "ocnet: error: -log_phases needs -run_dir"


def test_mid_run_compiles_left_out(tmp_path):
    """A cold Numba cache: the MGRIT kernels of a fast-path plugin compile when adaptive one-shot's
    exact start ends, mid-run.  phases.json leaves those seconds out of its times, as history.csv's
    wall_time does, and gives them as jit_time (it counted them: 1.2 s of solve_time against a
    history wall time of 0.13 s in a tester's run).  Margins of 30x and more: no timing test."""
    run_ocnet(["-problem", "tests.kernel_toy:KernelToy", "-N", 32, "-mode", "oneshot", "-tao_max_it", 8, "-quiet",
               "-log_phases", "-run_dir", tmp_path / "k"], env={"NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    doc = json.loads((tmp_path / "k" / "phases.json").read_text())
    summary = json.loads((tmp_path / "k" / "summary.json").read_text())
    assert doc["jit_time"] > 0 and summary["jit_time"] >= doc["jit_time"], (doc, summary)
    evals = doc["events"]["OcnetEval"]["time"] + doc["events"]["OcnetLineSearch"]["time"]
    assert evals <= doc["solve_time"] < doc["jit_time"] / 30, doc


def test_log_view_leaves_phases_as_they_are(tmp_path):
    """-log_view starts PETSc's log at initialisation: phases.json still counts from the end of the
    warm-up (it counted the warm-up's state solve and validation too)."""
    args = BASE + ["-mode", "oneshot", "-oneshot_adapt", 0]
    run_ocnet(args + ["-run_dir", tmp_path / "a"])
    run_ocnet(args + ["-log_view", "-run_dir", tmp_path / "b"])
    a, b = (json.loads((tmp_path / d / "phases.json").read_text()) for d in "ab")
    assert {k: v["count"] for k, v in a["events"].items()} == {k: v["count"] for k, v in b["events"].items()}
    assert a["mgrit"] == b["mgrit"] and b["events"]["OcnetValidation"]["count"] == 4, b


def test_checkpoint_saves_are_their_own_phase(tmp_path):
    """Checkpoint saves are the event OcnetCheckpoint (they were the 'optimiser' share: 37 % of a
    tester's one-shot iteration); -checkpoint 0 (the benchmark harnesses') makes none, and a
    signal-free run then leaves no checkpoint in its folder."""
    run_ocnet(BASE + ["-checkpoint_seconds", 0, "-run_dir", tmp_path / "c"])
    doc = json.loads((tmp_path / "c" / "phases.json").read_text())
    assert doc["events"]["OcnetCheckpoint"]["count"] == doc["iterations"] + 1  # rows 0..3, each saved
    s = phases.summarize(str(tmp_path / "c"))
    assert s["phases"]["checkpoint"] > 0
    run_ocnet(BASE + ["-checkpoint", 0, "-run_dir", tmp_path / "n"])
    doc = json.loads((tmp_path / "n" / "phases.json").read_text())
    assert doc["events"]["OcnetCheckpoint"]["count"] == 0 and not (tmp_path / "n" / "checkpoint").exists()
    assert (tmp_path / "n" / "params.petsc").exists()
    p = run_ocnet(BASE + ["-checkpoint", 0, "-checkpoint_every", 2, "-run_dir", tmp_path / "e"], check=False)
    assert p.returncode == 2 and "-checkpoint_every with -checkpoint 0: give one of them" in p.stderr, p.stderr
