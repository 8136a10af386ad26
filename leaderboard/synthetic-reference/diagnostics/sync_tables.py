"""Copy the reference boards' generated tables into the hand-written pages that quote them.

leaderboard/synthetic-reference/README.md quotes the first board's Table 2 (``table2.md``,
generator v1); README.md and leaderboard/synthetic-reference-v2/README.md quote the v2
board's (the reference board on today's default data); docs/convergence.md quotes the
first board's convergence table (``plots/convergence.md``). Each quote
sits between two HTML comments, ``<!-- sync:NAME:begin -->`` and ``<!-- sync:NAME:end -->``,
and this script replaces what is between them with the first markdown table of the source
file, so the pages cannot drift from the generated tables. The prose around a table (fold
counts, exceptions) stays hand-written. Run from the repository root (both boards' reproduce.sh do)::

    python leaderboard/synthetic-reference/diagnostics/sync_tables.py
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

BOARD = Path("leaderboard/synthetic-reference")
BOARD_V2 = Path("leaderboard/synthetic-reference-v2")
# (marker name, generated source, pages that quote it)
QUOTES = [
    ("table2", BOARD / "table2.md", [BOARD / "README.md"]),
    ("table2-v2", BOARD_V2 / "table2.md", [Path("README.md"), BOARD_V2 / "README.md"]),
    ("convergence", BOARD / "plots" / "convergence.md", [Path("docs/convergence.md")]),
]


def first_table(text: str, source: Path) -> str:
    """The first run of consecutive ``|``-lines of a markdown file."""
    lines, seen = [], False
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append(line)
            seen = True
        elif seen:
            break
    if len(lines) < 2:
        raise ValueError(f"{source}: no markdown table in it")
    return "\n".join(lines)


def replace_quote(page: str, name: str, table: str, where: Path) -> str:
    """``page`` with the block between the ``name`` markers replaced by ``table``."""
    pattern = re.compile(rf"(<!-- sync:{name}:begin -->\n\n).*?(\n\n<!-- sync:{name}:end -->)",
                         re.DOTALL)
    if len(pattern.findall(page)) != 1:
        raise ValueError(f"{where}: needs exactly one '<!-- sync:{name}:begin -->' ... "
                         f"'<!-- sync:{name}:end -->' block")
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), page)


def main(root: Path = Path(".")) -> list[Path]:
    """Update every quoting page under ``root``; returns the pages that changed."""
    changed = []
    for name, source, pages in QUOTES:
        table = first_table((root / source).read_text(), root / source)
        for page in pages:
            path = root / page
            old = path.read_text()
            new = replace_quote(old, name, table, path)
            if new != old:
                path.write_text(new)
                changed.append(page)
    return changed


if __name__ == "__main__":
    try:
        for page in main():
            print(f"updated {page}")
    except (OSError, ValueError) as exc:
        sys.exit(f"sync_tables: {exc}")
