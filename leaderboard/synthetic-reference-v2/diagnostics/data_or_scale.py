"""Data or scale (issue 27; docs/fidelity.md, "Data or scale"): the rank agreement with the
paper's Table 2 of three boards at fold 0 that differ in one factor each,

    v1        the first reference board's fold 0 (synthetic generator v1, reference scale)
    v2        this board's fold 0 (generator v2: calibrated lesions; same scale, same IXI data)
    v2+scale  v2 with DDPM, pDDPM, cDDPM, AE and DAE one step up in scale (scale-step.sh:
              widths x2, epochs x2) and the other nine methods as in v2

and, where runs/anatomy-swap/ (T2) or runs/anatomy-swap-t1/ (T1) have finished parts (anatomy_swap.sh), a fourth factor:

    v2-individual  v2's data rendered from real healthy anatomies (synth.individual), the
                   same settings; compared with v2 on the same methods, per cohort

    python leaderboard/synthetic-reference-v2/diagnostics/data_or_scale.py

Builds the three boards (the v2+scale board from copies of the v2 lanes' records without
the (method, sequence) pairs the scale step has finished, under scale-step/runs/), runs `experiment
rank-agreement` on each and writes data_or_scale.md, data_or_scale.csv and scale_movement.csv
beside this script. Only finished parts count; a board with missing parts says so.
"""
from __future__ import annotations

import io
import json
import shutil
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent
HERE = OUT.parent
REPO = HERE.parents[1]
V1 = REPO / "leaderboard" / "synthetic-reference" / "runs"
RUNS = HERE / "runs"
SCALED = ("ddpm", "pddpm", "cddpm", "ae", "dae")  # the methods of scale-step.sh
RUN_FILES = ("per_volume.csv", "per_dataset.csv", "recon_quality.csv", "timings.csv")


def _filtered_copy(src: Path, dst: Path, drop: set[tuple[str, str]]) -> Path:
    """The run-level records of ``src`` at fold 0 without the rows of ``drop``'s (method,
    sequence) pairs."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in ("config.json", "environment.json"):
        shutil.copy(src / name, dst / name)
    for name in RUN_FILES:
        if (src / name).is_file():
            df = pd.read_csv(src / name)
            pairs = pd.Series(list(zip(df["method"], df["sequence"])), index=df.index)
            keep = ~pairs.isin(drop) & (df["fold"] == 0)
            df[keep].to_csv(dst / name, index=False)
    return dst


def _board(runs: list[Path], out: Path) -> Path:
    from benchmark.leaderboard import build_leaderboard
    from benchmark.leaderboard.significance import SignificanceSettings

    build_leaderboard(runs, out, SignificanceSettings(unit="volume", rounds=200),
                      plots=False, folds=[0])  # (its significance tests are not used here)
    return out


COHORTS = ("Brats21", "MSLUB", "ATLAS_v2", "WMH")


def _complete_methods(board: Path) -> set[str]:
    """Methods with a result on all four cohorts of the board (both sequences finished)."""
    lb = pd.read_csv(board / "leaderboard.csv")
    have = lb[lb["dataset"].isin(COHORTS)].groupby("method")["dataset"].nunique()
    return set(have[have == len(COHORTS)].index)


def _agreement(board: Path, csv: Path, leave_out: set[str] = frozenset(),
               cohorts: str | None = None) -> tuple[str, pd.DataFrame]:
    from benchmark.cli import main

    excludes = ["--exclude", ("cddpm [ens=True] [test_t=250+500+750] [ssl=False] "
                              "[cond_dim=128]")]
    for method in sorted(leave_out):
        excludes += ["--exclude", method]
    text = io.StringIO()
    with redirect_stdout(text):
        code = main(["experiment", "rank-agreement", str(board), "--out", str(csv), *excludes,
                     *(["--cohorts", cohorts] if cohorts else [])])
    if code != 0:
        raise SystemExit(f"rank-agreement failed on {board}")
    return text.getvalue().replace(f"{REPO}/", ""), pd.read_csv(csv)


def _scores(runs: list[Path]) -> pd.DataFrame:
    """Fold-0 pooled AUPRC per anomalous cohort and mean healthy SSIM (IXI), one row per
    method, sequence and statistic (threshold-free rows only)."""
    frames = [pd.read_csv(r / "per_dataset.csv") for r in runs if (r / "per_dataset.csv").is_file()]
    df = pd.concat(frames, ignore_index=True)
    df = df[(df["fold"] == 0) & (df["threshold_source"] == "none") & df["method"].isin(SCALED)]
    auprc = df[(df["metric"] == "auprc_pooled") & (df["dataset"] != "IXI")]
    ssim = df[(df["metric"] == "ssim_mean") & (df["dataset"] == "IXI")]
    out = pd.concat([auprc, ssim])[["method", "sequence", "dataset", "metric", "value"]]
    return out.drop_duplicates(["method", "sequence", "dataset", "metric"])


def movement() -> pd.DataFrame:
    """How each scaled method's AUPRC and healthy SSIM move from the reference scale (this
    board's fold 0) to the scale step; only parts finished at both scales."""
    ref = _scores([RUNS / "baselines", RUNS / "diffusion"])
    big = _scores([RUNS / "scale-diffusion", RUNS / "scale-recon"])
    keys = ["method", "sequence", "dataset", "metric"]
    table = ref.merge(big, on=keys, suffixes=("_reference", "_scaled"))
    table["change"] = table["value_scaled"] - table["value_reference"]
    return table.sort_values(["metric", "dataset", "method"]).reset_index(drop=True)


def anatomy_comparison(v2_board: Path, anatomy_runs: list[Path], work: Path):
    """v2 against v2-individual on the methods the anatomy swap has finished (per cohort:
    the methods with a result on it in both boards; T2 and T1 are separate runs)."""
    board = _board(anatomy_runs, work / "v2-individual-fold0")
    lb_a, lb_v = (pd.read_csv(b / "leaderboard.csv") for b in (board, v2_board))
    texts, rows = [], []
    for cohort in COHORTS:
        have = (set(lb_a.loc[lb_a["dataset"] == cohort, "method"])
                & set(lb_v.loc[lb_v["dataset"] == cohort, "method"]))
        if len(have) < 3:
            continue
        for name, b, lb in (("v2", v2_board, lb_v), ("v2-individual", board, lb_a)):
            leave_out = set(lb["method"]) - have
            text, summary = _agreement(b, b / f"rank_agreement_anatomy_{cohort}.csv", leave_out,
                                       cohorts=cohort)
            texts.append(f"## {name} (fold 0), {cohort}, the {len(have)} methods of the "
                         f"anatomy swap\n\n```\n{text.strip()}\n```\n")
            rows.append(summary.assign(board=name, methods=f"anatomy-swap ({len(have)})"))
    return texts, rows


def main() -> int:
    sys.path.insert(0, str(REPO))
    work = HERE / "scale-step"
    boards = {
        "v1": _board([V1 / "baselines", V1 / "diffusion"], work / "boards" / "v1-fold0"),
        "v2": _board([RUNS / "baselines", RUNS / "diffusion"], work / "boards" / "v2-fold0"),
    }
    scale_runs = [r for r in (RUNS / "scale-diffusion", RUNS / "scale-recon")
                  if (r / "per_volume.csv").is_file()]
    if scale_runs:  # v2 with every finished scaled part in place of its reference-scale one
        scaled = set()
        for run in scale_runs:
            pv = pd.read_csv(run / "per_volume.csv")
            scaled |= set(zip(pv["method"], pv["sequence"]))
        mixed = [_filtered_copy(RUNS / lane, work / "runs" / lane, scaled)
                 for lane in ("baselines", "diffusion")] + scale_runs
        boards["v2+scale"] = _board(mixed, work / "boards" / "v2-scale-fold0")
    # the boards compared on the methods every one of them has on all four cohorts, and
    # each on all the methods it has
    complete = {name: _complete_methods(board) for name, board in boards.items()}
    common = set.intersection(*complete.values())
    every = set().union(*(set(pd.read_csv(b / "leaderboard.csv")["method"]) for b in boards.values()))
    header = (f"Methods on all four cohorts in every board ({len(common)}): "
              f"{', '.join(sorted(common))}\n")
    rows, texts = [], [header]
    for name, board in boards.items():
        for subset, leave_out in (("common", every - common), ("all", set())):
            text, summary = _agreement(board, board / f"rank_agreement_{subset}.csv", leave_out)
            texts.append(f"## {name} (fold 0), {subset} methods\n\n```\n{text.strip()}\n```\n")
            rows.append(summary.assign(board=name, methods=subset))
    table = pd.concat(rows, ignore_index=True)
    table.to_csv(OUT / "data_or_scale.csv", index=False)
    anatomy = [r for r in (RUNS / "anatomy-swap", RUNS / "anatomy-swap-t1")
               if (r / "per_volume.csv").is_file()]
    if anatomy:
        texts_a, rows_a = anatomy_comparison(boards["v2"], anatomy, work / "boards")
        texts += texts_a
        rows += rows_a
        table = pd.concat(rows, ignore_index=True)
        table.to_csv(OUT / "data_or_scale.csv", index=False)
    moved = movement()
    moved.to_csv(OUT / "scale_movement.csv", index=False)
    texts.append("## How the scaled methods move (fold 0; pooled AUPRC per cohort, mean "
                 "healthy SSIM on IXI)\n\n```\n" + moved.round(4).to_string(index=False) + "\n```\n")
    (OUT / "data_or_scale.md").write_text(
        "# Data or scale: rank agreement with the paper's Table 2 at fold 0\n\n"
        "Generated by `python leaderboard/synthetic-reference-v2/diagnostics/"
        "data_or_scale.py` (see its docstring).\n\n" + "\n".join(texts))
    print(json.dumps({b: str(p) for b, p in boards.items()}, indent=1))
    print(table.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
