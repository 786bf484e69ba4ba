"""The command line before PETSc reads it: what PETSc would ignore or never match (``--N``,
``-N=8``, stray words), options files it could not parse, the ``-help`` forms, and where an
option given in an options file came from.  Checked before ``petsc4py.init`` (PETSc prints a
multi-line error block on every rank, or drops such words silently)."""
import os


def petsc_argv(argv):
    """The command line PETSc is initialised with: ``-help`` alone lists ocnet's options only (PETSc's
    own help, printed as PETSc starts, is ``-help petsc``); ``-help intro`` and the like are PETSc's."""
    if "-help" not in argv[1:]:
        return argv
    i = argv.index("-help", 1)
    nxt = argv[i + 1] if i + 1 < len(argv) else "-"
    if nxt == "petsc":
        return argv[:i + 1] + argv[i + 2:]
    return argv[:i] + argv[i + 1:] if nxt.startswith("-") else argv


def unreadable_options_files(argv):
    """The first -options_file argument that is not a readable file (None if all are)."""
    for flag, value in zip(argv, argv[1:]):
        if flag == "-options_file" and not (os.path.isfile(value) and os.access(value, os.R_OK)):
            return value
    return None


def _tokens(line):
    """PETSc's tokens of an options-file line: blank-separated, a double-quoted token may hold
    blanks; '#' starts a comment outside quotes."""
    out, cur, quoted, started = [], [], False, False
    for ch in line:
        if ch == '"':
            quoted, started = not quoted, True
        elif ch == "#" and not quoted:
            break
        elif ch.isspace() and not quoted:
            if started:
                out.append("".join(cur))
            cur, started = [], False
        else:
            cur.append(ch)
            started = True
    if started:
        out.append("".join(cur))
    return out, quoted


def _file_lines(path):
    """[(line number from 1, line, tokens, open quote)] of an options file (read with errors
    replaced); OSError when it cannot be read."""
    with open(path, errors="replace") as f:
        return [(no, line, *_tokens(line)) for no, line in enumerate(f.read().splitlines(), 1)]


def _is_number(tok):
    try:
        float(tok)
        return True
    except ValueError:
        return False


def is_option_name(tok):
    """PETSc's rule: a token is an option name when it starts with '-' and is not a number."""
    return tok.startswith("-") and len(tok) > 1 and not _is_number(tok)


def option_shape_error(tok):
    """One line for an option name PETSc would take literally and never match (``--N``, ``-N=8``),
    or None."""
    if tok.startswith("--") and len(tok) > 2:
        return f"'{tok}': options start with one '-' (PETSc's convention): -{tok.lstrip('-')}"
    name, eq, value = tok.partition("=")
    if eq and name[1:].replace("_", "").isalnum():
        return f"'{tok}': an option's value follows it after a blank: {name} {value}"
    return None


def argument_error(args):
    """The first command-line argument (``args``: argv without the program) that PETSc would ignore
    or never match, as one line, or None: ``--name``, ``-name=value``, or a word that is neither an
    option name nor the value after one (``-N 8 extra``, ``N=8``).  PETSc drops such words silently
    and reports misspelt names only as unused at the end of the run."""
    prev_name = False
    for tok in args:
        if tok == "-":
            return "a lone '-': an option's name follows its '-' without a blank (-N 8, not - N 8)"
        shape = option_shape_error(tok) if tok.startswith("-") else None
        if shape:
            return shape
        if is_option_name(tok):
            prev_name = True
            continue
        if not prev_name:
            return (f"stray argument '{tok}': options are '-name value' pairs (a value follows its option "
                    "name; a word after a value belongs to no option)")
        prev_name = False
    return None


def options_file_error(argv, _chain=()):
    """The first problem of an ``-options_file`` given in ``argv`` (or nested in one), as one
    line, or None: a file that cannot be read, or a line that is not ``-option [value]``,
    ``alias -new -old`` or a comment, or a file that includes itself.  Checked before PETSc reads
    them (PETSc would print a multi-line error block and a traceback on every rank, or recurse)."""
    if argv[-1:] == ["-options_file"]:
        return "-options_file needs a file name"
    for flag, value in zip(argv, argv[1:]):
        if flag != "-options_file":
            continue
        if not (os.path.isfile(value) and os.access(value, os.R_OK)):
            return f"-options_file: cannot read '{value}'"
        real = os.path.realpath(value)
        if real in _chain:  # PETSc would recurse until the stack overflows (a segmentation fault)
            return f"-options_file '{value}' includes itself (through {' -> '.join(_chain[_chain.index(real):])})"
        try:
            lines = _file_lines(value)
        except OSError as e:
            return f"-options_file: cannot read '{value}': {e.strerror}"
        nested = []
        for no, line, toks, open_quote in lines:
            where = f"-options_file '{value}', line {no}"
            if open_quote:
                return f"{where}: unbalanced double quote in '{line.strip()}'"
            if not toks:
                continue
            if toks[0].lower() == "alias":
                if len(toks) != 3 or not all(t.startswith("-") for t in toks[1:]):
                    return f"{where}: '{line.strip()}' is not 'alias -newname -oldname'"
                continue
            if no == 1 and line.startswith("\ufeff"):
                return f"{where}: the file starts with a byte-order mark (save it as plain UTF-8 or ASCII)"
            if not toks[0].startswith("-") or len(toks[0]) < 2:
                return f"{where}: '{line.strip()}' is not an option line ('-name [value]', or a '#' comment)"
            if option_shape_error(toks[0]):
                return f"{where}: {option_shape_error(toks[0])}"
            if len(toks) > 2:
                return (f"{where}: '{line.strip()}' has more than an option and its value "
                        "(one '-name [value]' a line; quote a value with blanks)")
            nested += toks
        if nested[-1:] == ["-options_file"]:
            return f"-options_file '{value}': its last option -options_file needs a file name"
        err = options_file_error(["x"] + nested, _chain + (real,))
        if err:
            return err
    return None


def option_source(argv, name, _chain=()):
    """Where option ``-name`` was given when not on the command line ``argv`` itself: "-options_file
    'F', line N" (the last such line, nested files included), or None."""
    flag, found = f"-{name}", None
    if _chain == () and flag in argv[1:]:
        return None
    for opt, value in zip(argv, argv[1:]):
        if opt != "-options_file" or os.path.realpath(value) in _chain:
            continue
        try:
            lines = _file_lines(value)
        except OSError:
            continue
        for no, _, toks, _ in lines:
            if toks[:1] == [flag]:
                found = f"-options_file '{value}', line {no}"
            elif toks[:1] == ["-options_file"] and len(toks) > 1:
                found = option_source(["x"] + toks, name, _chain + (os.path.realpath(value),)) or found
    return found
