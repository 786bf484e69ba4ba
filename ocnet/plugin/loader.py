"""Problem discovery: entry-point group ``ocnet.problems`` or ``-problem package.module:Class``."""
import importlib
from importlib.metadata import entry_points

from ..base.errors import OcnetError
from .problem import ControlProblem

GROUP = "ocnet.problems"


def registered():
    """{name: entry point} of the problems registered under the entry-point group ocnet.problems
    (setup.cfg; a plugin package registers its own the same way)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def canonical_name(spec):
    """A registered problem's name as registered when ``spec`` differs from it in case only
    (``-problem Peaks``: other choice options take any case), else ``spec``."""
    if ":" in spec:
        return spec
    eps = registered()
    if spec in eps:
        return spec
    same = [n for n in eps if n.lower() == spec.lower()]
    return same[0] if len(same) == 1 else spec


def load_problem_class(spec):
    """The ControlProblem subclass named by ``spec``: a registered name (``registered``) or
    'package.module:Class' (imported; its folder must be on sys.path).  Raises OcnetError for an
    unknown name, a module that does not import, or a class that is not a ControlProblem."""
    if ":" in spec:
        mod, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(mod)
        except ImportError as e:
            raise OcnetError(f"cannot load problem '{spec}': {e}{_where_hint(mod, e)}") from None
        if not hasattr(module, attr):
            import difflib
            there = sorted(n for n, c in vars(module).items()
                           if isinstance(c, type) and issubclass(c, ControlProblem) and c is not ControlProblem
                           and c.__module__ == module.__name__)
            close = difflib.get_close_matches(attr, there, n=1)
            raise OcnetError(f"cannot load problem '{spec}': module '{mod}' has no attribute '{attr}'"
                             + (f" (did you mean {mod}:{close[0]}?)" if close else
                                f" (its problem classes: {', '.join(there)})" if there else
                                " (it defines no ControlProblem subclass)"))
        cls = getattr(module, attr)
    else:
        eps = registered()
        if spec not in eps:
            known = ", ".join(sorted(eps)) or "none installed"
            raise OcnetError(f"unknown problem '{spec}' (registered: {known}; or use package.module:Class)")
        cls = eps[spec].load()
    if not (isinstance(cls, type) and issubclass(cls, ControlProblem)):
        raise OcnetError(f"problem '{spec}' is not an ocnet.plugin.problem.ControlProblem subclass")
    return cls


def _where_hint(mod, e):
    """Where ocnet looks for the plugin's module, when that module itself (not one it imports) is
    not found; '' otherwise."""
    if not isinstance(e, ModuleNotFoundError) or e.name is None or not mod.startswith(e.name.split(".")[0]):
        return ""
    if mod.endswith(".py") or "/" in mod or "\\" in mod:
        return ("; give a module name, not a file: -problem module:Class with the module's folder on PYTHONPATH "
                "(e.g. PYTHONPATH=/path/to/folder ocnet -problem myplugin:MyProblem)")
    return ("; ocnet imports it as a Python module: put its folder on PYTHONPATH (every rank needs it), or run "
            "python -m ocnet from that folder")
