"""The plugin contract: the README example is tests/toy.py; regularisation weights are explicit;
-mgrit_view prints the hierarchies actually built."""
import os
import re

import numpy as np
import pytest
from petsc4py import PETSc

from ocnet.run.cli import framework_options
from ocnet.base.errors import OcnetError
from tests import broken
from tests.conftest import ROOT, run_ocnet
from tests.toy import LinearControl

COMM = PETSc.COMM_WORLD.tompi4py()


def test_readme_example_is_toy():
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("## Writing a problem plugin", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = open(os.path.join(ROOT, "tests", "toy.py")).read().split('"""', 2)[2].lstrip("\n")
    assert block == code


def values_for(cls, **over):
    opts = framework_options()
    cls.declare_options(opts)
    v = {o.name: o.default for o in opts.options}
    v.update(over)
    return v


def test_regularization_weights_are_explicit():
    assert LinearControl(values_for(LinearControl, gamma_tik=0.3, gamma_ddt=0.2), COMM).layer_weights == (0.3, 0.2)
    assert broken.NamedWeights(values_for(broken.NamedWeights, tik=0.5), COMM).layer_weights == (0.5, 0.5)
    pb = broken.Unregularized(values_for(broken.Unregularized), COMM)
    assert pb.layer_weights == (0.0, 0.0)
    th = np.ones((3, pb.layer_param_size))
    assert np.all(pb.layer_regularization(0.1, 0, 3, th, None, None, np.zeros_like(th)) == 0.0)
    with pytest.raises(OcnetError, match=r"undeclared: gamma_tik, gamma_ddt"):
        broken.MisnamedWeights(values_for(broken.MisnamedWeights), COMM)


@pytest.mark.parametrize("nprocs", [None, 2])
def test_undeclared_weights_one_line(nprocs):
    p = run_ocnet(["-problem", "tests.broken:MisnamedWeights", "-N", 4, "-tao_max_it", 1], nprocs=nprocs,
                  check=False, timeout=120)
    ours = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and len(ours) == 1, p.stdout + p.stderr
    assert "regularization_options" in ours[0] and "Traceback" not in p.stderr


def parse_view(text):
    """{solve: [(points, m, h*m, per-rank counts)]} from -mgrit_view output."""
    out, cur = {}, None
    for ln in text.splitlines():
        head = re.match(r"(state|adjoint) MGRIT .*: (\d+) levels?", ln)
        if head:
            cur = out.setdefault(head.group(1), [])
            continue
        lev = re.match(r"\s+level (\d+): (\d+) points, m (\d+), step h\*m ([\d.e+-]+), .*; points per rank ([\d ]+)$", ln)
        if lev and cur is not None:
            cur.append((int(lev.group(2)), int(lev.group(3)), float(lev.group(4)), list(map(int, lev.group(5).split()))))
    return out


@pytest.mark.parametrize("nprocs", [None, 2, 3])
def test_mgrit_view(nprocs):
    p = run_ocnet(["-problem", "dahlquist", "-N", 32, "-mode", "exact", "-mgrit_levels", 3, "-mgrit_cfactor", 4,
                   "-adjoint_mgrit_cfactor", 2, "-adjoint_mgrit_relax", "F", "-mgrit_view", "-tao_max_it", 1, "-quiet"],
                  nprocs=nprocs)
    v = parse_view(p.stdout)
    assert [(a, b, c) for a, b, c, _ in v["state"]] == [(33, 1, 1 / 32), (9, 4, 1 / 8), (3, 16, 0.5)], p.stdout
    assert [(a, b, c) for a, b, c, _ in v["adjoint"]] == [(33, 1, 1 / 32), (17, 2, 1 / 16), (9, 4, 1 / 8)], p.stdout
    for levels in v.values():
        for points, _, _, per_rank in levels:
            assert len(per_rank) == (nprocs or 1) and sum(per_rank) == points
    if nprocs == 2:  # rank 0 owns u[0..16], rank 1 u[17..32]; the adjoint's reversed grid the other way
        assert v["state"][0][3] == [17, 16] and v["adjoint"][0][3] == [16, 17]
    assert "level 0: 33 points, m 1, step h*m 0.03125, cfactor 2, F-relaxation" in p.stdout
    assert "level 1: 9 points, m 4, step h*m 0.125, cfactor 4, FCF-relaxation" in p.stdout


def test_mgrit_view_serial_and_clamped():
    p = run_ocnet(["-problem", "dahlquist", "-N", 8, "-mgrit_view", "-tao_max_it", 1, "-quiet"])
    assert "ocnet: -mgrit_view: -mode serial builds no MGRIT" in p.stdout
    p = run_ocnet(["-problem", "dahlquist", "-N", 3, "-mode", "exact", "-mgrit_levels", 4, "-mgrit_view",
                   "-tao_max_it", 1, "-quiet"])
    assert "state MGRIT (FAS, SNES prefix state_; validation solves alike): 1 level (4 requested" in p.stdout, p.stdout


@pytest.mark.parametrize("cls,method,array,nprocs", [("ReturningStepLinear", "step", "out", 1),
                                                     ("RebindingAdjointLinear", "step_adjoint", "lam", 2)])
def test_results_written_into_the_arrays_given(cls, method, array, nprocs):
    """A step that returns its state (PyMGRIT's habit) or a transposed step that rebinds ``lam``
    trained silently (exit 0) on states that never changed: one line at the start, exit 2, on
    every rank; a zero-padded opening that writes part of u0 passes (tester 45)."""
    p = run_ocnet(["-problem", f"tests.broken:{cls}", "-N", 8, "-tao_max_it", 2], nprocs=nprocs, check=False)
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("ocnet")]
    assert p.returncode == 2 and len(errs) == 1 and "it " not in p.stdout, p.stdout + p.stderr
    assert errs[0].startswith(f"ocnet: error: problem 'linear': {method} wrote nothing into its '{array}' array ("), errs
    assert ("it returned ndarray instead" if method == "step" else "nothing reached the array") in errs[0]
    p = run_ocnet(["-problem", "tests.broken:PaddedOpeningLinear", "-N", 8, "-tao_max_it", 2])
    assert "stopped after 2 iterations" in p.stdout, p.stdout + p.stderr
