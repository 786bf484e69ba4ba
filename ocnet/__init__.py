"""ocnet: layer-parallel training of residual networks as discrete optimal control, with PETSc.

The subpackages, bottom to top; a package imports only those below it (the exceptions are named
in each package's docstring):

- ``ocnet.base``      errors and the MPI error channel, option tables, the layer grid, Numba's cache
- ``ocnet.plugin``    the plugin contract (ControlProblem), problem loading, the adjoint checker
- ``ocnet.mgrit``     the layer solvers: layer-serial sweeps, FAS MGRIT (state), adjoint MGRIT
- ``ocnet.optim``     the reduced objective, modes, TAO drivers, one-shot TAO, checkpoints
- ``ocnet.run``       the command line, run folders, launching under MPI
- ``ocnet.perfmodel`` phase timings and the performance model (``python -m ocnet.perfmodel``)

The built-in problems are the separate package ``ocnet_problems`` (folder ``problems/``).
"""
__version__ = "0.1.0"
