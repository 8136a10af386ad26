"""Fidelity of the synthetic default: its lesion and tissue statistics next to real ones.

    python -m benchmark experiment fidelity --real-samples ../shared/data/real-samples

Measures (benchmark.fidelity.stats, on the benchmark's 2 mm grid and intensity scale)
every test volume of each synthetic version's cohorts (and its healthy IXI test set),
the real scans of --real-samples (a folder laid out as the project's real-samples README:
ms_patient07, brats2012_hg0015, ixi_t1_cohort; any may be missing) and prints them beside
the cohorts' statistics from outside the repository (benchmark/fidelity/reference.csv,
with provenance). Writes into --out: per_volume.csv, summary.csv, summary.md and
fidelity.png. docs/fidelity.md is this command's output, read.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

PLOTTED = ("volume_ml", "n_components", "intensity_percentile", "water_share", "cnr_wm",
           "cv", "gradient_ratio", "dist_ventricles_mm", "dist_surface_mm")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--versions", default="1,2",
                        help="synthetic generator versions to measure (default 1,2)")
    parser.add_argument("--size", default="quick", choices=("smoke", "quick", "paper"))
    parser.add_argument("--real-samples", type=Path, default=None,
                        help="folder of real scans (ms_patient07/, brats2012_hg0015/, "
                             "ixi_t1_cohort/); without it only the reference table is shown")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many test volumes per synthetic cohort")
    parser.add_argument("--ixi-limit", type=int, default=20,
                        help="at most this many real IXI T1 scans (default 20; 0 = none)")
    parser.add_argument("--data-root", type=Path, action="append", default=[],
                        metavar="ROOT", help="also measure this data root in the synthetic "
                        "layout (e.g. from `data synth --anatomy-from`), named by its folder; "
                        "repeatable")
    parser.add_argument("--out", type=Path, default=Path("fidelity"))


def _versions(text: str) -> list[str]:
    from benchmark.data.synth import VERSIONS

    versions = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in versions if v not in VERSIONS]
    if bad:
        raise SystemExit(f"--versions: unknown {bad}; allowed: {', '.join(VERSIONS)}")
    return versions


def _real(root: Path, ixi_limit: int):
    from benchmark.fidelity import real_samples

    if not root.is_dir():
        raise SystemExit(f"--real-samples: {root} is not a folder")
    vols = real_samples(root)
    ixi = [v for v in vols if v.cohort == "IXI"][:ixi_limit]
    return [v for v in vols if v.cohort != "IXI"] + ixi


def markdown(summary: pd.DataFrame, reference: pd.DataFrame) -> str:
    """Per cohort and sequence, a table: statistic x source, 'median [q1, q3] (n)'."""
    lines = []
    for (cohort, seq), block in summary.groupby(["cohort", "sequence"], sort=True):
        sources = sorted(block["source"].unique(), key=lambda s: (s != "real", s))
        lines += [f"### {cohort} ({seq})", "",
                  "| statistic | " + " | ".join(sources) + " |",
                  "|---|" + "---:|" * len(sources)]
        for stat, rows in block.groupby("statistic", sort=False):
            cells = []
            for src in sources:
                r = rows[rows["source"] == src]
                cells.append("" if r.empty else _cell(r.iloc[0]))
            lines.append(f"| {stat} | " + " | ".join(cells) + " |")
        ref = reference[reference["cohort"] == cohort]
        if not ref.empty and seq in ("t2", "t1"):
            lines += ["", "Outside this repository (reference.csv):", ""]
            for _, r in ref.iterrows():
                rng = "" if pd.isna(r["q1"]) else f" [{r['q1']:g}, {r['q3']:g}]"
                lines.append(f"- {r['statistic']}: median {r['median']:g}{rng}, n = {r['n']} "
                             f"({r['kind']})")
        lines.append("")
    return "\n".join(lines)


def _cell(r) -> str:
    fmt = (lambda v: f"{v:.3g}")
    if r["n"] == 1:
        return fmt(r["median"])
    return f"{fmt(r['median'])} [{fmt(r['q1'])}, {fmt(r['q3'])}] ({r['n']})"


def plot(per_volume: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    lesions = per_volume.dropna(subset=["volume_ml"]).copy()
    lesions["cohort (seq)"] = lesions["cohort"] + " " + lesions["sequence"]
    order = sorted(lesions["cohort (seq)"].unique())
    stats = [s for s in PLOTTED if s in lesions.columns]
    fig, axes = plt.subplots(3, 3, figsize=(15, 12))
    for ax, stat in zip(axes.ravel(), stats):
        sns.stripplot(data=lesions, x=stat, y="cohort (seq)", hue="source", order=order,
                      dodge=True, ax=ax, size=4, alpha=0.8)
        if stat == "volume_ml":
            ax.set_xscale("log")
        ax.set_title(stat)
        ax.set_xlabel("")
        ax.set_ylabel("")
        if ax is not axes.ravel()[0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    from benchmark.data.synth import ensure_synthetic
    from benchmark.fidelity import measure, reference, summarise, synthetic_volumes

    volumes = []
    for version in _versions(args.versions):
        root = ensure_synthetic(args.size, version=version, progress=False)
        volumes += synthetic_volumes(root, f"synthetic-v{version}", limit=args.limit)
    for root in args.data_root:
        if not (root / "Data").is_dir():
            raise SystemExit(f"--data-root: {root} holds no Data/ folder")
        volumes += synthetic_volumes(root, root.name, limit=args.limit)
    if args.real_samples is not None:
        volumes += _real(args.real_samples, args.ixi_limit)
    per_volume = measure(volumes)
    summary = summarise(per_volume)
    ref = reference()
    args.out.mkdir(parents=True, exist_ok=True)
    per_volume.to_csv(args.out / "per_volume.csv", index=False, float_format="%.5g")
    summary.to_csv(args.out / "summary.csv", index=False, float_format="%.5g")
    text = markdown(summary, ref)
    (args.out / "summary.md").write_text(text)
    plot(per_volume, args.out / "fidelity.png")
    print(text)
    print(f"written: {args.out}/per_volume.csv, summary.csv, summary.md, fidelity.png")
    if np.isnan(per_volume.get("volume_ml", pd.Series(dtype=float))).all():
        print("no lesion volumes measured")
    return 0
