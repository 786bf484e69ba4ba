"""Performance tools: per-phase timings from PETSc log events (phases; imports ocnet.mgrit only,
so the command line may use it), the performance model (model: operation counts and predictions)
and its calibration for a plugin problem (calibration: times the plugin's own batched forms; both
may import every other ocnet package).  ``python -m ocnet.perfmodel calibrate|predict``."""
