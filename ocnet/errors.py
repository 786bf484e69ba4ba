"""One error type for bad input, and the collective helpers that make every MPI rank agree on it."""


class OcnetError(Exception):
    """Bad input or an unusable configuration: reported as one line, exit status 2."""


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
