"""Every option that ``ocnet -help`` lists, framework and built-in plugins, rejects an invalid value
with one line and exit status 2 (no traceback).  Numeric options must declare their range."""
import json
import os
import re
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from tests.conftest import ROOT, run_ocnet

LINE = re.compile(r"^  -(\S+) <(.*?)> \((.+?)\): ")
#: invalid values of free-text options
TEXT = {"problem": "nosuch", "run_dir": "/proc/no/such/dir", "load": "/no/such/run", "resume": "/no/such/run",
        "x_name": "nosuch", "y_name": "nosuch", "train_labels": "/proc/no/such/path", "val_labels": "/proc/no/such/path"}
#: arguments a problem needs to start at all (e.g. a data file)
BASE = {"classify": ["-train_file", "tests/data/blobs.npz"], "images": ["-train_file", "tests/data/shapes.npz"]}


FRAMEWORK_GROUPS = ("ocnet", "mgrit", "state_mgrit", "adjoint_mgrit")


def options(problem):
    """(group, name, kind) of every option ``ocnet -problem P -help`` lists."""
    p = run_ocnet(["-problem", problem, "-help"])
    out, group = [], None
    for line in p.stdout.splitlines():
        if line.endswith(" options:") and not line.startswith(" "):
            group = line[: -len(" options:")]
        m = LINE.match(line)
        if m:
            out.append((group, m.group(1), m.group(3)))
    assert out, p.stdout
    return out


def invalid(name, kind):
    if name in TEXT:
        return TEXT[name]
    if kind == "bool":
        return "maybe"
    if "|" in kind:
        return "nosuch"
    if kind.startswith(("int", "float")):
        assert " in " in kind, f"-{name} ({kind}) declares no range"
        lo, hi = (float(v) for v in kind.split(" in ")[1][1:-1].split(","))
        if lo != float("-inf"):
            return str(int(lo) - 1 if kind.startswith("int") else lo - 1.0)
        return str(int(hi) + 1) if hi != float("inf") else "nan"
    if name.endswith("mgrit_cfactor"):
        return "1"
    if name.endswith(("file", "dir")):
        return "/proc/no/such/path"
    assert name in TEXT, f"no invalid value known for -{name} ({kind}): add one to TEXT"
    return TEXT[name]


def problems():
    return sorted(ep.name for ep in entry_points(group="ocnet.problems"))


def run_cases(cases):
    """[(status, output)] of each case (a list of (name, value) pairs) run by tests/options_worker.py
    in one process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "options_worker.py")], input=json.dumps(cases),
                       capture_output=True, text=True, timeout=60 + 10 * len(cases), cwd=ROOT, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return [(r["status"], r["output"]) for r in json.loads(p.stdout)]


@pytest.mark.parametrize("problem", problems())
def test_every_option_rejects_an_invalid_value(problem):
    """Every option of -help, one invalid value each (in one worker process: tests/options_worker.py)."""
    base = [["problem", problem], ["tao_max_it", "1"], ["quiet", "1"]]
    base += [[a.lstrip("-"), b] for a, b in zip(BASE.get(problem, [])[::2], BASE.get(problem, [])[1::2])]
    names, cases = [], []
    for group, name, kind in options(problem):
        if group in FRAMEWORK_GROUPS and problem != "peaks":  # framework options: checked once
            continue
        names.append(name)
        cases.append([pair for pair in base if pair[0] != name] + [[name, invalid(name, kind)]])
    assert names
    for name, (status, out) in zip(names, run_cases(cases)):
        lines = [ln for ln in out.splitlines() if ln.startswith("ocnet: error:")]
        assert status == 2, (name, status, out[-2000:])
        assert len(lines) == 1 and "Traceback" not in out, (name, out)
        assert f"-{name}" in lines[0] or name == "problem", (name, lines[0])


@pytest.mark.parametrize("args", [["-mgrit_cfactor", 1], ["-N", 0], ["-run_dir", "/proc/no/such/dir"]])
def test_invalid_value_end_to_end(args):
    """The same through the command line on 2 ranks: one line, exit status 2, no traceback."""
    p = run_ocnet(["-problem", "peaks", "-tao_max_it", 1, "-quiet", *args], nprocs=2, timeout=120, check=False)
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet: error:")]
    assert p.returncode == 2 and len(lines) == 1 and args[0] in lines[0], (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr


def test_hidden_width_without_double_block_is_reported():
    """-hidden_width shapes only -block double; with the single block it is an error, not ignored."""
    p = run_ocnet(["-problem", "peaks", "-N", 4, "-tao_max_it", 1, "-hidden_width", 6], check=False)
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet: error:")]
    assert p.returncode == 2 and len(lines) == 1 and "-hidden_width" in lines[0], p.stderr
    assert "Traceback" not in p.stderr
