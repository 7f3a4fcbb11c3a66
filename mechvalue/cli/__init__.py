"""The `mechvalue` command line: one module per command group, argument helpers in `common`."""
