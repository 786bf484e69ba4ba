"""Foundations shared by every layer: errors and the collective error channel (errors), option
tables (options), the layer grid and its block partition (grid), PETSc reason names (reasons),
the on-disk Numba cache (numba_cache), Numba's compile time (jit_clock) and clean stops on signals (signals).  Imports nothing from the rest of ocnet."""
