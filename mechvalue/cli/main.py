"""`mechvalue` command line. Bad input exits with status 2 and a one-line reason."""

from __future__ import annotations

import argparse
import sys

from mechvalue.cli import (
    compare,
    doctor,
    graph,
    interp,
    measure,
    protocols,
    reproduce,
    run,
    steer_compare,
    validity,
)
from mechvalue.errors import MechValueError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mechvalue", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for group in (
        measure,
        interp,
        graph,
        reproduce,
        run,
        validity,
        steer_compare,
        protocols,
        compare,
        doctor,
    ):
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args) or 0  # a command returns None, or its exit status
    except MechValueError as e:
        print("mechvalue: error: " + " ".join(str(e).splitlines()), file=sys.stderr)  # always one line
        return 2


if __name__ == "__main__":
    sys.exit(main())
