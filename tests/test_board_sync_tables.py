"""The reference board's sync script copies generated tables into the pages that quote
them, between markers, and refuses a page whose markers are missing or doubled."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sync(load_script):
    return load_script("leaderboard/synthetic-reference/diagnostics/sync_tables.py", "board_sync_tables")


def _block(name: str, body: str) -> str:
    return f"<!-- sync:{name}:begin -->\n\n{body}\n\n<!-- sync:{name}:end -->"


def test_tables_are_copied_between_markers_and_prose_is_kept(sync, tmp_path):
    board, board2 = tmp_path / "leaderboard/synthetic-reference", tmp_path / "leaderboard/synthetic-reference-v2"
    (board / "plots").mkdir(parents=True)
    board2.mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    (board / "table2.md").write_text("### Table 2\n\nintro\n\n| Model | A |\n|---|---:|\n"
                                     "| ae | 1.00 |\n| vae | 2.00 |\n\nnote after\n\n| x |\n|---|\n")
    (board2 / "table2.md").write_text("| Model | A |\n|---|---:|\n| ae | 3.00 |\n")
    (board / "plots/convergence.md").write_text("| method | plateau |\n|---|---:|\n| ae | 0.5 |\n")
    # README.md quotes the v2 board; the first board's README its own table
    old = "before\n\n" + _block("table2-v2", "| Model | A |\n|---|---:|\n| ae | 9.99 |") + "\n\nafter\n"
    (tmp_path / "README.md").write_text(old)
    (board / "README.md").write_text(_block("table2", "| Model | A |\n|---|---:|\n| ae | 1.00 |\n"
                                                      "| vae | 2.00 |") + "\n")
    (board2 / "README.md").write_text("v2\n" + _block("table2-v2", "stale") + "\n")
    (tmp_path / "docs/convergence.md").write_text("x\n" + _block("convergence", "stale") + "\ny\n")

    changed = sync.main(tmp_path)

    # the first board's README already matched: only the other three pages are rewritten
    assert changed == [Path("README.md"), Path("leaderboard/synthetic-reference-v2/README.md"),
                       Path("docs/convergence.md")]
    assert (tmp_path / "README.md").read_text() == (
        "before\n\n" + _block("table2-v2", "| Model | A |\n|---|---:|\n| ae | 3.00 |") + "\n\nafter\n")
    assert (board2 / "README.md").read_text() == (
        "v2\n" + _block("table2-v2", "| Model | A |\n|---|---:|\n| ae | 3.00 |") + "\n")
    assert (board / "README.md").read_text() == _block(
        "table2", "| Model | A |\n|---|---:|\n| ae | 1.00 |\n| vae | 2.00 |") + "\n"
    assert (tmp_path / "docs/convergence.md").read_text() == (
        "x\n" + _block("convergence", "| method | plateau |\n|---|---:|\n| ae | 0.5 |") + "\ny\n")
    assert sync.main(tmp_path) == []  # idempotent


@pytest.mark.parametrize("page", ["no markers here\n",
                                  _block("table2", "a") + "\n" + _block("table2", "b") + "\n"])
def test_a_page_without_exactly_one_block_is_refused(sync, page):
    with pytest.raises(ValueError, match=r"README.md: needs exactly one"):
        sync.replace_quote(page, "table2", "| a |\n|---|", Path("README.md"))


def test_the_committed_pages_have_their_markers(sync):
    root = REPO
    for name, _source, pages in sync.QUOTES:
        for page in pages:
            text = (root / page).read_text()
            assert text.count(f"<!-- sync:{name}:begin -->") == 1, page
            assert text.count(f"<!-- sync:{name}:end -->") == 1, page
