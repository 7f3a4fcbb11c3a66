"""One error type for bad user input, so the CLI can print it and exit 2."""


class MechValueError(ValueError):
    """Bad input: the message names the file, row, column or value at fault."""
