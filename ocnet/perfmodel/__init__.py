"""Performance tools: per-phase timings from PETSc log events (phases; imports ocnet.mgrit only,
so the command line may use it) and the performance model with its calibration (model; may import
every other ocnet package).  ``python -m ocnet.perfmodel calibrate|predict``."""
