"""Errors and how every MPI rank ends on them.

Exit status: 0 done, 1 a bug (traceback), 2 bad input or an unusable configuration (one line),
3 the run failed numerically (a non-finite objective or gradient, or an unconverged exact solve
under ``-unconverged stop``; one line, the last good parameters kept in the run folder),
4 stopped by a signal after saving the run folder (ocnet.base.signals; docs/hpc/long-runs.md).

``finish`` makes every rank end on an error raised on any rank at any moment: the failing ranks
wait a few seconds on a non-blocking barrier of a communicator reserved for this; when every
rank arrives (a collective error, e.g. a bad option), rank 0 prints the first message in rank
order and all return the status; when some rank does not arrive (it is computing or blocked in a
collective with the failing rank), the failing rank prints its message and aborts the job.
"""
import sys
import time

WAIT_SECONDS = 3.0


class OcnetError(Exception):
    """Bad input or an unusable configuration: reported as one line, exit status 2."""

    status = 2


class NumericalFailure(OcnetError):
    """The run went non-finite or an exact solve did not converge under ``-unconverged stop``:
    one line, exit status 3."""

    status = 3


class PeerStop(Exception):
    """This rank stops because another rank reported an error (its message is printed there)."""


def collective_check(comm, ok, message):
    """Raise OcnetError on *every* rank if ``ok`` is false on *any* rank.

    The message of the lowest failing rank is the one reported, so a check that only one rank
    can make (a file it read, a value it owns) still stops all ranks together instead of hanging
    the others in the next collective call.
    """
    flags = comm.allgather(None if ok else str(message))
    for msg in flags:
        if msg is not None:
            raise OcnetError(msg)


class ErrorChannel:
    """A duplicate of the world communicator used only to agree on errors (its barrier never
    matches a collective of the computation)."""

    def __init__(self, comm):
        self.comm = comm
        self.errcomm = comm.Dup() if comm.Get_size() > 1 else None
        # hook (status, text) of the rank that reports an error (e.g. a run folder's summary): rank 0,
        # or a failing rank that ends the job alone
        self.on_report = None

    def _report(self, status, text):
        if self.on_report is not None:
            try:  # (best effort: the error is what matters)
                self.on_report(status, text)
            except Exception:  # noqa: BLE001
                pass

    def finish(self, status, text):
        """Called by every failing rank; ``text``: what it would print (None after PeerStop).
        Returns the exit status when every rank failed; otherwise aborts the job."""
        comm = self.comm
        if self.errcomm is None:
            _write(text)
            self._report(status, text)  # (one rank)
            return status
        req = self.errcomm.Ibarrier()
        deadline = time.monotonic() + WAIT_SECONDS
        while not req.Test():
            if time.monotonic() > deadline:  # some rank is still busy: end them all from here
                _write(text)
                self._report(status, text)
                comm.Abort(status)
            time.sleep(0.005)
        reports = self.errcomm.allgather((status, text))
        first = next(((s, t) for s, t in reports if t is not None), (status, None))
        if comm.Get_rank() == 0:
            _write(first[1])
            self._report(*first)
        return first[0]


def _write(text):
    if text:
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
        sys.stderr.flush()
