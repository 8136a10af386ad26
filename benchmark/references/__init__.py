"""Published result tables to compare a board against, and which board entry each row is.

A reference table is a CSV in long format, one published number per line; ``#`` lines
before the header hold its citation. Columns (docs/rank-agreement.md):

    model     the published row, unique per table, e.g. ``cDDPM (ENS+SSL)``
    method    the benchmark's method name (``python -m benchmark list``), e.g. ``cddpm``
    tags      result tags the board entry must carry, in the board's own notation,
              e.g. ``[ens=True] [ssl=True]``; empty: any variant of the method
    cohort    the published cohort name, e.g. ``ATLAS``
    dataset   the benchmark's data set it corresponds to, e.g. ``ATLAS_v2``
    sequence  t1 or t2
    metric    one of METRICS (auprc, dice = the paper's [DICE], l1_ratio, ssim, psnr, lpips, l1)
    unit      as published (%, dB, e-3, or empty); informative only
    mean, std as printed (std empty where the table gives none)
    significant  True where the table marks the best as significantly better

Rows shipped here (package data): the paper's Table 2 (``TABLE2``, the default) and
Table 1 (``TABLE1``) of Behrendt et al., Computers in Biology and Medicine 186:109660
(2025), transcribed as printed.

Matching (``match_entries``): a board entry such as
``cddpm [ens=True] [test_t=250+500+750] [ssl=True] [cond_dim=128]`` stands for the
reference row with the same method whose tags are all among the entry's tags (values
compared case-insensitively). A method the reference does not have is an error; an entry
whose method is there but whose variant matches no row (an ablation the table does not
report) is left out, with the reason; two entries on one row, or one entry on two rows,
is an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.leaderboard.tables import AUPRC, DICE, L1, L1_RATIO, LPIPS, PSNR, SSIM, ColumnSpec

HERE = Path(__file__).parent
TABLE2 = HERE / "behrendt2025_table2.csv"
TABLE1 = HERE / "behrendt2025_table1.csv"
COLUMNS = ("model", "method", "tags", "cohort", "dataset", "sequence", "metric", "unit",
           "mean", "std", "significant")
# a reference's metric -> the board's table column it is compared with (which board number
# that is, its display scale, and whether higher is better)
METRICS: dict[str, ColumnSpec] = {"auprc": AUPRC, "dice": DICE, "l1_ratio": L1_RATIO,
                                  "ssim": SSIM, "psnr": PSNR, "lpips": LPIPS, "l1": L1}
_TAG = re.compile(r"\[([^=\]\s]+)=([^\]]*)\]")


def parse_tags(text: str, where: str = "tags") -> dict[str, str]:
    """``"[ens=True] [ssl=False]"`` -> {"ens": "True", "ssl": "False"}; the inverse of
    the suffix ``benchmark.leaderboard.load.entry_names`` writes. Anything else than
    ``[key=value]`` groups separated by spaces is an error naming ``where``."""
    text = str(text or "").strip()
    rest = _TAG.sub("", text).strip()
    if rest:
        raise ValueError(f"{where}: cannot read {text!r} as result tags: expected "
                         f"'[key=value] [key=value] ...', found {rest!r} outside brackets")
    return {k: v for k, v in _TAG.findall(text)}


def entry_tags(entry: str, method: str) -> dict[str, str]:
    """The result tags of a leaderboard entry: ``rd [pretrained=False]`` -> {pretrained: False}."""
    if entry != method and not entry.startswith(method + " "):
        raise ValueError(f"board entry {entry!r} does not start with its method {method!r}")
    return parse_tags(entry[len(method):], where=f"board entry {entry!r}")


def tags_match(required: dict[str, str], tags: dict[str, str]) -> bool:
    """Every required tag is among ``tags`` with the same value (case-insensitive)."""
    return all(k in tags and str(tags[k]).lower() == str(v).lower()
               for k, v in required.items())


@dataclass
class Reference:
    """A reference table: its rows (COLUMNS, mean/std as floats) and its citation."""

    path: Path
    rows: pd.DataFrame
    citation: list[str] = field(default_factory=list)

    def models(self) -> pd.DataFrame:
        """One line per published row: model, method, tags (a dict)."""
        out = self.rows.drop_duplicates("model")[["model", "method", "tags"]].copy()
        out["tags"] = [parse_tags(t, f"{self.path}: model {m!r}")
                       for m, t in zip(out["model"], out["tags"])]
        return out.reset_index(drop=True)

    def values(self, metric: str, dataset: str, sequence: str) -> pd.Series:
        """{model: mean} of one metric on one data set and sequence, in the table's order."""
        r = self.rows
        sel = r[(r["metric"] == metric) & (r["dataset"] == dataset) & (r["sequence"] == sequence)]
        return sel.set_index("model")["mean"]


def read_reference(path: str | Path) -> Reference:
    """Read and check a reference table; every problem is a ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference table not found: {path}")
    text = path.read_text(encoding="utf-8").splitlines()
    citation = [line.lstrip("#").strip() for line in text if line.startswith("#")]
    try:
        rows = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: no header line (columns {', '.join(COLUMNS)})") from None
    missing = [c for c in COLUMNS if c not in rows.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a reference table has "
                         f"{', '.join(COLUMNS)} (docs/rank-agreement.md)")
    rows = rows[list(COLUMNS)].apply(lambda c: c.str.strip())
    bad = sorted(set(rows["metric"]) - set(METRICS))
    if bad:
        raise ValueError(f"{path}: unknown metric(s) {bad}; known: {', '.join(METRICS)}")
    for col in ("mean", "std"):
        number = pd.to_numeric(rows[col].replace("", "nan"), errors="coerce")
        wrong = rows.loc[number.isna() & (rows[col] != "")]
        if not wrong.empty or (col == "mean" and number.isna().any()):
            line = (wrong if not wrong.empty else rows[number.isna()]).iloc[0]
            raise ValueError(f"{path}: {col} {line[col]!r} of {line['model']} "
                             f"({line['dataset']}, {line['metric']}) is not a number")
        rows[col] = number
    rows["significant"] = rows["significant"].str.lower() == "true"
    rows["sequence"] = rows["sequence"].str.lower()  # the board writes t1/t2
    _check_unique(rows, path)
    return Reference(path, rows.reset_index(drop=True), citation)


def _check_unique(rows: pd.DataFrame, path: Path) -> None:
    dup = rows[rows.duplicated(["model", "dataset", "sequence", "metric"], keep=False)]
    if not dup.empty:
        r = dup.iloc[0]
        raise ValueError(f"{path}: {r['model']} has {r['metric']} on {r['dataset']} twice")
    per_model = rows.groupby("model")[["method", "tags"]].nunique()
    split = per_model[(per_model > 1).any(axis=1)]
    if not split.empty:
        raise ValueError(f"{path}: model {split.index[0]!r} is given with several "
                         "method/tags values; one published row is one board entry")
    keys = rows.drop_duplicates("model")
    same = keys[keys.duplicated(["method", "tags"], keep=False)]
    if not same.empty:
        raise ValueError(f"{path}: models {sorted(same['model'])} have the same method and "
                         "tags, so no board entry could tell them apart")


@dataclass
class Matching:
    """Which board entry stands for which reference row."""

    model: dict[str, str]                                        # entry -> model
    left_out: dict[str, str] = field(default_factory=dict)       # entry -> why


def match_entries(entries: dict[str, str], reference: Reference,
                  exclude: list[str] = (), skip_missing: bool = False) -> Matching:
    """Map board entries ({entry: method}) onto the reference's rows (rules: module doc).

    exclude: patterns in the reference's notation (``"cddpm [ssl=False]"``); entries they
    match are left out first. skip_missing: an entry whose method the reference does not
    list is left out (with the reason) instead of an error."""
    rows = list(reference.models().itertuples(index=False))
    known = {r.method for r in rows}
    patterns = [(p.split(" ", 1)[0], parse_tags(p.partition(" ")[2], f"--exclude {p!r}"), p)
                for p in exclude]
    matching, owner = Matching({}), {}
    for entry, method in entries.items():
        tags = entry_tags(entry, method)
        hit = [p for m, req, p in patterns if m == method and tags_match(req, tags)]
        if hit:
            matching.left_out[entry] = f"excluded by {hit[0]!r}"
            continue
        if method not in known and skip_missing:
            matching.left_out[entry] = f"the reference has no {method}"
            continue
        if method not in known:
            raise ValueError(f"board entry {entry!r}: method {method!r} has no row in "
                             f"{reference.path} (its methods: {', '.join(sorted(known))}); "
                             "add its row there, or leave it out with --exclude or --skip-missing")
        same = [r for r in rows if r.method == method]
        fits = [r.model for r in same if tags_match(r.tags, tags)]
        if not fits:
            have = "; ".join(f"{r.model} {_show(r.tags)}" for r in same)
            matching.left_out[entry] = f"no row of the reference has these tags ({have})"
            continue
        if len(fits) > 1:
            raise ValueError(f"board entry {entry!r} matches several rows of "
                             f"{reference.path}: {fits}")
        if fits[0] in owner:
            raise ValueError(f"board entries {owner[fits[0]]!r} and {entry!r} both stand for "
                             f"{fits[0]!r} of {reference.path}; leave one out with --exclude")
        owner[fits[0]], matching.model[entry] = entry, fits[0]
    return matching


def _show(tags: dict[str, str]) -> str:
    return " ".join(f"[{k}={v}]" for k, v in tags.items()) or "(any variant)"
