"""ocnet.perfmodel.model counts exactly the steps MGRIT takes (per level and rank), and its critical path
and predictions behave as a model must (no timing here: the bench validates the times)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ocnet.perfmodel import model as pm
from tests.conftest import ROOT, mpiexec_prefix

SCRIPT = os.path.join(os.path.dirname(__file__), "perf_counts.py")


def measured(P, N, levels, cf, its, relax="FCF", fine_relax="-", cycle="V", fixed=True, which="state", warm=False,
             ahead=False):
    cmd = mpiexec_prefix(P) + [sys.executable, SCRIPT, str(N), str(levels), str(cf), str(its), relax, fine_relax,
                               cycle, "1" if fixed else "0", which, "1" if warm else "0", "1" if ahead else "0"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=ROOT))
    assert p.returncode == 0, p.stdout + p.stderr
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("COUNTS")][0]
    return [{int(k): v for k, v in c.items()} for c in json.loads(line.split(None, 1)[1])]


CASES = [  # P, N, levels, cf, its, relax, fine_relax, cycle, fixed, which, warm
    (1, 37, 3, 3, 2, "FCF", "-", "V", True, "state", False),
    (2, 64, 3, 4, 2, "FCF", "F", "V", True, "state", False),
    (3, 45, 3, 3, 3, "FCFCF", "-", "F", True, "state", False),
    (3, 50, 2, 4, 2, "F", "-", "V", False, "state", False),
    (2, 64, 4, 2, 1, "FCF", "-", "V", True, "adjoint", False),
    (3, 37, 3, 3, 2, "FCF", "F", "V", False, "adjoint", False),
    (2, 67, 3, 4, 2, "F", "-", "V", True, "state", True),  # one-shot's state: -mgrit_warm_skip
    (3, 64, 3, 4, 2, "FCF", "-", "F", True, "adjoint", True),
]


# each case with and without the plugin extensions ahead= and minus= (the ResNet's: look-ahead
# steps in the sweeps), and one-shot's defaults (F, cfactor 8) with them
@pytest.mark.parametrize("P,N,levels,cf,its,relax,fine_relax,cycle,fixed,which,warm,ahead",
                         [c + (a,) for c in CASES for a in (False, True)]
                         + [(2, 67, 3, 8, 2, "F", "-", "V", True, "state", True, True)])
def test_counts_match_mgrit(P, N, levels, cf, its, relax, fine_relax, cycle, fixed, which, warm, ahead):
    got = measured(P, N, levels, cf, its, relax, fine_relax, cycle, fixed, which, warm, ahead)
    s = pm.Solver(levels=levels, cfactor=(cf,), relax=relax, fine_relax="" if fine_relax == "-" else fine_relax,
                  cycle=cycle, its=its, fixed=fixed, warm_skip=warm, ahead=ahead, minus=ahead)
    c = pm.mgrit_counts(N, P, s, reverse=which == "adjoint")
    ms = [m for m, _ in pm._levels(N, s)]
    for r in range(P):
        q = P - 1 - r if which == "adjoint" else r  # the adjoint's reversed communicator
        model = {ms[l]: int(v[q]) for l, v in c.per_rank.items() if int(v[q])}
        assert model == got[r], (r, model, got[r])


def test_level_counts_small_case():
    """N = 8 on 2 ranks, cfactor 2: rank 0 owns points 0..4 (steps into 1..4; C: 2, 4), rank 1
    points 5..8 (C: 6, 8); on the coarse level (m = 2) rank 0 has points 1, 2 and rank 1 3, 4."""
    steps, c, f = pm.level_counts(8, 2, 1, 2)
    assert steps.tolist() == [4, 4] and c.tolist() == [2, 2] and f.tolist() == [2, 2]
    steps, c, f = pm.level_counts(8, 2, 2, 2)
    assert steps.tolist() == [2, 2] and c.tolist() == [1, 1]
    assert pm.serial_counts(8, 2).messages == 1


def test_critical_path_and_prediction_shape():
    cal = {"steps": {k: [0.0, 1e-9] for k in ("forward", "adjoint", "gradient", "serial_adjoint", "steps")},
           "calls": {k: [1e-6, 0.0] for k in ("forward", "adjoint", "gradient", "serial_adjoint", "steps")},
           "mpi": {"latency": 1e-6, "bandwidth": 1e10}, "copy": 1e-10, "overhead": {"mgrit_op": 1e-5, "evaluation": 0.0,
                                                                      "optimiser": [0.0, 0.0]}}
    s = pm.Solver(levels=4, cfactor=(4,), its=2)
    one, many = pm.mgrit_counts(1024, 1, s), pm.mgrit_counts(1024, 64, s)
    assert one.messages == 0 and many.messages > 0
    assert many.fine < one.fine / 30  # the fine level's work divides over the ranks
    # serial time does not fall with ranks; one-shot's does, until the coarse chain dominates
    ser = [pm.predict(cal, pm.mode_config("serial", 1024, P))["total"] for P in (1, 16)]
    osh = [pm.predict(cal, pm.mode_config("oneshot", 1024, P))["total"] for P in (1, 16, 256)]
    assert ser[1] >= ser[0] and osh[1] < osh[0] / 4
    assert np.isfinite(osh).all()
