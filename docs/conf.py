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
autoclass_content = "class"

html_theme = "alabaster"
html_title = "ocnet"
html_theme_options = {"description": "layer-parallel training as discrete optimal control, with PETSc",
                      "fixed_sidebar": True}


# Docstrings are written for reading in the source: |x| means a norm there, not a reST
# substitution.  Escape '|' outside ``literals`` so autodoc renders it as written.
def _escape_bars(app, what, name, obj, options, lines):
    import re

    for i, line in enumerate(lines):
        parts = re.split(r"(``.*?``)", line)
        lines[i] = "".join(p if p.startswith("``") else p.replace("|", r"\|") for p in parts)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_bars)
