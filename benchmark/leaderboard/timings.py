"""Merge timings.csv of several runs; timings are only compared on the same hardware.

Input rows: one per method x fold (method, fold, device, hardware, n_params,
train_seconds_per_epoch, infer_seconds_per_volume, slices_per_second, peak_memory_mb).
Output rows: one per entry x hardware, the median over folds of every numeric column.
`mixed_hardware` is True on every row when the file holds more than one hardware, so
a reader of a single column is told that its values are not all comparable; the
`*_vs_fastest` ratios are computed within one hardware only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tables import PAPER_METHODS, _order

TIMING_ORDER = ["n_params", "train_seconds_per_epoch", "infer_seconds_per_volume",
                "slices_per_second", "peak_memory_mb"]
LEADING = ["entry", "method", "hardware", "device", "n_folds"]


def summarise_timings(timings: pd.DataFrame) -> pd.DataFrame:
    """One row per entry x hardware: medians over folds, hardware flags and ratios."""
    if timings.empty:
        return pd.DataFrame(columns=LEADING + TIMING_ORDER + ["mixed_hardware", "run_dirs"])
    t = timings.copy()
    if "device" not in t.columns:
        t["device"] = ""
    numeric = [c for c in t.columns if pd.api.types.is_numeric_dtype(t[c])
               and c not in ("fold",) and not pd.api.types.is_bool_dtype(t[c])]
    rows = []
    for (entry, hw), g in t.groupby(["entry", "hardware"], sort=False):
        row = {"entry": entry, "method": g["method"].iloc[0], "hardware": hw,
               "device": ";".join(sorted(set(g["device"].astype(str)))),
               "n_folds": g["fold"].nunique(),
               "run_dirs": ";".join(sorted(set(g["run_dir"])))}
        row.update({c: float(np.nanmedian(g[c])) if g[c].notna().any() else np.nan
                    for c in numeric})
        rows.append(row)
    out = pd.DataFrame(rows)
    out["mixed_hardware"] = out["hardware"].nunique() > 1
    if "infer_seconds_per_volume" in out.columns:
        fastest = out.groupby("hardware")["infer_seconds_per_volume"].transform("min")
        out["infer_vs_fastest_same_hardware"] = out["infer_seconds_per_volume"] / fastest
    cols = [c for c in LEADING + TIMING_ORDER if c in out.columns]
    rest = [c for c in out.columns if c not in cols]
    out = out[cols + rest]
    key = [(_order(e, PAPER_METHODS), h) for e, h in zip(out["entry"], out["hardware"])]
    return out.iloc[sorted(range(len(out)), key=lambda i: (key[i][1], key[i][0]))] \
        .reset_index(drop=True)


def render_timings_markdown(summary: pd.DataFrame) -> str:
    """One Markdown table per hardware, so no column mixes machines."""
    if summary.empty:
        return "### Timings\n\nNo timings.csv in the given runs.\n"
    lines = ["### Timings", "",
             ("Median over folds. Inference: seconds per volume (median over volumes after "
              "a warm-up, device synchronised). Compare rows only within one hardware "
              "section.")]
    shown = [c for c in TIMING_ORDER + ["infer_vs_fastest_same_hardware"]
             if c in summary.columns]
    for hw, g in summary.groupby("hardware", sort=False):
        lines += ["", f"#### Hardware: {hw}", "",
                  "| Model | " + " | ".join(shown) + " |",
                  "|---|" + "---:|" * len(shown)]
        for _, r in g.iterrows():
            lines.append(f"| {r['entry']} | " + " | ".join(_num(r[c]) for c in shown) + " |")
    return "\n".join(lines) + "\n"


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    v = float(v)
    if abs(v) >= 1e4 or v == int(v):
        return f"{v:,.0f}"
    return f"{v:.3g}"
