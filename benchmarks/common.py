"""Parallel runs and Markdown output shared by the benchmark scripts."""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import platform
import sys
from typing import Callable, Sequence


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


def run_parallel(function: Callable[..., dict], tasks: Sequence[tuple], jobs: int, describe: Callable[[dict], str]) -> list[dict]:
    """Run ``function(*task)`` for every task in ``jobs`` processes; return the rows in task order.

    ``describe(row)`` is printed to standard error as each row arrives.
    """
    rows: list[dict] = [{} for _ in tasks]
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(function, *task): k for k, task in enumerate(tasks)}
        for future in concurrent.futures.as_completed(futures):
            row = future.result()
            rows[futures[future]] = row
            print(describe(row), file=sys.stderr, flush=True)
    return rows
