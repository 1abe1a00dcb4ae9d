"""Markdown output shared by the benchmark scripts."""

from __future__ import annotations

import datetime
import os
import platform
import sys


def write_table(path: str, script: str, argv: list[str] | None, text: str) -> None:
    """Write ``text`` to ``path`` under a line with the command, the time and the machine."""
    arguments = " ".join(argv if argv is not None else sys.argv[1:])
    header = (
        f"Command: `python benchmarks/{script} {arguments}`; "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}.\n\n"
    )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header + text + "\n")
