"""The user documentation under docs/ against the code: options, public names, examples, links.

- every option of every subcommand (from ``s2kan_dyn.cli.build_parser()``)
  appears in that subcommand's section of docs/cli.md;
- every public name of the public modules appears in a code span of
  docs/api.md;
- every fenced ``python`` block of the docs runs, each in an empty working
  directory. A block after the line ``<!-- test: slow -->`` is marked slow;
- every relative link and image of the docs points to an existing file.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest

from s2kan_dyn.cli import build_parser

DOCS = Path(__file__).resolve().parents[1] / "docs"
# The pages this test keeps honest. docs/benchmarks* are records of runs, not guides.
PAGES = ("index.md", "concepts.md", "api.md", "cli.md", "formats.md", "limits.md")
PUBLIC_MODULES = (
    "s2kan_dyn",
    "s2kan_dyn.discovery",
    "s2kan_dyn.regression",
    "s2kan_dyn.model",
    "s2kan_dyn.metrics",
    "s2kan_dyn.baselines",
    "systems",
)
SLOW_MARK = "<!-- test: slow -->"
MAX_IMAGE_BYTES = 200 * 1024


def read_page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subparsers.choices)


def option_names(parser: argparse.ArgumentParser) -> list[str]:
    """Return the long option strings (or the only string) and positional metavars of a parser."""
    names = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            longs = [s for s in action.option_strings if s.startswith("--")]
            names.extend(longs or action.option_strings)
        else:
            names.append(action.metavar or action.dest.upper())
    return names


def cli_section(text: str, command: str) -> str:
    """Return the part of docs/cli.md under the heading ``## s2kan-dyn COMMAND``."""
    match = re.search(rf"^## `?s2kan-dyn {command}`?\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"docs/cli.md has no section '## s2kan-dyn {command}'"
    return match.group(1)


def mentions_option(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return list(names)


def code_spans(text: str) -> str:
    """Return the text of every inline code span and fenced block, joined by newlines."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    inline = re.findall(r"`([^`]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    return "\n".join(fenced + inline)


def python_blocks() -> list:
    """Return one pytest param per fenced python block: (page, first line, code)."""
    params = []
    for page in PAGES:
        lines = read_page(page).splitlines()
        k = 0
        while k < len(lines):
            if lines[k].strip() == "```python":
                start = k + 1
                end = start
                while lines[end].strip() != "```":
                    end += 1
                slow = any(lines[j].strip() == SLOW_MARK for j in range(max(0, k - 2), k))
                marks = [pytest.mark.slow] if slow else []
                code = "\n".join(lines[start:end])
                params.append(pytest.param(page, start + 1, code, marks=marks, id=f"{page}:{start + 1}"))
                k = end
            k += 1
    return params


@pytest.mark.parametrize("command", sorted(subcommand_parsers()))
def test_cli_docs_every_option(command):
    section = cli_section(read_page("cli.md"), command)
    for option in option_names(subcommand_parsers()[command]):
        assert mentions_option(section, option), f"docs/cli.md, section {command}: option {option} is missing"


def test_cli_docs_root_options():
    text = read_page("cli.md")
    for option in option_names(build_parser()):
        assert mentions_option(text, option), f"docs/cli.md: root option {option} is missing"


def test_cli_docs_exit_codes():
    text = read_page("cli.md")
    for code in ("0", "2", "130"):
        assert re.search(rf"\|\s*{code}\s*\|", text), f"docs/cli.md: exit code {code} is not in a table row"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_api_docs_every_public_name(module_name):
    spans = code_spans(read_page("api.md"))
    for name in public_names(module_name):
        found = re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", spans)
        assert found is not None, f"docs/api.md: {module_name}.{name} is not in any code span"


@pytest.mark.parametrize(("page", "line", "code"), python_blocks())
def test_docs_python_example(page, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"docs/{page}:{line}", "exec"), namespace)


def heading_anchors(text: str) -> set[str]:
    """Return the GitHub-style anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#+\s+(.*?)\s*$", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower())
        anchors.add(slug.replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", PAGES)
def test_docs_links_resolve(page):
    text = read_page(page)
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path = DOCS / target if target else DOCS / page
        assert path.exists(), f"docs/{page}: link target {target} not found"
        if anchor and path.suffix == ".md":
            anchors = heading_anchors(path.read_text(encoding="utf-8"))
            assert anchor in anchors, f"docs/{page}: anchor #{anchor} not found in {path.name}"


def test_docs_images_small():
    images = sorted((DOCS / "images").glob("concepts_*.png"))
    assert images, "docs/images has no concepts_*.png; run python docs/make_figures.py"
    for image in images:
        size = image.stat().st_size
        assert size < MAX_IMAGE_BYTES, f"{image.name} is {size} bytes, over {MAX_IMAGE_BYTES}"


@pytest.mark.parametrize("page", PAGES)
def test_docs_table_rows_match_header(page):
    # A '|' inside a code span still splits a Markdown table cell, which
    # shifts every later cell of that row.
    text = re.sub(r"^```.*?^```", lambda m: "\n" * m.group(0).count("\n"), read_page(page), flags=re.M | re.S)
    header_cells = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            header_cells = None
            continue
        cells = len(re.findall(r"(?<!\\)\|", line))
        if header_cells is None:
            header_cells = cells
        assert cells == header_cells, f"docs/{page}: table row at line {number} has {cells - 1} cells, header {header_cells - 1}"
