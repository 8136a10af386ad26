"""The table of datasets/real-mini.md from the two runs of run.sh.

    python datasets/real-mini/table.py /tmp/real-mini/runs > /tmp/real-mini/table.md
    python datasets/real-mini/table.py datasets/real-mini/results   # the committed records

One row per method and mask variant: ranking metrics on the MS patient (one volume, so
"pooled" = that volume), Dice at the oracle threshold (chosen on the patient itself: an
upper bound) and at the fpr5 threshold (5 % of the healthy IXI validation brain voxels:
no label used), the share of healthy IXI test brain voxels flagged at that threshold,
training and inference time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

VARIANTS = {"deepbet": "deepbet masks", "dlmuse": "DLMUSE masks"}


def rows(run: Path, variant: str) -> list[dict]:
    vol = pd.read_csv(run / "per_volume.csv")
    ds = pd.read_csv(run / "per_dataset.csv")
    tim = pd.read_csv(run / "timings.csv")
    out = []
    for method, v in vol[vol.dataset == "MSLUB"].groupby("method", sort=False):
        dice = v.set_index("threshold_source")["dice"]
        fpr = ds[(ds.method == method) & (ds.metric == "healthy_fpr")
                 & (ds.threshold_source == "fpr5")]["value"]
        t = tim[tim.method == method].iloc[0]
        out.append({
            "method": method, "masks": VARIANTS[variant],
            "AUPRC %": 100 * v["auprc"].iloc[0], "AUROC %": 100 * v["auroc"].iloc[0],
            "Dice [oracle] %": 100 * dice.get("oracle", float("nan")),
            "Dice [fpr5] %": 100 * dice.get("fpr5", float("nan")),
            "healthy FPR [fpr5] %": 100 * fpr.iloc[0] if len(fpr) else float("nan"),
            "train s/epoch": t["train_seconds_per_epoch"],
            "infer s/volume": t["infer_seconds_per_volume"],
        })
    return out


def main(runs: Path) -> None:
    # a runs folder of run.sh (real-mini-<variant>/) or the committed records (<variant>/)
    table = pd.DataFrame([r for variant in VARIANTS for r in rows(
        runs / f"real-mini-{variant}" if (runs / f"real-mini-{variant}").is_dir()
        else runs / variant, variant)])
    table = table.sort_values(["method", "masks"], kind="stable")
    cells = [[f"{x:.2f}" if isinstance(x, float) else str(x) for x in r]
             for r in table.itertuples(index=False)]
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(table.columns))) + "|")
    for r in cells:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
