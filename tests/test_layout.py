"""The package layout (ocnet/__init__.py): every import between ocnet's subpackages goes down the
layers (base < plugin < mgrit < optim < run, perfmodel), except the lazy ones each package's
docstring names; no import cycles between modules; the built-in problems import ocnet, never the
reverse, and are no top-level ``problems`` package."""
import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORDER = ["base", "plugin", "mgrit", "optim", "run", "perfmodel"]
# (importing package, imported package): allowed upward imports, all inside functions (lazy)
LAZY_UP = {("plugin", "mgrit"), ("plugin", "optim"), ("run", "perfmodel"), ("perfmodel", "run")}


def _imports(path, modname, known=()):
    """(imported module, at module level?) for each import in the file; ``from P import m`` of a
    module m in ``known`` counts as importing P.m."""
    tree = ast.parse(open(path).read())
    top = set(id(n) for n in tree.body)
    pkg = modname if path.endswith("__init__.py") else modname.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = pkg.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                mod = base + ("." + node.module if node.module else "")
            else:
                mod = node.module
            subs = [mod + "." + a.name for a in node.names if mod + "." + a.name in known]
            out += [(m, id(node) in top) for m in (subs or [mod])]
        elif isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
    return out


def _modules():
    mods = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, "ocnet")):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), ROOT)[:-3].replace(os.sep, ".")
                mods[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
    return mods


def _package(mod):
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ocnet" and parts[1] in ORDER else None


def test_subpackages_are_the_documented_groups():
    found = sorted(d for d in os.listdir(os.path.join(ROOT, "ocnet"))
                   if os.path.isfile(os.path.join(ROOT, "ocnet", d, "__init__.py")))
    assert found == sorted(ORDER)
    flat = [f for f in os.listdir(os.path.join(ROOT, "ocnet")) if f.endswith(".py")]
    assert sorted(flat) == ["__init__.py", "__main__.py"]
    for pkg in ORDER:
        doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, "ocnet", pkg, "__init__.py")).read()))
        assert doc and "import" in doc.lower(), f"ocnet/{pkg}/__init__.py must say what it holds and may import"


def test_imports_go_down_the_layers():
    bad = []
    mods = _modules()
    for mod, path in mods.items():
        src = _package(mod)
        for target, toplevel in _imports(path, mod, mods):
            if target.startswith("ocnet_problems") or target.startswith("problems"):
                bad.append(f"{mod} imports {target}")  # the framework names no problem family
                continue
            dst = _package(target)
            if src is None or dst is None or src == dst:
                continue
            if ORDER.index(dst) > ORDER.index(src):
                if (src, dst) not in LAZY_UP or toplevel:
                    bad.append(f"{mod} imports {target}" + (" at module level" if toplevel else ""))
    assert not bad, "\n".join(bad)


def test_no_module_level_import_cycles():
    mods = _modules()
    graph = {m: {t for t, top in _imports(p, m, mods) if top and t in mods and t != m} for m, p in mods.items()}
    state = {}

    def visit(m, stack):
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if not state.get(t):
                visit(t, stack + [t])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [m])


def test_builtin_problems_are_not_a_top_level_package(tmp_path):
    code = ("import importlib.util, sys; from ocnet.plugin.loader import load_problem_class; "
            "assert importlib.util.find_spec('problems') is None; "
            "print(load_problem_class('peaks').__module__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ocnet_problems.peaks"
