"""``s2kan-dyn systems``: print the catalog of systems as a table."""

from __future__ import annotations

import shutil

COLUMNS = ("name", "dimension", "kind", "lyapunov_time", "equations")
HEADERS = {"name": "name", "dimension": "dim", "kind": "class", "lyapunov_time": "Lyapunov time", "equations": "equations"}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "systems",
        help="list the catalog of dynamical systems",
        description="List the catalog's systems: name, dimension, class of terms, Lyapunov "
        "time (chaotic systems) and equations at the default parameters.",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--parameters", action="store_true", help="add the default parameters and the source"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    import systems

    columns = COLUMNS + (("parameters", "source") if args.parameters else ())
    rows = [systems.get(name).table_row() for name in systems.names()]
    if args.markdown:
        print(format_markdown(rows, columns))
    else:
        print(format_text(rows, columns))
    return 0


def format_markdown(rows: list[dict[str, str]], columns) -> str:
    """Return a Markdown table with the equations of each system in one cell."""
    lines = [
        "| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = [row[c].replace("|", "\\|") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_text(rows: list[dict[str, str]], columns) -> str:
    """Return an aligned plain-text table with one equation per line."""
    short = [c for c in columns if c not in ("equations", "source")]
    widths = {c: max(len(HEADERS.get(c, c)), *(len(r[c]) for r in rows)) for c in short}
    indent = sum(widths[c] + 2 for c in short)
    # Fall back to a fixed indent when the short columns fill a narrow terminal.
    if indent > shutil.get_terminal_size((120, 24)).columns // 2:
        indent = 4
    lines = ["  ".join(HEADERS.get(c, c).ljust(widths[c]) for c in short) + "  equations"]
    for row in rows:
        equations = row["equations"].split("; ")
        head = "  ".join(row[c].ljust(widths[c]) for c in short) + "  "
        if indent == 4:
            lines.append(head.rstrip())
            lines.extend(" " * indent + e for e in equations)
        else:
            lines.append(head + equations[0])
            lines.extend(" " * indent + e for e in equations[1:])
        if "source" in columns:
            lines.append(" " * indent + "source: " + row["source"])
    return "\n".join(lines)
