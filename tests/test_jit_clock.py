"""ocnet.base.jit_clock: Numba's compile time is counted once per outermost compile, so a run's
wall_time can leave it out (a cold kernel cache compiled the MGRIT kernels mid-run: +4 s in one
iteration's wall_time)."""
import json
import time

from numba import njit

from ocnet.base import jit_clock
from tests.conftest import run_ocnet


def test_counts_compiles_once_and_nothing_else():
    jit_clock.install()
    jit_clock.install()  # (twice: one listener)

    @njit
    def inner(x):
        return x * 3.0 + 1.0

    @njit
    def outer(x):
        return inner(x) - inner(2.0 * x)

    s0, t0, c0, p0 = jit_clock.seconds(), time.perf_counter(), jit_clock.cpu_seconds(), time.process_time()
    outer(1.5)  # compiles outer, and inner inside it (nested: counted once)
    t1, s1, p1, c1 = time.perf_counter(), jit_clock.seconds(), time.process_time(), jit_clock.cpu_seconds()
    assert 0.0 < s1 - s0 <= t1 - t0
    # its CPU seconds too (a solve's CPU time less the compiles' wall seconds went negative on a
    # loaded machine, where a compile waits for a core: phases.json's cpu_time, tester 36)
    assert 0.0 < c1 - c0 <= p1 - p0
    outer(2.5)  # compiled: no compile time
    assert jit_clock.seconds() == s1 and jit_clock.cpu_seconds() == c1


def test_run_reports_jit_time_of_a_cold_cache(tmp_path):
    run_ocnet(["-N", 8, "-tao_max_it", 3, "-mode", "oneshot", "-quiet", "-run_dir", tmp_path / "r"],
              env={"NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["jit_time"] > 0.0, summary  # the one-shot kernels compile when the exact start ends
    assert summary["warmup_time"] > 0.0, summary  # (the starting evaluation: its compiles were not recorded)
