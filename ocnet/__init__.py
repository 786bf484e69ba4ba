"""ocnet: layer-parallel training of residual networks as discrete optimal control, with PETSc."""
__version__ = "0.1.0"
