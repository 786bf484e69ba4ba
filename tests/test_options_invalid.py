"""Every option that ``ocnet -help`` lists, framework and built-in plugins, rejects an invalid value
with one line and exit status 2 (no traceback).  Numeric options must declare their range."""
import re
from importlib.metadata import entry_points

import pytest

from tests.conftest import run_ocnet

LINE = re.compile(r"^  -(\S+) <(.*?)> \((.+?)\): ")
#: invalid values of free-text options
TEXT = {"problem": "nosuch", "run_dir": "/proc/no/such/dir", "load": "/no/such/run", "resume": "/no/such/run",
        "x_name": "nosuch", "y_name": "nosuch", "train_labels": "/proc/no/such/path", "val_labels": "/proc/no/such/path"}
#: arguments a problem needs to start at all (e.g. a data file)
BASE = {"classify": ["-train_file", "tests/data/blobs.npz"]}


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


@pytest.mark.parametrize("problem", problems())
def test_every_option_rejects_an_invalid_value(problem):
    checked = 0
    for group, name, kind in options(problem):
        if group in FRAMEWORK_GROUPS and problem != "peaks":  # framework options: checked once
            continue
        bad = invalid(name, kind)
        p = run_ocnet(["-problem", problem, *BASE.get(problem, []), "-tao_max_it", 1, "-quiet", f"-{name}", bad],
                      timeout=120, check=False)
        lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet: error:")]
        assert p.returncode == 2, (name, bad, p.returncode, p.stdout[-2000:], p.stderr[-2000:])
        assert len(lines) == 1 and "Traceback" not in p.stderr, (name, p.stderr)
        assert f"-{name}" in lines[0] or name == "problem", (name, lines[0])
        checked += 1
    assert checked > 0


def test_hidden_width_without_double_block_is_reported():
    """-hidden_width shapes only -block double; with the single block it is an error, not ignored."""
    p = run_ocnet(["-problem", "peaks", "-N", 4, "-tao_max_it", 1, "-hidden_width", 6], check=False)
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.startswith("ocnet: error:")]
    assert p.returncode == 2 and len(lines) == 1 and "-hidden_width" in lines[0], p.stderr
    assert "Traceback" not in p.stderr
