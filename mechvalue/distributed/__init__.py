"""Running the study's grids on Ray: tasks (a condition x a block of roles, a block of bootstrap
resamples), model-holding actors that load the model and SAE from their paths, and the driver-side
bookkeeping (part files written as tasks finish, a per-stage, per-worker time summary)."""
