"""PETSc converged-reason codes by name (TAO, KSP, SNES), for messages and run records."""
from petsc4py import PETSc


def reason_name(code, enum=None):
    """PETSc's name of a converged reason of ``enum`` (a ``PETSc.*.ConvergedReason`` class; default
    TAO's), e.g. -6 -> 'DIVERGED_LS_FAILURE'; the number itself when it has no name."""
    enum = enum or PETSc.TAO.ConvergedReason
    names = {v: k for k, v in vars(enum).items() if k.isupper() and isinstance(v, int)}
    return names.get(int(code), str(code))
