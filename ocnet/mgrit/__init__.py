"""The layer solvers: layer-serial sweeps (serial), FAS MGRIT for the state (solver), linear
MGRIT backward in layers for the adjoint (adjoint), the state solve as a PETSc SNES (state_snes)
and the Numba row kernels they share (rowops).  Imports ocnet.base and ocnet.plugin."""
