"""Optimisation: the reduced objective J(theta) with its gradient from a state and an adjoint
solve (objective, layout), the serial/exact/one-shot modes (modes), the TAO driver (optimize),
the paper's one-shot TAO (oneshot), residual-based stopping (stopping) and checkpoints
(checkpoint).  Imports ocnet.base, ocnet.plugin and ocnet.mgrit."""
