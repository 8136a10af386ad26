"""HTML fragments of the report: tables, significance matrices, figures, the browser.

Everything is escaped here and nowhere else; every function returns a string.
"""
from __future__ import annotations

import base64
import io
import re
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from ..leaderboard.tables import PAPER_METHODS, Table, _order, column_header
from ..leaderboard.timings import TIMING_ORDER, _num

_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def e(text) -> str:
    return escape(str(text), quote=True)


def _sort_value(text: str) -> str:
    """The number a cell sorts by ('37.32 ± 1.20' -> '37.32'); '' when there is none."""
    m = _NUMBER.match(text.replace(",", "").strip())
    return m.group(0) if m else ""


def table_html(table: Table, marks: dict[str, str] | None = None, table_id: str = "",
               caption: bool = True) -> str:
    """A tables.Table as a sortable HTML table: the Markdown table's cells, bold and `*`."""
    marks = marks or {}
    head = "".join(f"<th>{e(column_header(c))}</th>" for c in table.columns)
    rows = []
    for entry in table.entries:
        cells = []
        for j in range(len(table.columns)):
            text = table.cells.get((entry, j), "–")
            star = "*" if (entry, j) in table.star else ""
            best = ' class="best"' if (entry, j) in table.bold else ""
            cells.append(f'<td data-value="{_sort_value(text)}"{best}>{e(text)}{star}</td>')
        rows.append(f"<tr><td>{e(entry + marks.get(entry, ''))}</td>{''.join(cells)}</tr>")
    ident = f' id="{e(table_id)}"' if table_id else ""
    parts = [f"<h3>{e(table.title)}</h3>"] if caption else []
    if caption:
        parts.append(f'<p class="caption">{e(table.caption)}</p>')
    parts.append(f'<div class="scroll"><table class="sortable"{ident}><thead><tr>'
                 f"<th>Model</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    if caption and table.notes:
        parts.append('<ul class="note">' + "".join(f"<li>{e(n)}</li>" for n in table.notes)
                     + "</ul>")
    return "\n".join(parts)


def frame_html(df: pd.DataFrame, table_id: str = "", numeric_format=_num) -> str:
    """A plain DataFrame as a sortable table (numbers right-aligned and sortable)."""
    head = "".join(f"<th>{e(c)}</th>" for c in df.columns)
    rows = []
    for r in df.itertuples(index=False):
        cells = []
        for v in r:
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                value = "" if pd.isna(v) else repr(float(v))
                cells.append(f'<td data-value="{value}">{e(numeric_format(v))}</td>')
            else:
                cells.append(f"<td>{e('' if pd.isna(v) else v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ident = f' id="{e(table_id)}"' if table_id else ""
    return (f'<div class="scroll"><table class="sortable"{ident}><thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table></div>")


# ---------------------------------------------------------------------------- significance
GROUP_KEYS = ["dataset", "sequence", "metric", "level", "threshold_source"]
_LEVEL_TEXT = {"volume": "mean over volumes", "dataset": "pooled",
               "healthy": "healthy test set"}


def group_label(group: tuple) -> str:
    dataset, sequence, metric, level, source = group
    seq = f" ({sequence})" if sequence else ""
    src = f", threshold {source}" if source not in ("", "none", "any") else ""
    return f"{dataset}{seq} · {metric} ({_LEVEL_TEXT.get(level, level)}{src})"


def _pair_title(r, a: str, b: str) -> str:
    flip = r.entry_a != a  # the row of significance.csv is (b, a): swap the means
    mean_a, mean_b = (r.mean_b, r.mean_a) if flip else (r.mean_a, r.mean_b)
    n_a, n_b = (r.n_b, r.n_a) if flip else (r.n_a, r.n_b)
    if not np.isfinite(r.p_value):
        return f"{a} vs {b}: no test ({r.engine}; n = {n_a}/{n_b})"
    adj = f", adjusted {r.p_adjusted:.4g} ({r.correction})" if r.correction != "none" else ""
    return (f"{a} vs {b}: p = {r.p_value:.4g}{adj}; mean {mean_a:.4g} vs {mean_b:.4g}; "
            f"{r.unit} unit, n = {n_a}/{n_b}, alpha {r.alpha:g}")


def matrix_html(sig: pd.DataFrame, group: tuple, index: int) -> str:
    """Entries x entries: ▲ row significantly better than column, ▼ worse, · not
    significant, – not testable; the p-value in every cell's title (hover)."""
    entries = sorted(set(sig["entry_a"]) | set(sig["entry_b"]),
                     key=lambda x: _order(x, PAPER_METHODS))
    pairs = {}
    for r in sig.itertuples(index=False):
        pairs[(r.entry_a, r.entry_b)] = pairs[(r.entry_b, r.entry_a)] = r
    head = "".join(f'<th class="col">{e(x)}</th>' for x in entries)
    rows = []
    for a in entries:
        cells = []
        for b in entries:
            r = pairs.get((a, b))
            if a == b or r is None:
                cells.append('<td class="self"></td>')
                continue
            if not np.isfinite(r.p_value):
                cls, sym = "na", "–"
            elif r.better == a:
                cls, sym = "win", "▲"
            elif r.better == b:
                cls, sym = "loss", "▼"
            else:
                cls, sym = "ns", "·"
            p = "" if not np.isfinite(r.p_value) else f"{r.p_value:.6g}"
            cells.append(f'<td class="{cls}" data-p="{p}" title="{e(_pair_title(r, a, b))}">'
                         f"{sym}</td>")
        rows.append(f"<tr><th>{e(a)}</th>{''.join(cells)}</tr>")
    return (f'<div class="sig-matrix scroll" data-group="{index}"><table class="matrix">'
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            f"</table></div>")


def significance_section(sig: pd.DataFrame) -> str:
    if sig.empty:
        return '<p class="note">No pairwise tests in significance.csv.</p>'
    sig = sig.copy()
    for col in ("sequence", "threshold_source", "better"):
        sig[col] = sig[col].fillna("").astype(str)
    groups = [g for g, sel in sig.groupby(GROUP_KEYS, sort=False)
              if np.isfinite(sel["p_value"].to_numpy(float)).any()]
    untestable = sig.groupby(GROUP_KEYS, sort=False).ngroups - len(groups)
    groups.sort(key=lambda g: (_order(g[0], ("ixi", "brats", "mslub", "atlas", "wmh"), True),
                               g[1], g[2], g[3], g[4]))
    options = "".join(f'<option value="{i}">{e(group_label(g))}</option>'
                      for i, g in enumerate(groups))
    matrices = [matrix_html(sig[(sig[GROUP_KEYS] == pd.Series(g, index=GROUP_KEYS)).all(axis=1)],
                            g, i) for i, g in enumerate(groups)]
    first = sig.iloc[0]
    note = (f"Two-sided permutation tests ({first['rounds']} rounds, correction "
            f"{first['correction']}, alpha {first['alpha']:g}). ▲ the row entry is "
            "significantly better than the column entry, ▼ significantly worse, · not "
            "significant, – not testable. Hover a cell for its p-value.")
    if untestable:
        note += (f" {untestable} group(s) of significance.csv have no testable pair (e.g. "
                 "pooled metrics of a single fold) and are not listed.")
    if not groups:
        return f'<p class="note">{e(note)}</p>'
    return (f'<p class="note">{e(note)}</p><label>Data set and metric: <select '
            f'id="sig-select">{options}</select></label>' + "".join(matrices))


# ---------------------------------------------------------------------------- figures, timings
def image_uri(path: Path, max_png_bytes: int = 300_000) -> str:
    """A PNG as a data URI; a large one (photo-like grids of slices) as a JPEG (q 85),
    a quarter of the bytes, so a report of 14 methods stays a few MB."""
    data = Path(path).read_bytes()
    if len(data) <= max_png_bytes:
        return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    from PIL import Image

    buf = io.BytesIO()
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGB").save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figures_html(paths: list[Path]) -> str:
    return "".join(f'<figure><img alt="{e(p.stem)}" src="{image_uri(p)}">'
                   f"<figcaption class=\"note\">{e(p.name)}</figcaption></figure>"
                   for p in paths)


def timings_html(timings: pd.DataFrame) -> str:
    if timings.empty:
        return '<p class="note">No timings.csv in this leaderboard.</p>'
    shown = [c for c in TIMING_ORDER + ["infer_vs_fastest_same_hardware"]
             if c in timings.columns]
    parts = [('<p class="note">Median over folds; compare rows only within one hardware. '
             "Inference: seconds per volume.</p>")]
    for i, (hw, g) in enumerate(timings.groupby("hardware", sort=False)):
        parts.append(f"<h3>Hardware: {e(hw)}</h3>")
        parts.append(frame_html(g[["entry"] + shown], table_id=f"timings-{i}"))
    return "".join(parts)


# ---------------------------------------------------------------------------- browser
def browser_html(volumes: list[dict], notes: list[str]) -> str:
    """Controls and one image grid per volume; report.js fills the images per slice."""
    note = "".join(f'<p class="note">{e(n)}</p>' for n in notes)
    if not volumes:
        return ('<p class="warn">No volume browser: ' + e("; ".join(notes) or "no maps")
                + "</p>")
    sources = sorted({s for v in volumes for x in v["entries"] for s in x["binary"]},
                     key=lambda s: (s != "oracle", s))
    vol_opts = "".join(f'<option value="{i}">{e(v["dataset"])} · {e(v["volume"])} '
                       f'({v["lesion_voxels"]} lesion voxels)</option>'
                       for i, v in enumerate(volumes))
    src_opts = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in sources)
    legend = ('<span class="legend">binarised: <span style="background:#28c850"></span>'
              'lesion found<span style="background:#e63232"></span>false positive'
              '<span style="background:#3c6eff"></span>lesion missed</span>')
    controls = (f'<div class="browser-controls"><label>Volume <select id="browser-volume">'
                f'{vol_opts}</select></label><label>Threshold source <select '
                f'id="browser-source">{src_opts}</select></label><label>Slice <input '
                f'type="range" id="slice-slider" min="0" max="0" value="0"></label>'
                f'<span id="slice-label"></span>{legend}</div>')
    grids = []
    for i, v in enumerate(volumes):
        cells = ['<div class="head"></div>', '<div class="head">input</div>',
                 '<div class="head">ground truth</div>', '<div class="head"></div>',
                 '<div class="label">data</div>', '<img data-layer="input" alt="input">',
                 '<img data-layer="truth" alt="ground truth">', "<div></div>",
                 '<div class="head"></div>', '<div class="head">reconstruction</div>',
                 '<div class="head">anomaly map</div>', '<div class="head">binarised</div>']
        for j, x in enumerate(v["entries"]):
            recon = (f'<img data-layer="recon" data-entry="{j}" alt="reconstruction">'
                     if x["recon"] else '<div class="head">no reconstruction</div>')
            cells += [(f'<div class="label">{e(x["entry"])}<br><span class="note" '
                      f'data-threshold="{j}"></span></div>'), recon,
                      f'<img data-layer="anomaly" data-entry="{j}" alt="anomaly map">',
                      f'<img data-layer="binary" data-entry="{j}" alt="binarised map">']
        runs = ", ".join(v["runs"])
        grids.append(f'<div class="browser-volume" data-volume="{i}" hidden><p class="note">'
                     f'{e(v["dataset"])} ({e(v["sequence"])}) · {e(v["volume"])} · fold '
                     f'{v["fold"]} · from {e(runs)}</p><div class="browser-grid" style='
                     f'"grid-template-columns: 220px repeat(3, 150px)">{"".join(cells)}'
                     "</div></div>")
    return note + controls + "".join(grids)
