"""The documentation: docs/ builds with Sphinx with warnings as errors, README.md stays within
12 KB and its links resolve, and the docs' examples are run: Python code only by literalinclude
from files the tests run, every shell command checked against the options and flags the code
declares, and the -check_adjoint / -mgrit_view listings compared with real output."""
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_ocnet

DOCS = os.path.join(ROOT, "docs")
PAGES = sorted(glob.glob(os.path.join(DOCS, "**", "*.md"), recursive=True))
README = os.path.join(ROOT, "README.md")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def fenced(text, lang):
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.S | re.M)


def test_sphinx_build_warnings_are_errors(tmp_path):
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", DOCS,
           str(tmp_path / "html")]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert p.returncode == 0, f"sphinx-build failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    assert not re.search(r"WARNING|ERROR", p.stderr), p.stderr
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", read(tmp_path / "html" / "user" / "options.html")))
    for name in ("-N", "-mode", "-mgrit_cfactor", "-adjoint_mgrit_relax", "-problem peaks", "-train_file",
                 "-tao_type lmvm"):  # the generated option tables are there
        assert re.search(rf"(^|[ ,]){name}([ ,]|$)", text), name
    # with each problem's own defaults (option_defaults), as -help shows them
    mnist = text.split("-problem mnist", 1)[1].split("-problem ", 1)[0]
    assert "Its defaults for other options: -N 30 , -T 5 ," in mnist, mnist[:300]
    assert " -pool int 4 [1,inf) " in mnist and " -gamma_class float 0.01 " in mnist, mnist


def test_readme_size_and_links():
    size = os.path.getsize(README)
    assert size <= 12288, f"README.md is {size} bytes (limit 12288)"
    text = read(README)
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 10
    for link in links:
        if "://" not in link:
            assert os.path.exists(os.path.join(ROOT, link)), f"README links to missing {link}"


def test_python_examples_come_from_tested_files():
    """Python in the docs is literalinclude'd from code the tests run (tests/, runs/, examples/,
    ocnet/, problems/, setup.cfg), and every examples/ file is run by this module."""
    includes = []
    for page in PAGES:
        includes += [(page, inc) for inc in re.findall(r"^```\{literalinclude\} (\S+)", read(page), flags=re.M)]
    assert includes
    for page, inc in includes:
        path = os.path.relpath(os.path.normpath(os.path.join(os.path.dirname(page), inc)), ROOT)
        assert os.path.exists(os.path.join(ROOT, path)), f"{page}: {inc} does not exist"
        assert path.split(os.sep)[0] in ("tests", "runs", "examples", "ocnet", "problems") or path == "setup.cfg", \
            (page, path)
    this = read(__file__)
    for ex in glob.glob(os.path.join(ROOT, "examples", "*.py")):
        assert f"examples/{os.path.basename(ex)}" in this, f"{ex} is not run by tests/test_docs.py"


def test_inline_python_blocks_run(tmp_path):
    """Inline python blocks (the README's plugin example; any in docs/) run, page by page, in
    order, in one namespace (as a reader would paste them), from the repository root."""
    pages = [p for p in PAGES + [README] if fenced(read(p), "python")]
    assert README in pages
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    for page in pages:
        script = tmp_path / "blocks.py"
        script.write_text("\n".join(fenced(read(page), "python")))
        p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, env=env,
                           timeout=300)
        assert p.returncode == 0, f"{page}: its python blocks fail:\n{p.stderr}"


def shell_commands():
    """(page, tokens) of every command in the docs' and README's bash blocks."""
    out = []
    for page in PAGES + [README]:
        for block in fenced(read(page), "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                for part in line.split("&&"):
                    toks = shlex.split(part, comments=True)
                    while toks and re.match(r"^[A-Z_]+=", toks[0]):  # VAR=value prefixes
                        toks = toks[1:]
                    if toks:
                        out.append((os.path.relpath(page, ROOT), toks))
    return out


PETSC_PREFIXES = ("tao_", "state_snes_", "adjoint_ksp_", "log_view", "help", "options_file", "vec_")


def ocnet_declared(problem):
    """Option names ocnet reads with this problem (framework, MGRIT, the problem's; a placeholder
    problem that does not import, e.g. mypkg.mod:MyProblem, contributes none)."""
    from ocnet.base.errors import OcnetError
    from ocnet.base.options import OptionSet
    from ocnet.mgrit.solver import declare_options
    from ocnet.plugin.loader import load_problem_class
    from ocnet.run.cli import framework_options

    opts = framework_options()
    declare_options(opts)
    try:
        load_problem_class(problem).declare_options(opts)
    except OcnetError:
        assert ":" in problem, f"-problem {problem} is not registered"
    return {o.name for o in opts.options}


def check_ocnet_command(page, args):
    problem = "peaks"
    for i, a in enumerate(args):
        if a == "-options_file":
            path = os.path.join(ROOT, args[i + 1])
            assert os.path.exists(path), f"{page}: options file {args[i + 1]} missing"
            m = re.search(r"^-problem\s+(\S+)", read(path), flags=re.M)
            problem = m.group(1) if m else problem
        if a == "-problem":
            problem = args[i + 1]
    declared = ocnet_declared(problem)
    for a in args:
        if re.match(r"^-[A-Za-z]", a):
            name = a[1:]
            assert name in declared or name.startswith(PETSC_PREFIXES), \
                f"{page}: ocnet option {a} (problem {problem}) is not declared"


def ocnet_args(toks):
    """The arguments of an ocnet invocation in a command line (None if it runs no ocnet)."""
    for i, t in enumerate(toks):
        start = i + 1 if t.endswith("bin/ocnet") or t == "ocnet" else \
            i + 2 if t == "-m" and toks[i + 1:i + 2] == ["ocnet"] else None
        if start is not None:
            rest = toks[start:]
            ends = [k for k, a in enumerate(rest) if a in ("|", ">", "2>&1", ";", "&")]
            return rest[:ends[0]] if ends else rest
    return None


def test_shell_commands_match_the_code():
    """Every ocnet command line in a bash block uses declared options (and existing options
    files); every script it runs exists and has the --flags given."""
    kinds = set()
    for page, toks in shell_commands():
        args = ocnet_args(toks)
        if args is not None:
            kinds.add("ocnet")
            check_ocnet_command(page, args)
            continue
        if toks[0] == "mpiexec":
            toks = toks[3:]
        prog = toks[0]
        if prog.endswith("bin/python") and toks[1:3] == ["-m", "ocnet.perfmodel"]:
            kinds.add("module")
            assert f'"{toks[3]}"' in read(os.path.join(ROOT, "ocnet", "perfmodel", "model.py")), (page, toks)
        elif (prog.endswith("bin/python") or prog == "bash") and toks[1].startswith(("runs/", "examples/")):
            kinds.add(prog.rsplit("/", 1)[-1])
            script = os.path.join(ROOT, toks[1])
            assert os.path.exists(script), f"{page}: {toks[1]} does not exist"
            text = read(script)
            here = os.path.dirname(script)  # and the files it sources from its folder (runs/slurm/common.sh)
            text += "".join(read(os.path.join(here, f)) for f in os.listdir(here)
                            if f != os.path.basename(script) and f in text and os.path.isfile(os.path.join(here, f)))
            for t in toks[2:]:
                if t.startswith("--"):
                    flag = t.split("=")[0]
                    assert f'"{flag}"' in text or f"{flag})" in text or f"{flag}|" in text, \
                        f"{page}: {toks[1]} has no option {flag}"
    assert {"ocnet", "python", "bash", "module"} <= kinds, kinds


def test_first_plot_example(tmp_path):
    run = tmp_path / "run"
    run_ocnet(["-N", 4, "-width", 4, "-ntrain", 200, "-nval", 50, "-tao_max_it", 3, "-quiet", "-run_dir", run])
    p = subprocess.run([sys.executable, os.path.join(ROOT, "examples/first_plot.py"), str(run)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert re.match(r"wrote .*first_plot.png: 3 iterations, final validation accuracy \d+\.\d %", p.stdout)
    assert (run / "first_plot.png").stat().st_size > 10000
    # a problem without accuracy: its first other metric (it printed 'accuracy nan %', an empty panel)
    run_ocnet(["-problem", "tests.regress:NeuralODERegression", "-N", 4, "-tao_max_it", 2, "-quiet",
               "-run_dir", tmp_path / "reg"])
    p = subprocess.run([sys.executable, os.path.join(ROOT, "examples/first_plot.py"), str(tmp_path / "reg"),
                        str(tmp_path / "reg.png")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0 and re.match(r"wrote .*reg.png: 2 iterations, final validation rmse \d", p.stdout), \
        p.stdout
    assert (tmp_path / "reg.png").exists() and not (tmp_path / "reg" / "first_plot.png").exists()


def listing(page):
    """The command (bash block) and the output (text block) of a docs page."""
    text = read(os.path.join(DOCS, page))
    cmd = shlex.split(fenced(text, "bash")[0].strip())
    return cmd, fenced(text, "text")[0]


def test_check_adjoint_listing():
    cmd, expected = listing("plugins/checker.md")
    assert cmd[:3] == [".venv/bin/python", "-m", "ocnet"]
    out = run_ocnet(cmd[3:]).stdout
    mask = lambda s: re.sub(r"\d+(\.\d+)?(e[-+]\d+)?", "#", s).strip()  # noqa: E731
    assert mask(out) == mask(expected)


def test_mgrit_view_listing():
    cmd, expected = listing("plugins/mgrit-view.md")
    assert cmd[:4] == ["mpiexec", "-n", "2", ".venv/bin/ocnet"]
    out = run_ocnet(cmd[4:], nprocs=2).stdout
    block = out[out.index("ocnet: MGRIT hierarchies"):]
    assert block.startswith(expected), block


def test_api_reference_lists_every_module():
    """Every module of ocnet/ and problems/ has its automodule in docs/api/ (a new module fails
    here until it is added)."""
    text = "".join(read(p) for p in glob.glob(os.path.join(DOCS, "api", "*.md")))
    documented = set(re.findall(r"^\.\. automodule:: (\S+)", text, flags=re.M))
    modules = set()
    for pkg, folder in (("ocnet", "ocnet"), ("ocnet_problems", "problems")):
        for path in glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True):
            rel = os.path.relpath(path, os.path.join(ROOT, folder))[:-3].replace(os.sep, ".")
            name = pkg + "." + rel
            if rel.endswith("__init__"):
                name = name[: -len(".__init__")]
            if not rel.split(".")[-1].startswith("__") or rel.endswith("__init__"):
                modules.add(name)
    missing = sorted(modules - documented - {"ocnet", "ocnet_problems"})
    assert not missing, f"modules without an automodule in docs/api/: {missing}"


MACHINE = re.compile(r"AMD EPYC|Intel Xeon|\bVM\b|Zen \d")
DATE = re.compile(r"20\d\d-\d\d-\d\d|issue 19")


def tables(text):
    """(header line, the text between the previous table or heading and this table) per table."""
    out, prose = [], []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1]):
            out.append((line, "\n".join(prose)))
            prose = []
        elif line.startswith("#"):
            prose = []
        elif not line.startswith("|"):
            prose.append(line)
    return out


@pytest.mark.parametrize("page", ["README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(DOCS, "results", "*.md"))))
def test_measured_tables_carry_machine_and_date(page):
    """Every table of measurements says on which machine and when: in its own columns or in the
    text right above it."""
    found = tables(read(os.path.join(ROOT, page)))
    for header, prose in found:
        if "CPU (lscpu)" in header:  # the list of machines itself
            continue
        has_columns = re.search(r"machine|CPU", header) and re.search(r"date", header)
        assert has_columns or (MACHINE.search(prose) and DATE.search(prose)), f"{page}: table {header[:60]}"
