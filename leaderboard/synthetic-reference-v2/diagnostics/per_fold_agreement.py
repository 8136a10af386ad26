"""Rank agreement with the paper's Table 2 fold by fold (issue 27, "Data or scale"): the
spread over the v1 board's three folds is how far a fold-0 Spearman moves with the
training data and the training run alone, the yardstick for reading a change between
boards.

    python leaderboard/synthetic-reference-v2/diagnostics/per_fold_agreement.py

Spearman of each fold's pooled AUPRC (threshold-free rows; the main cDDPM, not the SSL
ablation) against Table 2's AUPRC, per cohort, for every fold each board has finished on
all methods of the set: "common" (the methods the v2 board's fold 0 has finished on all
four cohorts so far) and "all" (the 14). The entries stand for the
paper's rows as in `experiment rank-agreement` (DDPM and pDDPM without ensembling, cDDPM
with ENS+SSL). Writes per_fold_agreement.csv beside this script.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

OUT = Path(__file__).resolve().parent
REPO = OUT.parents[2]
TABLE2 = REPO / "benchmark" / "references" / "behrendt2025_table2.csv"
BOARDS = {"v1": REPO / "leaderboard" / "synthetic-reference" / "runs",
          "v2": REPO / "leaderboard" / "synthetic-reference-v2" / "runs"}
ROWS = {"thresh": "Thresh", "vae": "VAE", "svae": "SVAE", "ae": "AE", "dae": "DAE", "ra": "RA",
        "phanes": "PHANES", "rd": "RD", "fae": "FAE", "edc": "EDC", "pii": "PII",
        "ddpm": "DDPM", "pddpm": "pDDPM", "cddpm": "cDDPM (ENS+SSL)"}
COHORTS = ("Brats21", "MSLUB", "ATLAS_v2", "WMH")


def pooled_auprc(runs: Path) -> pd.DataFrame:
    frames = [pd.read_csv(runs / lane / "per_dataset.csv") for lane in ("baselines", "diffusion")]
    d = pd.concat(frames, ignore_index=True)
    d = d[(d["threshold_source"] == "none") & (d["metric"] == "auprc_pooled")]
    return d[~d["tags"].fillna("").str.contains('"ssl": false')]  # the SSL ablation


def main() -> int:
    ref = pd.read_csv(TABLE2, comment="#")
    ref = ref[(ref["metric"] == "auprc") & ref["model"].isin(ROWS.values())]
    ref = ref.set_index(["model", "dataset"])["mean"]
    v2 = pooled_auprc(BOARDS["v2"])
    v2 = v2[(v2["fold"] == 0) & v2["dataset"].isin(COHORTS)]
    done = v2.groupby("method")["dataset"].nunique()
    common = tuple(sorted(done[done == len(COHORTS)].index))
    print(f"common methods ({len(common)}): {', '.join(common)}")
    rows = []
    for board, runs in BOARDS.items():
        d = pooled_auprc(runs)
        for fold in sorted(d["fold"].unique()):
            for dataset in COHORTS:
                for subset, methods in (("common", common), ("all", tuple(ROWS))):
                    sel = d[(d["fold"] == fold) & (d["dataset"] == dataset)
                            & d["method"].isin(methods)]
                    values = sel.groupby("method")["value"].mean()
                    if len(values) < len(methods):
                        continue  # a method of the set has not finished this fold
                    paper = [ref[(ROWS[m], dataset)] for m in values.index]
                    rho = spearmanr(values.to_numpy(), paper).statistic
                    rows.append({"board": board, "fold": int(fold), "methods": subset,
                                 "dataset": dataset, "n_methods": len(values),
                                 "spearman": round(float(rho), 3)})
    table = pd.DataFrame(rows)
    table.to_csv(OUT / "per_fold_agreement.csv", index=False)
    print(table.pivot_table(index=["methods", "board", "fold"], columns="dataset",
                            values="spearman").to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
