"""The `mechvalue` command line: one module per command group, argument helpers in `common`.

Importing it sets the CPU thread policy (`mechvalue.threads`) before anything loads torch."""

from mechvalue.threads import apply_policy

apply_policy()
