"""The ``s2kan-dyn`` command line: one entry point, one module per subcommand.

Each module in :data:`COMMANDS` defines ``add_parser(subparsers)`` and
``run(args) -> int``. Modules import their heavy dependencies inside
``run`` so that ``s2kan-dyn --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .. import __version__
from ..errors import S2KANDynError

COMMANDS = ("systems", "simulate", "discover", "forecast", "compare", "benchmark")

log = logging.getLogger("s2kan_dyn")


class _Parser(argparse.ArgumentParser):
    """Argument parser whose usage errors are one line plus a hint, exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}. Run '{self.prog} --help' for usage.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="s2kan-dyn",
        description="Find the governing equations of a dynamical system from time series, "
        "forecast it, and compare with SINDy.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug log lines")
    parser.add_argument("--version", action="version", version=f"s2kan-dyn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name}_cmd")
        module.add_parser(sub)
    return parser


def configure_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    try:
        return int(args.run(args) or 0)
    except S2KANDynError as exc:
        print(f"s2kan-dyn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"s2kan-dyn {args.command}: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `s2kan-dyn systems | head`):
        # point stdout at devnull so the interpreter's final flush is silent.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
