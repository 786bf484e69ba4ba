"""Seconds spent compiling (or loading from Numba's cache) jitted code, so that a run's
``wall_time`` measures the solve and not the JIT.

A kernel first compiled in the middle of a run (a cold cache on a new node: e.g. the MGRIT
kernels when the adaptive one-shot's exact start ends) would otherwise add seconds to the
iteration it happens in.  Numba announces every hold of its compiler lock as the event
``numba:compiler_lock`` (``numba.core.event``); the outermost holds are summed here, in wall
seconds and in the process's CPU seconds (on a loaded machine a compile waits for a core: its
wall time exceeds its CPU time, and a solve's CPU time less the compiles' wall time went
negative)."""
import time

_state = {"depth": 0, "start": 0.0, "total": 0.0, "cpu_start": 0.0, "cpu_total": 0.0, "installed": False}


def seconds():
    """Seconds spent in Numba's compiler since :func:`install` (0.0 before it)."""
    s = _state
    return s["total"] + (time.perf_counter() - s["start"] if s["depth"] else 0.0)


def cpu_seconds():
    """The process's CPU seconds in Numba's compiler since :func:`install` (0.0 before it)."""
    s = _state
    return s["cpu_total"] + (time.process_time() - s["cpu_start"] if s["depth"] else 0.0)


def install():
    """Start counting (once per process; imports numba)."""
    if _state["installed"]:
        return
    from numba.core import event

    class _Clock(event.Listener):
        def on_start(self, ev):
            if _state["depth"] == 0:
                _state["start"], _state["cpu_start"] = time.perf_counter(), time.process_time()
            _state["depth"] += 1

        def on_end(self, ev):
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _state["total"] += time.perf_counter() - _state["start"]
                _state["cpu_total"] += time.process_time() - _state["cpu_start"]

    event.register("numba:compiler_lock", _Clock())
    _state["installed"] = True
