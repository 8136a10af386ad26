"""The report page: sections in reading order, assembled from the html.py fragments."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import __version__
from ..leaderboard import _caption, _flag_summary
from ..leaderboard.significance import SignificanceSettings
from ..leaderboard.strata import strata_summary
from ..leaderboard.tables import (
    Column,
    ColumnSpec,
    _resolved,
    build_table,
    ordered_datasets,
    table1_columns,
    table2_columns,
)
from . import CSP, Board, asset, inline_json
from .html import (
    browser_html,
    e,
    figures_html,
    frame_html,
    significance_section,
    table_html,
    timings_html,
)

# the stratified tables: per-volume AUPRC, Dice and pooled detection at the oracle
STRATA_SPECS = (
    ColumnSpec("AUPRC [%]", (("volume", "auprc"),)),
    ColumnSpec("Dice [%]", (("volume", "dice"),), threshold_sources=("oracle",), strict=True),
    ColumnSpec("detected [%]", (("dataset", "detection_rate_pooled"),),
               threshold_sources=("oracle",), strict=True),
)
SECTIONS = (("provenance", "Provenance"), ("tables", "Tables"),
            ("significance", "Significance"), ("strata", "Lesion size and site"),
            ("figures", "Figures"), ("timings", "Timings"), ("browser", "Volume browser"),
            ("warnings", "Warnings"))


def render_page(board: Board, volumes: list[dict], notes: list[str],
                run_dirs: list[Path]) -> str:
    body = {
        "provenance": provenance_html(board, run_dirs),
        "tables": main_tables_html(board),
        "significance": significance_section(board.significance),
        "strata": strata_html(board),
        "figures": figures_html([p for p in board.plots
                                 if not p.name.startswith(("strata_", "detection_"))])
        or '<p class="note">No figures in plots/.</p>',
        "timings": timings_html(board.timings),
        "browser": browser_html(volumes, notes),
        "warnings": ("<ul>" + "".join(f"<li>{e(w)}</li>" for w in board.warnings) + "</ul>")
        if board.warnings else '<p class="note">None.</p>',
    }
    nav = "".join(f'<a href="#{k}">{e(t)}</a>' for k, t in SECTIONS)
    sections = "".join(f'<section id="{k}"><h2>{e(t)}</h2>{body[k]}</section>'
                       for k, t in SECTIONS)
    title = f"UAD-Bench leaderboard: {board.root.name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title><style>{asset("report.css")}</style></head>
<body><header><h1>{e(title)}</h1><p>Written by uad-bench {e(__version__)} from
<code>{e(board.root)}</code>; self-contained: opens from disk, makes no network request.
</p></header><nav>{nav}</nav><main>{sections}</main>
<script id="report-data" type="application/json">{inline_json({"browser": volumes})}</script>
<script>{asset("report.js")}</script></body></html>
"""


# ---------------------------------------------------------------------------- provenance
def _values(configs: dict, key: str) -> list[str]:
    out = []
    for c in configs.values():
        v = c.get(key)
        if isinstance(v, dict):
            v = v.get("name", v)
        if v is not None and str(v) not in out:
            out.append(str(v))
    return out


def provenance_html(board: Board, run_dirs: list[Path]) -> str:
    inputs = board.inputs
    facts = [("Leaderboard", f"<code>{e(board.root)}</code>"),
             ("Runs merged", "<br>".join(f"<code>{e(r)}</code>"
                                         for r in inputs.get("run_dirs", [])) or "not recorded")]
    configs = board.configs
    profiles = _values(configs, "profile")
    facts.append(("Profile", e(", ".join(profiles)) if profiles else "not recorded"))
    data = _values(configs, "data_source")
    if data:
        facts.append(("Data", e(", ".join(data))))
    protocol = inputs.get("protocol")
    if protocol:
        facts.append(("Protocol", "; ".join(f"{e(k)} <code>{e(', '.join(v))}</code>"
                                            for k, v in protocol.items())))
    else:
        facts.append(("Protocol", ("not recorded in inputs.json (this leaderboard was made "
                                  "before inputs.json carried the protocol tags)")))
    sig = inputs.get("significance", {})
    facts.append(("Tests", e(", ".join(f"{k}={v}" for k, v in sig.items()))))
    if inputs.get("strata"):
        facts.append(("Strata", e(", ".join(f"{k}={v}" for k, v in inputs["strata"].items()))))
    facts.append(("Maps shown from", "<br>".join(f"<code>{e(r)}</code>" for r in run_dirs)
                  or "none (see the volume browser)"))
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return f'<dl class="facts">{dl}</dl><h3>Environment</h3>' + environment_html(
        inputs.get("environments", {}))


def environment_html(envs: dict) -> str:
    if not envs:
        return '<p class="note">No environment.json in the runs.</p>'
    keys = ("torch", "lightning", "monai", "numpy", "scikit-learn", "pandas", "mlxtend")
    rows = []
    for run, env in envs.items():
        packages = env.get("packages", {})
        rows.append({"run": run, "hardware": env.get("hardware", ""),
                     "gpus": env.get("gpus", ""), "cuda": env.get("cuda") or "",
                     "python": env.get("python", ""), "platform": env.get("platform", ""),
                     **{k: packages.get(k, "") for k in keys},
                     "git commit": env.get("git_commit", ""), "created": env.get("created", ""),
                     "command": env.get("command", "")})
    return frame_html(pd.DataFrame(rows).astype(str), table_id="environment")


# ---------------------------------------------------------------------------- tables
def main_tables_html(board: Board) -> str:
    if board.board.empty:
        return '<p class="note">leaderboard.csv is empty.</p>'
    settings = SignificanceSettings(**board.inputs.get("significance", {}))
    marks = {x: " †" for x in board.board.loc[board.board["flags"] != "", "entry"]}
    parts = []
    for name, title, columns in (
            ("table2", "Table 2: segmentation performance", table2_columns(board.board)),
            ("table1", "Table 1: reconstruction quality", table1_columns(board.board))):
        if not columns:
            continue
        table = build_table(board.board, board.significance, columns, title,
                            _caption(name, settings))
        if marks:
            table.notes.append("† flagged (details in warnings.txt): "
                               + _flag_summary(board.board))
        parts.append(table_html(table, marks, table_id=name))
    return "".join(parts)


def strata_tables(board: Board) -> list[tuple[str, object]]:
    """(heading, tables.Table) per data set x stratification: one column per stratum and
    metric, bold and `*` from stratified_significance.csv as in the main tables."""
    strat, sig = board.strata, board.strata_significance
    out = []
    for dataset, sequence in ordered_datasets(strat, ("volume", "dataset")):
        for by in ("lesion_size", "site"):
            rows = strat[(strat["dataset"] == dataset) & (strat["sequence"] == sequence)
                         & (strat["stratify_by"] == by)]
            if rows.empty:
                continue
            pseudo = rows.assign(dataset=rows["stratum"].astype(str), sequence="")
            tests = sig[(sig["dataset"] == dataset) & (sig["sequence"] == sequence)
                        & (sig["stratify_by"] == by)] if not sig.empty else sig
            if not tests.empty:
                tests = tests.assign(dataset=tests["stratum"].astype(str), sequence="")
            order = rows.drop_duplicates("stratum").sort_values("stratum_index")["stratum"]
            columns = _resolved(pseudo, [Column(str(s), "", spec, None) for s in order
                                         for spec in STRATA_SPECS])
            if not columns:
                continue
            seq = f" ({sequence})" if sequence else ""
            heading = f"{dataset}{seq} by {'lesion size' if by == 'lesion_size' else by}"
            out.append((heading, build_table(pseudo, tests, columns, heading, "")))
    return out


def strata_html(board: Board) -> str:
    if board.strata.empty:
        md = board.root / "stratified.md"
        why = ("this leaderboard has no stratified.csv (it was made before stratification; "
               "rebuild it with `python -m benchmark leaderboard`)") if not md.is_file() \
            else "no data set had enough volumes; stratified.md says why"
        return f'<p class="warn">No stratified results: {e(why)}.</p>'
    summary = strata_summary(board.strata)
    summary = summary.assign(stratum_low=summary["stratum_low"].astype("Int64"),
                             stratum_high=summary["stratum_high"].astype("Int64"))
    parts = [('<p class="note">Per-volume metrics of the volumes in each stratum, mean over '
             "folds (stratified.csv). AUPRC and Dice: mean over the stratum's volumes; "
             "detected: lesions detected / lesions (oracle threshold). Bold: best; * "
             "significantly better than every other entry (stratified_significance.csv). "
             "Strata:</p>"), frame_html(summary, table_id="strata-bins")]
    for i, (heading, table) in enumerate(strata_tables(board)):
        parts.append(f"<h3>{e(heading)}</h3>")
        parts.append(table_html(table, table_id=f"strata-{i}", caption=False))
    plots = [p for p in board.plots if p.name.startswith(("strata_", "detection_"))]
    parts.append(figures_html(plots))
    return "".join(parts)
