"""Typed, documented access to the PETSc options database.

Every ocnet knob is a PETSc option (command line, ``-options_file`` or environment).  Options are
declared once with a type, default and help line; ``-help`` prints the declarations, and a value
of the wrong type is reported as one clear line instead of a PETSc traceback.
"""
import math
import os
from dataclasses import dataclass, field

from .errors import OcnetError

_TRUE = {"", "1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n"}


def closest_name(name, names):
    """The option name of ``names`` that ``name`` most likely misspells, or None (the spelling
    hints of unused options and of a problem's option_defaults; difflib ratio at least 0.75)."""
    import difflib
    return next(iter(difflib.get_close_matches(name, names, n=1, cutoff=0.75)), None)


def parse_bounds(spec):
    """Interval notation -> (lo, lo_open, hi, hi_open): '[0,inf)', '(0,2]', '[1,inf)'."""
    spec = spec.replace(" ", "")
    lo, hi = spec[1:-1].split(",")
    return float(lo), spec[0] == "(", float(hi), spec[-1] == ")"


class path(str):
    """The type of a file or folder option: its value as an absolute path (relative ones to the
    folder the run starts in), so that the run's records (options.txt, params.json) name the same
    file when the run is resumed or replayed from another folder."""

    def __new__(cls, text):
        return super().__new__(cls, os.path.abspath(os.path.expanduser(text)))


@dataclass
class Option:
    """A declared option.  ``bounds``: the admissible interval of a number in interval notation,
    e.g. '[0,inf)' (checked when read; a real number must also be finite)."""

    name: str
    type: type
    default: object
    help: str
    choices: tuple = ()
    group: str = "ocnet"
    bounds: str = ""

    def check_range(self, value, text):
        if self.type is float and not math.isfinite(value):
            raise OcnetError(f"option -{self.name}: expected a finite real number, got '{text}'")
        if not self.bounds:
            return
        lo, lo_open, hi, hi_open = parse_bounds(self.bounds)
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            raise OcnetError(f"option -{self.name}: {text} is out of range, must be in {self.bounds}")

    def parse(self, text):
        flag = f"-{self.name}"
        if self.type is bool:
            t = text.strip().lower()
            if t in _TRUE:
                return True
            if t in _FALSE:
                return False
            raise OcnetError(f"option {flag}: expected true/false, got '{text}'")
        if text == "":
            raise OcnetError(f"option {flag} needs a value ({self.type.__name__})")
        try:
            value = self.type(text)
        except ValueError:
            kind = {int: "an integer", float: "a real number"}.get(self.type, self.type.__name__)
            raise OcnetError(f"option {flag}: expected {kind}, got '{text}'") from None
        if self.choices and value not in self.choices and isinstance(value, str):  # (fcf: FCF, Tanh: tanh)
            value = next((c for c in self.choices if isinstance(c, str) and c.lower() == value.lower()), value)
        if self.choices and value not in self.choices:
            raise OcnetError(f"option {flag}: '{text}' is not one of "
                             f"{', '.join(repr(c) if c == '' else str(c) for c in self.choices)}")
        if self.type in (int, float):
            self.check_range(value, text)
        return value


@dataclass
class OptionSet:
    """A group of declared options read from the PETSc options database."""

    options: list = field(default_factory=list)

    def add(self, name, type, default, help, choices=(), group="ocnet", bounds=""):
        """Declare an option; ``bounds`` (numbers): admissible interval, e.g. '[0,inf)'."""
        if bounds:
            parse_bounds(bounds)  # a malformed declaration fails here, at start-up
        if any(o.name == name for o in self.options):
            raise OcnetError(f"option -{name} is declared twice (group '{group}')")
        self.options.append(Option(name, type, default, help, tuple(choices), group, bounds))
        return self

    def extend(self, other):
        """Add ``other``'s options; raises OcnetError for a name declared in both (e.g. a plugin
        that declares ocnet's -T again: one of the two would be ignored without a word)."""
        have = {o.name: o for o in self.options}
        for o in other.options:
            if o.name in have:
                raise OcnetError(
                    f"option -{o.name} is declared twice (groups '{have[o.name].group}' and '{o.group}'): a problem "
                    "changes the default of one of ocnet's options with its option_defaults, not by declaring "
                    "it again (docs/plugins/index.md)")
            have[o.name] = o
        self.options.extend(other.options)
        return self

    def get(self, name, db=None):
        """Value of option ``name`` (its default when unset); marks the option as used.  A ``path``
        option's absolute value is written back to ``db``, so that what the run records of its
        options (options.txt) names the same file from any folder."""
        from petsc4py import PETSc

        db = db or PETSc.Options()
        opt = next(o for o in self.options if o.name == name)
        if not db.hasName(name):
            return opt.default
        text = db.getString(name, "")
        value = opt.parse(text)
        if opt.type is path and value != text:
            db.setValue(name, value)
            db.getString(name)  # (read: not an unused option)
        return value

    def read(self, db=None):
        """All declared options as a dict name -> value."""
        return {o.name: self.get(o.name, db) for o in self.options}

    def help_text(self):
        lines, group = [], None
        for o in self.options:
            if o.group != group:
                group = o.group
                lines.append(f"{group} options:")
            kind = "|".join(map(str, o.choices)) if o.choices else o.type.__name__
            if o.bounds:
                kind += f" in {o.bounds}"
            default = "" if o.default is None else o.default
            lines.append(f"  -{o.name} <{default}> ({kind}): {o.help}")
        return "\n".join(lines)
