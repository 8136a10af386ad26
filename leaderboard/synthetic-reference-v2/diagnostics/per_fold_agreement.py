"""Rank agreement with the paper's Table 2 fold by fold (issue 27, "Data or scale"): the
spread over the v1 board's three folds is how far a fold-0 Spearman moves with the
training data and the training run alone, the yardstick for reading a change between
boards.

    python leaderboard/synthetic-reference-v2/diagnostics/per_fold_agreement.py

Spearman of each fold's pooled AUPRC (threshold-free rows; the main cDDPM, not the SSL
ablation) against Table 2's AUPRC, per cohort (board entries matched to the paper's rows
and correlated by benchmark.references and benchmark.leaderboard.agreement, as `experiment
rank-agreement` does), for every fold each board has finished on
all methods of the set: "common" (the methods the v2 board's fold 0 has finished on all
four cohorts so far) and "all" (the 14). Writes per_fold_agreement.csv beside this script.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent
REPO = OUT.parents[2]
sys.path.insert(0, str(REPO))

from benchmark.leaderboard.agreement import correlations
from benchmark.references import TABLE2, match_entries, read_reference
from benchmark.tags import decode_tags

BOARDS = {"v1": REPO / "leaderboard" / "synthetic-reference" / "runs",
          "v2": REPO / "leaderboard" / "synthetic-reference-v2" / "runs"}
COHORTS = (("Brats21", "t2"), ("MSLUB", "t2"), ("ATLAS_v2", "t1"), ("WMH", "t1"))
ABLATION = "cddpm [ssl=False]"  # the board's SSL ablation is not the paper's cDDPM row


def pooled_auprc(runs: Path) -> pd.DataFrame:
    """Threshold-free pooled AUPRC rows of a board's two lanes, each with its entry name
    (method and result tags, as the leaderboard names it)."""
    frames = [pd.read_csv(runs / lane / "per_dataset.csv") for lane in ("baselines", "diffusion")]
    d = pd.concat(frames, ignore_index=True)
    d = d[(d["threshold_source"] == "none") & (d["metric"] == "auprc_pooled")].copy()
    d["entry"] = [m + "".join(f" [{k}={v}]" for k, v in decode_tags(t).items())
                  for m, t in zip(d["method"], d["tags"])]
    return d


def main() -> int:
    reference = read_reference(TABLE2)
    v2 = pooled_auprc(BOARDS["v2"])
    v2 = v2[(v2["fold"] == 0) & v2["dataset"].isin([c for c, _ in COHORTS])]
    done = v2.groupby("method")["dataset"].nunique()
    common = set(done[done == len(COHORTS)].index)
    print(f"common methods ({len(common)}): {', '.join(sorted(common))}")
    rows = []
    for board, runs in BOARDS.items():
        d = pooled_auprc(runs)
        entries = dict(zip(d["entry"], d["method"]))
        model = match_entries(entries, reference, exclude=[ABLATION]).model
        d = d[d["entry"].isin(model)]
        every = set(d["method"])
        for fold in sorted(d["fold"].unique()):
            for dataset, sequence in COHORTS:
                for subset, methods in (("common", common), ("all", every)):
                    sel = d[(d["fold"] == fold) & (d["dataset"] == dataset)
                            & d["method"].isin(methods)]
                    values = sel.groupby("entry")["value"].mean()
                    if len(values) < len(methods):
                        continue  # a method of the set has not finished this fold
                    paper = reference.values("auprc", dataset, sequence)
                    rho, _ = correlations(values.to_numpy(),
                                          paper[[model[e] for e in values.index]].to_numpy())
                    rows.append({"board": board, "fold": int(fold), "methods": subset,
                                 "dataset": dataset, "n_methods": len(values),
                                 "spearman": round(rho, 3)})
    table = pd.DataFrame(rows)
    table.to_csv(OUT / "per_fold_agreement.csv", index=False)
    print(table.pivot_table(index=["methods", "board", "fold"], columns="dataset",
                            values="spearman").to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
