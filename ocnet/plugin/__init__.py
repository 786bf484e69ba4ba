"""The plugin contract and its toolkit: ControlProblem, the base class every problem derives from
(problem; also the guard against inherited batched forms written for another step), loading a
problem by name or ``package.module:Class`` (loader), fast plugins from two jitted kernels with
every batched form generated (kernels, its loop template kernel_loops), the fast activations
plugin kernels call (activations), and ``-check_adjoint`` (adjcheck).  problem, loader, kernels
and activations import only ocnet.base (and numpy/numba); adjcheck drives the solvers
(ocnet.mgrit, ocnet.optim) on the plugin it checks, importing them lazily."""
