"""The plugin contract and its toolkit: ControlProblem, the base class every problem derives from
(problem), loading a problem by name or ``package.module:Class`` (loader), and ``-check_adjoint``
(adjcheck).  problem and loader import only ocnet.base; adjcheck drives the solvers
(ocnet.mgrit, ocnet.optim) on the plugin it checks, importing them lazily."""
