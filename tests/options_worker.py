"""Run many ocnet command lines in one process (for tests/test_options_invalid.py).

Reads a JSON list of cases from stdin, each a list of ``[name, value]`` option pairs; for each
case it empties PETSc's options database, sets the pairs, and runs ``ocnet.run.cli.run`` the way
``ocnet.run.cli.main`` does (an exception becomes ``describe``'s exit status and text), with
stdout and stderr captured.  Prints a JSON list of ``{"status": int, "output": str}``.

One process instead of one per case: importing petsc4py and Numba costs about a second, and the
suite checks every option of every built-in problem.  The end-to-end path (a process, mpiexec,
the error channel) is checked by the test file's own subprocess cases.
"""
import contextlib
import io
import json
import sys


def main():
    import petsc4py
    petsc4py.init([sys.argv[0]])
    from petsc4py import PETSc

    from ocnet.run.cli import describe, run

    comm = PETSc.COMM_WORLD.tompi4py()
    db = PETSc.Options()
    db.setValue("options_left", "0")  # PETSc's own unused-options report at exit
    results = []
    for case in json.load(sys.stdin):
        for key in db.getAll():  # (Options.clear() keeps the global database's entries)
            db.delValue(key)
        for name, value in case:
            db.setValue(name, value)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            try:
                status = run(comm)
            except BaseException as e:  # noqa: B902 - what main() reports for it
                status, text = describe(e, comm)
                if text:
                    print(text, file=sys.stderr)
        results.append({"status": status, "output": buf.getvalue()})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
