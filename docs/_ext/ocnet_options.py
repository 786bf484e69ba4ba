"""Sphinx directive ``ocnet-options``: option tables generated from ocnet's own declarations.

The tables are built at documentation build time from the same ``OptionSet`` declarations that
``ocnet -help`` prints, so they cannot drift from the code:

- ``framework``: ``ocnet.run.cli.FRAMEWORK_OPTIONS``;
- ``mgrit``: ``ocnet.mgrit.solver.declare_options`` (the ``-state_`` / ``-adjoint_`` variants in a column);
- ``petsc-defaults``: the PETSc options ocnet sets unless given (``TAO_DEFAULTS``, ``VEC_DEFAULTS``);
- ``problems``: every plugin registered in the entry-point group ``ocnet.problems``, one table each.

An import or declaration error fails the build (no table is silently left out).
"""
from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _cell(content):
    entry = nodes.entry()
    if isinstance(content, nodes.Node):
        entry += nodes.paragraph("", "", content)
    else:
        entry += nodes.paragraph("", str(content))
    return entry


def _table(header, rows, widths):
    table = nodes.table(classes=["ocnet-options"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)
    head = nodes.thead()
    row = nodes.row()
    for h in header:
        row += _cell(h)
    head += row
    group += head
    body = nodes.tbody()
    for r in rows:
        row = nodes.row()
        for c in r:
            row += _cell(c)
        body += row
    group += body
    return table


def _kind(o):
    kind = " | ".join(str(c) if c != "" else '""' for c in o.choices) if o.choices else o.type.__name__
    return kind


def _default(o):
    if o.default is None:
        return "(none)"
    if o.type is bool:
        return "true" if o.default else "false"
    if o.default == "":
        return '""'
    return str(o.default)


def _rows(options, also=None):
    rows = []
    for o in options:
        row = [nodes.literal("", f"-{o.name}"), _kind(o), _default(o), o.bounds or "", o.help]
        if also is not None:
            row.append(nodes.literal("", ", ".join(also.get(o.name, ()))) if also.get(o.name) else "")
        rows.append(row)
    return rows


HEADER = ["option", "type / choices", "default", "range", "meaning"]
WIDTHS = [18, 12, 8, 8, 54]


class OcnetOptions(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self):
        from ocnet.base.options import OptionSet

        which = self.arguments[0]
        if which == "framework":
            from ocnet.run.cli import framework_options
            return [_table(HEADER, _rows(framework_options().options), WIDTHS)]
        if which == "mgrit":
            from ocnet.mgrit.solver import declare_options
            opts = OptionSet()
            declare_options(opts)
            names = {o.name for o in opts.options}
            plain = [o for o in opts.options if not o.name.startswith(("state_", "adjoint_"))]
            also = {o.name: [f"-{p}{o.name}" for p in ("state_", "adjoint_") if p + o.name in names]
                    for o in plain}
            listed = {o.name for o in plain} | {a[1:] for v in also.values() for a in v}
            missing = sorted(names - listed)
            if missing:  # a prefixed option without a plain one: list it, do not drop it
                plain += [o for o in opts.options if o.name in missing]
            return [_table(HEADER + ["per solve"], _rows(plain, also), WIDTHS + [20])]
        if which == "petsc-defaults":
            from ocnet.run.cli import TAO_DEFAULTS, VEC_DEFAULTS
            rows = [[nodes.literal("", f"-{k} {v}")] for k, v in {**TAO_DEFAULTS, **VEC_DEFAULTS}.items()]
            return [_table(["PETSc option set by ocnet unless given"], rows, [60])]
        if which == "problems":
            from ocnet.plugin.loader import registered
            out = []
            eps = registered()
            if not eps:
                raise self.error("no plugin registered in the entry-point group ocnet.problems "
                                 "(is ocnet installed, pip install -e .?)")
            from ocnet.run.cli import option_default_texts
            for name in sorted(eps):
                cls = eps[name].load()
                opts = OptionSet()
                cls.declare_options(opts)
                texts = option_default_texts(cls)  # the problem's configuration, as -help shows it
                own = {o.name: o for o in opts.options}
                for k, text in texts.items():
                    if k in own:
                        own[k].default = own[k].parse(text)
                title = nodes.rubric("", "", nodes.literal("", f"-problem {name}"),
                                     nodes.Text(f"  ({eps[name].value})"))
                out.append(title)
                others = [f"-{k} {v}" for k, v in texts.items() if k not in own]
                if others:
                    para = nodes.paragraph("", "Its defaults for other options: ")
                    for i, t in enumerate(others):
                        para += nodes.literal("", t)
                        para += nodes.Text(", " if i < len(others) - 1 else ".")
                    out.append(para)
                out.append(_table(HEADER, _rows(opts.options), WIDTHS))
            return out
        raise self.error(f"ocnet-options: unknown table '{which}' "
                         "(framework, mgrit, petsc-defaults, problems)")


def setup(app):
    app.add_directive("ocnet-options", OcnetOptions)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
