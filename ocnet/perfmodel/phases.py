"""Where a run's time goes: PETSc log events of the solver's phases, written as ``phases.json``.

``-log_phases`` (with ``-run_dir``) starts PETSc's event log after the JIT warm-up and writes
``RUN/phases.json`` at the end: per event the time in seconds (maximum over ranks) and the call
count (rank 0), with the number of optimisation iterations, objective evaluations (line-search
trials included) and the solve's wall time.  Numba compiles during the solve (a cold cache: e.g.
the MGRIT kernels when the adaptive one-shot's exact start ends) are left out of every time, as
history.csv's wall_time leaves them out; ``jit_time`` gives them.  runs/bench_modes.py and runs/scaling.py read it.

Events (the MGRIT ones are nested in their solve; ``*Comm`` is nested in relaxation, residual
and coarse solve, so the columns of one solve do not add up to its total):

    OcnetEval        the first objective (+ gradient) evaluation of each iteration (rank 0's callbacks)
    OcnetLineSearch  the evaluations after it (line-search trials); OcnetEval + OcnetLineSearch: all
    OcnetState       state solve (serial sweep or MGRIT)          OcnetAdjoint  adjoint solve
    OcnetGradient    parameter gradient from a given adjoint, regularisation, sums across ranks
    OcnetValidation  per-iteration metrics (train accuracy, validation forward solve)
    OcnetCheckpoint  checkpoint and parameter saves (-checkpoint_seconds; -checkpoint 0: none)
    MGRIT{Setup,Relax,Restrict,Coarse,Interp,Residual,Comm}, AdjMGRIT{...}   (ocnet/mgrit/solver.py)
"""
import json
import os

from ..mgrit.solver import JIT_IN, event, phase

TOP = ("OcnetEval", "OcnetLineSearch", "OcnetState", "OcnetAdjoint", "OcnetGradient", "OcnetValidation",
       "OcnetCheckpoint")
PARTS = ("Setup", "Relax", "Restrict", "Coarse", "Interp", "Residual", "Comm")
EVENTS = TOP + tuple(f"MGRIT{p}" for p in PARTS) + tuple(f"AdjMGRIT{p}" for p in PARTS)

__all__ = ["phase", "start", "collect", "write", "EVENTS"]


_BEFORE = {}  # event -> (time, count) when start() was called


def start():
    """Begin PETSc's default event log (collective; events before this call are not counted)."""
    from petsc4py import PETSc

    PETSc.Log.begin()
    JIT_IN.clear()
    for name in EVENTS:  # registered on every rank in one order
        info = event(name).getPerfInfo()
        # (a log already running -- -log_view starts it at PETSc's initialisation -- holds the
        # warm-up's events: the counts and times from here on are the differences)
        _BEFORE[name] = (float(info.get("time", 0.0)), int(info.get("count", 0)))


def collect(comm):
    """{event: {"time": max over ranks (s; Numba compiles inside it left out), "count": rank 0's
    calls}} for every event in EVENTS."""
    out = {}
    for name in EVENTS:
        info = event(name).getPerfInfo()
        t0, c0 = _BEFORE.get(name, (0.0, 0))
        t = comm.allreduce(max(float(info.get("time", 0.0)) - t0 - JIT_IN.get(name, 0.0), 0.0), op=_max())
        out[name] = {"time": t, "count": int(info.get("count", 0)) - c0}
    return out


def _max():
    from mpi4py import MPI

    return MPI.MAX


def write(path, comm, iterations, evaluations, solve_time, mgrit_counts=None, cpu_time=float("nan"), jit_time=0.0,
          jit_cpu_time=0.0):
    """RUN/phases.json (collective; rank 0 writes).  ``mgrit_counts``: {solve: [MGRIT iterations,
    solves]} for the state, adjoint and evaluation-data ("val") solves since the log started;
    ``cpu_time``: the solve's CPU time (s), maximum over ranks (on a loaded machine it excludes
    the time a rank waited for a core); ``jit_time``: this rank's Numba compile seconds during
    the solve, left out of both (the file's ``jit_time``: the maximum over ranks) -- out of the
    CPU time as their CPU seconds ``jit_cpu_time``."""
    events = collect(comm)
    cpu = comm.allreduce(cpu_time - jit_cpu_time, op=_max())
    jit = comm.allreduce(jit_time, op=_max())
    if comm.Get_rank() == 0:
        doc = {"ranks": comm.Get_size(), "iterations": iterations, "evaluations": evaluations,
               "solve_time": solve_time - jit_time, "cpu_time": cpu, "jit_time": jit, "mgrit": mgrit_counts or {},
               "events": events}
        with open(os.path.join(path, "phases.json"), "w") as f:
            json.dump(doc, f, indent=1)


# phase columns of a run: (label, events); the MGRIT parts are nested in state/adjoint
COLUMNS = [
    ("state", ["OcnetState"]), ("adjoint", ["OcnetAdjoint"]), ("gradient", ["OcnetGradient"]),
    ("validation", ["OcnetValidation"]), ("checkpoint", ["OcnetCheckpoint"]), ("ls_extra", ["OcnetLineSearch"]),
    ("relax", ["MGRITRelax", "AdjMGRITRelax"]), ("restrict", ["MGRITRestrict", "AdjMGRITRestrict"]),
    ("coarse", ["MGRITCoarse", "AdjMGRITCoarse"]), ("residual", ["MGRITResidual", "AdjMGRITResidual"]),
    ("comm", ["MGRITComm", "AdjMGRITComm"]),
]


def summarize(run_dir):
    """A finished ``-log_phases`` run: time per iteration (s; history wall time from iteration 0
    to the last, over the iterations), phases per iteration (s; shares of that time by event
    time), 'optimiser' (what the evaluations and validation leave), the final validation value of
    the headline metric ('metric': accuracy, else the problem's first other metric, e.g. rmse;
    ``ocnet.run.rundir.headline_metric``), objective evaluations per iteration (line-search trials
    included), MGRIT iterations per solve."""
    import csv

    from ..run.rundir import finite, headline_metric

    with open(os.path.join(run_dir, "history.csv")) as f:
        h = list(csv.DictReader(f))
    with open(os.path.join(run_dir, "phases.json")) as f:
        ph = json.load(f)
    n = int(h[-1]["iteration"])
    t_it = (float(h[-1]["wall_time"]) - float(h[0]["wall_time"])) / max(n, 1)
    ev, total = ph["events"], max(ph["solve_time"], 1e-300)
    phases = {lab: sum(ev.get(k, {"time": 0.0})["time"] for k in names) / total * t_it for lab, names in COLUMNS}
    evals = ev["OcnetEval"]["time"] + ev["OcnetLineSearch"]["time"]
    saves = ev.get("OcnetCheckpoint", {"time": 0.0})["time"]  # (phases.json files older than the event)
    phases["optimiser"] = max(total - evals - ev["OcnetValidation"]["time"] - saves, 0.0) / total * t_it
    # MGRIT iterations per solve within the timed iterations: without the initial evaluation's
    # solves (history row 0; before the first iteration, and often cheaper: an exact-mode state
    # solve from the initial guess may converge at once)
    per_solve = {}
    for k, (its, solves) in ph.get("mgrit", {}).items():
        col = {"state": "state_mgrit_its", "adjoint": "adjoint_mgrit_its"}.get(k)
        first = h[0].get(col, "") if col else ""
        if solves > 1 and first not in ("", "nan"):
            its, solves = its - float(first), solves - 1
        per_solve[k] = its / solves if solves else float("nan")
    cpu_it = ph.get("cpu_time", float("nan")) / total * t_it  # CPU time per iteration
    metric = headline_metric(h)
    val = float(h[-1][f"val_{metric}"]) if metric and finite(h[-1].get(f"val_{metric}")) else float("nan")
    return {"t_it": t_it, "cpu_it": cpu_it, "phases": phases, "metric": metric, "val": val, "iterations": n,
            "evals_per_it": (ph["evaluations"] - 1) / max(n, 1), "mgrit_its": per_solve, "dir": run_dir}
