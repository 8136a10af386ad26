"""Wide tables like the paper's Table 1 and Table 2, rendered as Markdown and LaTeX.

Cells are mean +/- std over folds (mean alone for a single fold, like the paper's Thresh
row), the best value of a column in bold, and `*` where the best entry is significantly
better than every other entry (significance.csv, with the settings stated under the
table). Entries carrying a flag are marked with a dagger and the flags are listed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .significance import best_is_significant, group_rows


@dataclass(frozen=True)
class ColumnSpec:
    """One metric column: which leaderboard rows fill it and how they are shown.

    candidates: (level, metric) pairs in order of preference, e.g. the pooled best Dice
    of per_dataset.csv before the mean per-volume Dice. threshold_sources: preferred
    sources; `strict` means no other source may stand in (a Dice at a validation
    threshold is not the paper's [DICE]).
    """

    label: str
    candidates: tuple[tuple[str, str], ...]
    scale: float = 100.0
    decimals: int = 2
    higher_is_better: bool = True
    threshold_sources: tuple[str, ...] = ("any", "oracle", "", "none")
    strict: bool = False


DICE = ColumnSpec("[DICE] [%]", (("dataset", "dice_pooled"), ("dataset", "best_dice"),
                                 ("dataset", "dice_best"), ("volume", "dice")),
                  threshold_sources=("oracle",), strict=True)
AUPRC = ColumnSpec("AUPRC [%]", (("dataset", "auprc_pooled"), ("dataset", "pooled_auprc"),
                                 ("dataset", "auprc"), ("volume", "auprc")))
SSIM = ColumnSpec("SSIM ↑", (("healthy", "ssim"),))
PSNR = ColumnSpec("PSNR ↑", (("healthy", "psnr"),), scale=1.0)
LPIPS = ColumnSpec("LPIPS (e-3) ↓", (("healthy", "lpips"),), scale=1e3,
                   higher_is_better=False)
L1 = ColumnSpec("l1-error (e-3) ↓", (("healthy", "l1"),), scale=1e3, higher_is_better=False)
# the same over all voxels, background included: the authors' code's l1 (docs/protocol.md)
L1_ALL = ColumnSpec("l1 all voxels (e-3) ↓", (("healthy", "l1_all"),), scale=1e3,
                    higher_is_better=False)
# scoring.py writes the ratio pooled per dataset (per_dataset.csv) and per volume
# (recon_quality.csv, melted at the "healthy" level with the healthy-set metrics)
L1_RATIO = ColumnSpec("l1-ratio ↑", (("dataset", "l1_ratio_pooled"), ("dataset", "l1_ratio"),
                                     ("volume", "l1_ratio"), ("healthy", "l1_ratio")),
                      scale=1.0)

PAPER_DATASETS = ("ixi", "brats", "mslub", "atlas", "wmh")
# the paper's Table 2, shipped as data (benchmark/references; read here without importing
# that package, which builds on this module)
PAPER_TABLE = Path(__file__).resolve().parents[1] / "references" / "behrendt2025_table2.csv"


def paper_method_order(path: Path = PAPER_TABLE) -> tuple[str, ...]:
    """The benchmark methods of a paper table, in its row order: the order the leaderboard
    lists them in (read from the table, so that no list of method names is kept in code)."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        return tuple(dict.fromkeys(row["method"] for row in rows if row["method"]))


PAPER_METHODS = paper_method_order()


@dataclass
class Column:
    dataset: str
    sequence: str
    spec: ColumnSpec
    group: tuple | None  # (dataset, sequence, metric, level, threshold_source)


@dataclass
class Table:
    title: str
    caption: str
    columns: list[Column]
    entries: list[str]
    cells: dict[tuple[str, int], str] = field(default_factory=dict)  # plain text
    bold: set = field(default_factory=set)
    star: set = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


def _order(name: str, paper: tuple[str, ...], prefix: bool = False) -> tuple:
    """Sort key putting known names in the paper's order (datasets match by prefix,
    e.g. BraTS21; methods exactly or followed by a variant suffix)."""
    low = name.lower()
    for i, p in enumerate(paper):
        if low == p or low.startswith((p + " ", p + "-")) or (prefix and low.startswith(p)):
            return (i, low)
    return (len(paper), low)


def ordered_datasets(board: pd.DataFrame, levels: tuple[str, ...]) -> list[tuple[str, str]]:
    """(dataset, sequence) pairs with rows at these levels, in the paper's order."""
    sel = board[board["level"].isin(levels)][["dataset", "sequence"]].drop_duplicates()
    pairs = [tuple(x) for x in sel.itertuples(index=False)]
    return sorted(pairs, key=lambda p: _order(p[0], PAPER_DATASETS, prefix=True) + (p[1],))


def resolve(board: pd.DataFrame, dataset: str, sequence: str, spec: ColumnSpec
            ) -> tuple | None:
    """The (dataset, sequence, metric, level, threshold_source) group filling a column."""
    here = board[(board["dataset"] == dataset) & (board["sequence"] == sequence)]
    for level, metric in spec.candidates:
        rows = here[(here["level"] == level) & (here["metric"] == metric)]
        if rows.empty:
            continue
        sources = set(rows["threshold_source"])
        preferred = [s for s in spec.threshold_sources if s in sources]
        if preferred:
            return (dataset, sequence, metric, level, preferred[0])
        if not spec.strict:
            return (dataset, sequence, metric, level, min(sources))
    return None


def table1_columns(board: pd.DataFrame) -> list[Column]:
    """Paper Table 1: reconstruction quality on healthy sets, l1-ratio per unhealthy set."""
    unhealthy = [(d, s) for d, s in ordered_datasets(board, ("volume", "dataset"))
                 if resolve(board, d, s, L1_RATIO) is not None]
    # recon_quality.csv also scores the unhealthy sets (their l1 ratio): not healthy columns
    cols = [Column(d, s, spec, None) for d, s in ordered_datasets(board, ("healthy",))
            if (d, s) not in unhealthy for spec in (SSIM, PSNR, LPIPS, L1, L1_ALL)]
    cols += [Column(d, s, L1_RATIO, None) for d, s in unhealthy]
    return _resolved(board, cols)


def table2_columns(board: pd.DataFrame) -> list[Column]:
    """Paper Table 2: [DICE] and AUPRC per unhealthy data set."""
    cols = [Column(d, s, spec, None) for d, s in ordered_datasets(board, ("volume", "dataset"))
            for spec in (DICE, AUPRC)]
    return _resolved(board, cols)


def _resolved(board: pd.DataFrame, cols: list[Column]) -> list[Column]:
    for c in cols:
        c.group = resolve(board, c.dataset, c.sequence, c.spec)
    return [c for c in cols if c.group is not None]


def volume_counterpart(board: pd.DataFrame, group: tuple) -> tuple | None:
    """The per-volume group of a pooled column's metric, e.g. (BraTS21, t2, auprc_pooled,
    dataset, none) -> (BraTS21, t2, auprc, volume, any); None if the board has none.

    A pooled metric has one value per fold, so with few folds no fold-level test can be
    significant (3 folds a side, unpaired: p >= 0.1); the same metric per volume, paired
    by (fold, volume), is what can say whether the best entry is better."""
    dataset, sequence, metric, level, source = group
    if level != "dataset" or not metric.endswith("_pooled"):
        return None
    per_volume = metric[: -len("_pooled")]
    rows = board[(board["dataset"] == dataset) & (board["sequence"] == sequence)
                 & (board["metric"] == per_volume) & (board["level"] == "volume")]
    for candidate in (source, "any"):
        if (rows["threshold_source"] == candidate).any():
            return (dataset, sequence, per_volume, "volume", candidate)
    return None


def star_group(board: pd.DataFrame, sig: pd.DataFrame, group: tuple) -> tuple:
    """The test group behind a column's asterisk: its own, or for a pooled column the
    per-volume test of the same metric where significance.csv has one run per volume."""
    counterpart = volume_counterpart(board, group)
    if counterpart is None or sig.empty:
        return group
    sel = group_rows(sig, counterpart)
    return counterpart if len(sel) and (sel["unit"] == "volume").all() else group


def fmt(mean: float, std: float, n: int, scale: float, decimals: int) -> str:
    if not np.isfinite(mean):
        return "–"
    text = f"{mean * scale:.{decimals}f}"
    return text if n < 2 or not np.isfinite(std) else f"{text} ± {std * scale:.{decimals}f}"


def build_table(board: pd.DataFrame, sig: pd.DataFrame, columns: list[Column],
                title: str, caption: str) -> Table:
    """Fill cells, bold marks (best per column, ties included) and asterisks."""
    entries = sorted(board["entry"].unique(), key=lambda e: _order(e, PAPER_METHODS))
    table = Table(title, caption, columns, [])
    used = set()
    keys = ["dataset", "sequence", "metric", "level", "threshold_source"]
    for j, col in enumerate(columns):
        rows = board
        for k, v in zip(keys, col.group):
            rows = rows[rows[k] == v]
        rows = rows.set_index("entry")
        spec = col.spec
        shown = {}
        for e in rows.index:
            r = rows.loc[e]
            table.cells[(e, j)] = fmt(r["mean"], r["std"], r["n_folds"], spec.scale,
                                      spec.decimals)
            shown[e] = round(r["mean"] * spec.scale, spec.decimals)
            used.add(e)
        if len(shown) < 2:
            continue
        best_value = (max if spec.higher_is_better else min)(shown.values())
        best = [e for e, v in shown.items() if v == best_value]
        table.bold.update((e, j) for e in best)
        tested = star_group(board, sig, col.group)
        if len(best) == 1 and not sig.empty and best_is_significant(sig, tested, best[0]):
            table.star.add((best[0], j))
    table.entries = [e for e in entries if e in used]
    table.notes = [f"{column_header(c)}: metric `{c.group[2]}` "
                   f"({_LEVELS[c.group[3]]}), threshold source "
                   f"`{c.group[4] or 'n/a'}`" for c in columns]
    return table


_LEVELS = {"volume": "mean over volumes per fold", "dataset": "pooled per fold",
           "healthy": "recon_quality.csv, mean over volumes per fold"}


def column_header(col: Column) -> str:
    seq = f" ({col.sequence})" if col.sequence else ""
    return f"{col.dataset}{seq} {col.spec.label}"


def render_markdown(table: Table, marks: dict[str, str] | None = None) -> str:
    """Markdown table; `marks` maps an entry to a suffix such as a dagger for flags."""
    marks = marks or {}
    lines = [f"### {table.title}", "", table.caption, "",
             "| Model | " + " | ".join(column_header(c) for c in table.columns) + " |",
             "|---|" + "---:|" * len(table.columns)]
    for e in table.entries:
        cells = []
        for j in range(len(table.columns)):
            text = table.cells.get((e, j), "–")
            if (e, j) in table.bold:
                text = f"**{text}**"
            if (e, j) in table.star:
                text += "\\*"
            cells.append(text)
        lines.append(f"| {e}{marks.get(e, '')} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"),
                 ("#", "\\#"), ("±", "$\\pm$"), ("↑", "$\\uparrow$"),
                 ("↓", "$\\downarrow$"), ("–", "--"), ("†", "$^\\dagger$")):
        text = text.replace(a, b)
    return text


def render_latex(table: Table, marks: dict[str, str] | None = None) -> str:
    """booktabs LaTeX table with one column group per data set, as in the paper."""
    marks = marks or {}
    groups: list[tuple[str, int]] = []
    for c in table.columns:
        name = f"{c.dataset} ({c.sequence})" if c.sequence else c.dataset
        if groups and groups[-1][0] == name:
            groups[-1] = (name, groups[-1][1] + 1)
        else:
            groups.append((name, 1))
    lines = ["\\begin{table}", "\\centering", f"\\caption{{{_tex(table.caption)}}}",
             "\\begin{tabular}{l" + "c" * len(table.columns) + "}", "\\toprule",
             "Model & " + " & ".join(f"\\multicolumn{{{n}}}{{c}}{{{_tex(g)}}}"
                                     for g, n in groups) + " \\\\",
             " & " + " & ".join(_tex(c.spec.label) for c in table.columns) + " \\\\",
             "\\midrule"]
    for e in table.entries:
        cells = []
        for j in range(len(table.columns)):
            text = _tex(table.cells.get((e, j), "–"))
            if (e, j) in table.bold:
                text = f"\\textbf{{{text}}}"
            if (e, j) in table.star:
                text += "$^{*}$"
            cells.append(text)
        lines.append(_tex(e + marks.get(e, "")) + " & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"
