"""Clean stops on SIGTERM, SIGINT and SIGUSR1.

A run passes through three phases:

- ``early`` (start-up, data, JIT warm-up: nothing computed yet that a stop could lose): a signal
  ends the job at once with exit status 4 after rank 0 (or, when rank 0 was not signalled, the
  rank that was, EARLY_WAIT s later) noted ``INTERRUPTED`` in the run folder's ``summary.json``;
- ``run`` (the optimisation): a signal only sets a flag; every rank reads the flags of all ranks
  at the next safe point (the end of an iteration, after its history row and any save) with one
  ``allreduce`` (:func:`agreed`), so one signalled rank stops every rank at the same point, and
  they raise :class:`Interrupted` together; the caller writes the run folder and exits with 4;
- ``final`` (writing the final outputs): the flag is kept, the writes finish.

A second signal in any phase ends the process at once (exit status 128 + signal number) --
except one of another kind within ECHO s of the first, which is the same stop request (a batch
system that signals every process of a job, SIGTERM, while the job script forwards its own,
SIGUSR1: runs/slurm/train.sbatch under scancel ended without its save) -- also
while compiled code runs (a Numba kernel that does not return holds the main thread, where
Python runs its signal handlers): a watcher thread reads the signals from Python's wake-up fd
(``signal.set_wakeup_fd``, written by the C-level handler as a signal arrives) and ends the
process when the main thread has not acted on a second signal within ``GRACE`` seconds.
Every file ocnet writes is written under a temporary name and renamed (or appended by one
flushed line), so neither stop leaves a half-written file.
"""
import os
import signal
import threading
import time

from .errors import OcnetError

#: exit status of a run stopped by a signal after writing its run folder (resumable)
INTERRUPTED_STATUS = 4
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

_state = {"signal": 0, "t": 0.0, "phase": "early", "early": None, "wakeup": None}

#: seconds the watcher thread leaves the main thread to act on a second signal
GRACE = 1.0
#: seconds after the first signal in which a signal of another kind is its echo, not a second one
#: (a job script's trap runs when bash gets to it: seconds on a loaded node; a user's second
#: Ctrl-C is the same kind, never an echo)
ECHO = 5.0
#: seconds a rank other than 0 waits, on a signal in the early phase, for rank 0 to end the job
EARLY_WAIT = 2.0


class Interrupted(OcnetError):
    """Every rank stops at a safe point because a signal reached some rank; exit status 4."""

    status = INTERRUPTED_STATUS

    def __init__(self, signum):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def _rank0():
    return os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")) == "0"


def _say(text):
    try:
        os.write(2, (text + "\n").encode())
    except OSError:
        pass


def _echo(signum, first, since):
    """Whether signal ``signum`` is the echo of the first one (``first``, received ``since``
    seconds ago): another kind, within ECHO s."""
    return bool(first) and signum != first and since < ECHO


_KILL_SOON = ("; Open MPI 4's mpiexec kills the ranks 1 s after passing its SIGTERM on, most likely before the "
              "save: start it with OMPI_MCA_odls_base_sigkill_timeout=5 set (docs/hpc/long-runs.md)")


def _killed_soon(signum):
    """Whether a SIGTERM came from Open MPI 4's mpiexec (ORTE sets OMPI_MCA_orte_hnp_uri in the
    ranks) run without odls_base_sigkill_timeout, whose default 1 s ends ranks before a save."""
    env = os.environ
    return (signum == signal.SIGTERM and "OMPI_MCA_orte_hnp_uri" in env
            and "OMPI_MCA_odls_base_sigkill_timeout" not in env)


def _handler(signum, frame):
    name = signal.Signals(signum).name
    if _state["signal"] and _echo(signum, _state["signal"], time.monotonic() - _state["t"]):
        return  # the same stop request, from another sender
    if _state["signal"]:  # the second signal: at once
        if _state["phase"] == "early":  # (this rank is ending already: the second is mpiexec's end of
            os._exit(INTERRUPTED_STATUS)  # the job after another rank's abort, not the user's)
        _say(f"ocnet: second signal ({name}): ending at once")
        os._exit(128 + signum)
    if signum == signal.SIGTERM and "OMPI_COMM_WORLD_SIZE" in os.environ:  # (Open MPI's mpiexec sends
        name += " (under mpiexec, Ctrl-C arrives as SIGTERM too)"  # SIGTERM for Ctrl-C)
    _state["signal"], _state["t"] = signum, time.monotonic()
    if _state["phase"] == "early":
        # rank 0 notes the stop and ends the job; another rank waits for it first (a launcher that
        # signals every rank: its abort came first and ended rank 0 before the note, 3 times in 5
        # in a tester's runs) and does both itself when rank 0 was not signalled
        if not _rank0():
            time.sleep(EARLY_WAIT)
        early = _state["early"]
        if early is not None:
            try:
                early()
            except Exception:  # noqa: BLE001 - the stop must not fail on a note
                pass
        # (no run folder yet: -resume has nothing to continue, tester 42)
        again = "-resume continues in the run folder" if early is not None else "no run folder yet: start the run again"
        _say(f"ocnet: {name}: stopped before the first iteration (nothing to save; {again}); exit status "
             f"{INTERRUPTED_STATUS}")
        _abort_all()
    if _state["phase"] == "run" and _rank0():
        _say(f"ocnet: {name}: stopping at the end of this iteration after saving "
             "(a second signal ends at once)" + (_KILL_SOON if _killed_soon(signum) else ""))


def _abort_all():
    """End this rank now, and the job with it: MPI_Abort when MPI runs with more than one rank
    (the others may be blocked in a collective with this one), else _exit."""
    try:
        import sys
        if "mpi4py.MPI" in sys.modules:
            from mpi4py import MPI
            if MPI.Is_initialized() and not MPI.Is_finalized() and MPI.COMM_WORLD.Get_size() > 1:
                MPI.COMM_WORLD.Abort(INTERRUPTED_STATUS)
    except Exception:  # noqa: BLE001 - fall back to ending this rank
        pass
    os._exit(INTERRUPTED_STATUS)


def _watch(fd):
    """Watcher thread: counts the signals of SIGNALS as they arrive (one byte each on Python's
    wake-up fd); at the second, ends the process if the main thread has not within GRACE s."""
    nums, first, t0, signum = {int(x) for x in SIGNALS}, 0, 0.0, 0
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:  # uninstall() closed the write end
            return
        now = time.monotonic()
        for b in (b for b in data if b in nums):
            if not first:
                first, t0 = b, now
            elif not _echo(b, first, now - t0):
                signum = b
        if signum:
            time.sleep(GRACE)  # (the main thread's handler ends the process itself when it can run)
            if _state["phase"] == "early" and not _rank0():  # (mpiexec ending the job after rank 0's
                os._exit(INTERRUPTED_STATUS)  # abort: rank 0 said why)
            _say(f"ocnet: second signal ({signal.Signals(signum).name}) while compiled code runs: ending at once")
            os._exit(128 + signum)


def install():
    """Install the handlers (main thread; call once at start-up, before any work), and the watcher
    thread that ends the process on a second signal while the main thread runs compiled code."""
    for s in SIGNALS:
        signal.signal(s, _handler)
    if _state["wakeup"] is None:
        r, w = os.pipe()
        os.set_blocking(w, False)
        try:
            old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: no watcher (the handlers above still work)
            old = None
        if old != -1:  # (None, or the fd of an event loop, e.g. a notebook's: left to it)
            if old is not None:
                signal.set_wakeup_fd(old)
            os.close(r)
            os.close(w)
            return
        _state["wakeup"] = w
        threading.Thread(target=_watch, args=(r,), name="ocnet-signals", daemon=True).start()


def uninstall():
    """The default actions again (once everything is written: a signal then ends at once)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_DFL)
    if _state["wakeup"] is not None:
        signal.set_wakeup_fd(-1)
        os.close(_state["wakeup"])  # (the watcher's read returns empty: it ends)
        _state["wakeup"] = None


def on_early_stop(fn):
    """``fn()`` runs when a signal arrives in the early phase (on rank 0, or on the rank that got
    it when rank 0 did not), e.g. to note the stop in the run folder.  None: nothing."""
    _state["early"] = fn


def set_phase(phase):
    """'early', 'run' or 'final' (see the module docstring)."""
    if phase not in ("early", "run", "final"):
        raise ValueError(phase)
    _state["phase"] = phase


def requested():
    """The signal number this rank received (0: none)."""
    return _state["signal"]


def agreed(comm):
    """Collective: the largest signal number any rank received (0: none)."""
    from mpi4py import MPI
    return comm.allreduce(_state["signal"], op=MPI.MAX)


def check(comm):
    """Collective safe point: raise :class:`Interrupted` on every rank if any rank got a signal."""
    s = agreed(comm)
    if s:
        raise Interrupted(s)


def test_hook(stage, its=0):
    """Test hook: ``OCNET_TEST_SIGNAL=stage:iteration:SIGNAME[:target]`` sends SIGNAME there, from
    rank 0 (target ``rank=R``: from rank R) to itself, or to its parent (``parent``: mpiexec) or
    to process ``pid=P``.  Stages: ``warmup`` (before the JIT warm-up), ``row`` (after an
    iteration's history row, before its save), ``save`` (inside a checkpoint's writing),
    ``plot`` (before the final figures).  ``OCNET_TEST_ROW_SLEEP=seconds``: sleep that long at
    every ``row`` stage (a run that cannot finish by itself before a delayed signal arrives)."""
    if stage == "row" and os.environ.get("OCNET_TEST_ROW_SLEEP"):
        import time
        time.sleep(float(os.environ["OCNET_TEST_ROW_SLEEP"]))
    spec = os.environ.get("OCNET_TEST_SIGNAL", "")
    if not spec:
        return
    parts = spec.split(":")
    if len(parts) < 3 or parts[0] != stage or parts[1] != str(its):
        return
    target = parts[3] if len(parts) > 3 else ""
    rank = os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0"))
    want = target[5:] if target.startswith("rank=") else "0"
    if rank != want:
        return
    pid = os.getppid() if target == "parent" else int(target[4:]) if target.startswith("pid=") else os.getpid()
    stamp = os.environ.get("OCNET_TEST_SIGNAL_STAMP")
    if stamp:  # when the signal went out (the tests time the stop from here)
        import time
        with open(stamp + ".tmp", "w") as f:
            f.write(repr(time.time()))
        os.replace(stamp + ".tmp", stamp)
    os.kill(pid, getattr(signal, "SIG" + parts[2]))


def reset_for_tests():
    _state.update(signal=0, phase="early", early=None)
