"""`mechvalue run`: the run folder's bookkeeping, the resources a stage receives, the stages in order,
and the HTML report."""
