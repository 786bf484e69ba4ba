"""A linear-quadratic control problem against its closed-form optimum (tests/lq.py): the trained
controls and objective equal the solution of the regularised normal equations of the same
discrete problem, in serial and exact (MGRIT) mode, on 1 and 2 ranks.  This checks the plugin
contract's semantics end to end (the objective, the regularisation's terms and their count, the
gradient), not only gradient consistency."""
import json

import numpy as np
import pytest
from petsc4py import PETSc

from tests.conftest import run_ocnet
from tests.lq import optimum

LQ = ["-problem", "tests.lq:SpringMass", "-tao_type", "bqnktr", "-tao_gatol", 1e-11, "-tao_grtol", 0,
      "-tao_max_it", 200, "-quiet"]


def controls(run):
    a = PETSc.Vec().load(PETSc.Viewer().createBinary(str(run / "params.petsc"), "r", comm=PETSc.COMM_SELF))
    return a.getArray().reshape(-1, 2).copy()


@pytest.mark.parametrize("mode,nprocs,extra", [("serial", None, []), ("exact", 2, ["-mgrit_rtol", 1e-12]),
                                               ("serial", 2, ["-gamma_ddt", 1e-4, "-N", 16])])
def test_lq_optimum(tmp_path, mode, nprocs, extra):
    run = tmp_path / "r"
    run_ocnet(LQ + ["-mode", mode, "-run_dir", run] + extra, nprocs=nprocs)
    values = {"N": 64, "T": 4.0, "spring_k": 1.0, "damping": 0.1, "gamma_tik": 1e-3, "gamma_ddt": 0.0}
    values.update({"gamma_ddt": 1e-4, "N": 16} if "-gamma_ddt" in extra else {})
    u, J = optimum(values)
    J_run = json.loads((run / "summary.json").read_text())["final_row"]["objective"]
    assert abs(J_run - J) <= 1e-10 * J, (J_run, J)
    assert np.linalg.norm(controls(run) - u) <= 1e-6 * np.linalg.norm(u)
