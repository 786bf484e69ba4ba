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
