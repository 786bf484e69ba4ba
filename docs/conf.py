"""Sphinx configuration of the ocnet documentation (MyST markdown + autodoc).

Build: ``.venv/bin/sphinx-build docs docs/_build/html``; the test suite builds it with ``-W``
(tests/test_docs.py), so warnings -- broken references, missing pages, docstring markup errors --
fail the tests.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, ROOT)  # ocnet itself when not installed; tests/ and runs/ for literalinclude checks

project = "ocnet"
author = "the ocnet developers"
copyright = "2026, the ocnet developers"
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "ocnet_options",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# autodoc: members in source order, no inherited docstrings (the plugin contract's long ones would
# repeat on every built-in problem); docstrings are plain reST with ``literal`` markup.
autodoc_default_options = {"members": True, "member-order": "bysource", "undoc-members": False}
autodoc_inherit_docstrings = False
autodoc_typehints = "none"
autoclass_content = "both"  # (the __init__ docstrings document the arguments: ReducedObjective, Trainer, ...)

html_theme = "alabaster"
html_title = "ocnet"
html_theme_options = {"description": "layer-parallel training as discrete optimal control, with PETSc",
                      "fixed_sidebar": True, "page_width": "1240px", "sidebar_width": "230px"}
html_static_path = ["_static"]
html_css_files = ["ocnet.css"]


# Docstrings are written for reading in the source; two adjustments make autodoc render them as
# they read there (so they need no reST-specific edits):
# - indented blocks (the equations of dense.py, the format list of datafiles.py) become literal
#   blocks;
# - '|' outside literals means a norm, not a reST substitution: it is escaped.
def _literal_blocks(lines):
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        indented = line[:1].isspace() and line.strip()
        prev = out[-1] if out else ""
        if indented and not (prev.rstrip().endswith("::") or prev.lstrip().startswith((".. ", "- ", "* "))):
            if prev.strip() and prev.rstrip().endswith(":"):  # "Formats:" right above the block
                out[-1] = prev.rstrip() + ":"
                out.append("")
            elif not prev.strip() and len(out) >= 2 and out[-2].strip() and not out[-2].rstrip().endswith("::"):
                out.insert(len(out) - 1, "")
                out.insert(len(out) - 1, "::")
            else:
                out.append(line)
                i += 1
                continue
            while i < len(lines) and (not lines[i].strip() or lines[i][:1].isspace()):
                out.append(lines[i])
                i += 1
            if i < len(lines) and out[-1].strip():
                out.append("")
            continue
        out.append(line)
        i += 1
    return out


def _process_docstring(app, what, name, obj, options, lines):
    import re

    out, literal = [], False
    for line in _literal_blocks(lines):
        if line.strip() and not line[:1].isspace():
            literal = False
        if not literal:
            parts = re.split(r"(``.*?``)", line)
            line = "".join(p if p.startswith("``") else p.replace("|", r"\|") for p in parts)
        if line.rstrip().endswith("::"):
            literal = True
        out.append(line)
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
