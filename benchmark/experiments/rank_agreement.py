"""Rank agreement of a board with a published ranking (default: the paper's Table 2 AUPRC).

    python -m benchmark experiment rank-agreement BOARD [--against FILE] [--metric dice]
        [--cohorts BraTS21,ATLAS] [--exclude "cddpm [ssl=False]"] [--skip-missing]
        [--resamples 1000]
        [--seed 0] [--out FILE.csv]

BOARD is a folder written by ``python -m benchmark leaderboard``. Per cohort: Spearman
and Kendall (tau-b) between the board's table numbers and the reference's, the same for
the mean per-volume metric with a bootstrap interval over test volumes, and each side's
top 3. Which board entry stands for which published row is printed first
(benchmark.references). --out writes the summary CSV and, beside it, ``*_methods.csv``
with every method's values and ranks. docs/rank-agreement.md explains every number.
"""
from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.atomic import write_csv
from benchmark.leaderboard import agreement as ag
from benchmark.leaderboard.load import load_runs
from benchmark.references import (
    HERE,
    METRICS,
    TABLE2,
    Matching,
    Reference,
    match_entries,
    read_reference,
)

# metric -> where its value per test volume is (the bootstrap's statistic) and what the
# table and volume statistics are, in words for the output
VOLUME_SOURCES = {
    "auprc": ag.VolumeSource("per_volume.csv", "auprc"),
    "dice": ag.VolumeSource("per_volume.csv", "dice", threshold_source="oracle"),
    "l1_ratio": ag.VolumeSource("recon_quality.csv", "l1_ratio"),
    "ssim": ag.VolumeSource("recon_quality.csv", "ssim"),
    "psnr": ag.VolumeSource("recon_quality.csv", "psnr"),
    "lpips": ag.VolumeSource("recon_quality.csv", "lpips"),
    "l1": ag.VolumeSource("recon_quality.csv", "l1"),
}
# metric -> (the table statistic, the volume statistic), in words for the output
STATISTICS = {
    "auprc": ("pooled AUPRC (over all test voxels of a fold), mean over folds: Table 2's AUPRC",
              "AUPRC of each test volume, mean over volumes, then over folds"),
    "dice": (("[DICE]: Dice pooled over a fold's test voxels at the oracle threshold, mean "
              "over folds: Table 2's [DICE]"),
             "Dice of each test volume at the oracle threshold, mean over volumes, then folds"),
    "l1_ratio": ("l1-ratio pooled over a fold's test set, mean over folds: Table 1's",
                 "l1-ratio of each test volume, mean over volumes, then over folds"),
    **{m: (f"{m} of each healthy test volume, mean over volumes, then folds: Table 1's",
           f"{m} of each healthy test volume, mean over volumes, then over folds")
       for m in ("ssim", "psnr", "lpips", "l1")},
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("board", type=Path, metavar="BOARD",
                        help="a leaderboard folder (leaderboard.csv, inputs.json)")
    parser.add_argument("--against", type=Path, default=TABLE2, metavar="FILE",
                        help="reference table CSV (default: the paper's Table 2, shipped "
                             "with the package; format in docs/rank-agreement.md)")
    parser.add_argument("--metric", default="auprc", choices=tuple(METRICS),
                        help="metric to rank by (default auprc; dice is the paper's [DICE])")
    parser.add_argument("--cohorts", default=None,
                        help="comma-separated cohorts (default: all the reference has)")
    parser.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                        help='leave board entries out, e.g. "cddpm [ssl=False]" (repeatable)')
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out board entries whose method the reference does not "
                             "list (default: an error naming them)")
    parser.add_argument("--runs", nargs="+", type=Path, default=None, metavar="RUN_DIR",
                        help="the board's run directories (default: those of inputs.json)")
    parser.add_argument("--resamples", type=int, default=1000,
                        help="bootstrap resamples of the test volumes (0: no bootstrap)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.csv",
                        help="write the summary here and the per-method values beside it")


def cohorts_of(reference: Reference, metric: str, wanted: str | None) -> pd.DataFrame:
    """(cohort, dataset, sequence) rows of the reference for this metric, those asked for."""
    rows = reference.rows[reference.rows["metric"] == metric]
    if rows.empty:
        raise ValueError(f"{reference.path}: no rows with metric {metric!r} (it has "
                         f"{', '.join(sorted(set(reference.rows['metric'])))})")
    have = rows[["cohort", "dataset", "sequence"]].drop_duplicates().reset_index(drop=True)
    if not wanted:
        return have
    out = []
    for name in (w.strip() for w in wanted.split(",") if w.strip()):
        hit = have[(have["cohort"].str.lower() == name.lower())
                   | (have["dataset"].str.lower() == name.lower())]
        if hit.empty:
            raise ValueError(f"--cohorts: unknown cohort {name!r}; {reference.path} has "
                             f"{metric} for " + ", ".join(have["cohort"]))
        out.append(hit)
    return pd.concat(out).drop_duplicates().reset_index(drop=True)


def ranks(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """1 = best; ties share their average rank."""
    return values.rank(ascending=not higher_is_better, method="average")


def top(values: pd.Series, higher_is_better: bool, scale: float, n: int = 3) -> str:
    best = values.sort_values(ascending=not higher_is_better, kind="stable").head(n)
    return ", ".join(f"{name} {v * scale:.2f}" for name, v in best.items())


def cohort_agreement(board: ag.Board, records, reference: Reference, matching: Matching,
                     cohort: pd.Series, args: argparse.Namespace) -> tuple[dict, pd.DataFrame]:
    """One cohort: the summary row and the per-method table."""
    spec, dataset, sequence = METRICS[args.metric], cohort["dataset"], cohort["sequence"]
    table = ag.table_values(board, dataset, sequence, spec)
    ref = reference.values(args.metric, dataset, sequence)
    entries = [e for e, m in matching.model.items()
               if m in ref.index and e in table.index and np.isfinite(table[e])]
    models = [matching.model[e] for e in entries]
    frame = pd.DataFrame({"cohort": cohort["cohort"], "dataset": dataset, "sequence": sequence,
                          "entry": entries, "model": models,
                          "table_value": table.reindex(entries).to_numpy(),
                          "reference_value": ref.reindex(models).to_numpy()})
    row = {"cohort": cohort["cohort"], "dataset": dataset, "sequence": sequence,
           "metric": args.metric, "n_methods": len(entries)}
    row["table_spearman"], row["table_kendall"] = ag.correlations(frame["table_value"],
                                                                  frame["reference_value"])
    row.update(_volume_part(records, frame, dataset, sequence, args))
    hib = spec.higher_is_better
    frame["table_rank"] = ranks(frame["table_value"], hib)
    frame["reference_rank"] = ranks(frame["reference_value"], hib)
    row["board_top3"] = top(frame.set_index("model")["table_value"], hib, spec.scale)
    row["reference_top3"] = top(frame.set_index("model")["reference_value"], hib, 1.0)
    return row, frame


def _volume_part(records, frame: pd.DataFrame, dataset: str, sequence: str,
                 args: argparse.Namespace) -> dict:
    """The volume statistic's correlations and their bootstrap interval; fills
    frame["volume_value"]."""
    keys = ("volume_spearman", "volume_kendall", "spearman_lo", "spearman_hi",
            "kendall_lo", "kendall_hi")
    out = dict.fromkeys(keys, float("nan")) | {"resamples": args.resamples,
                                               "valid_resamples": 0}
    frame["volume_value"] = float("nan")
    if args.resamples <= 0 or frame.empty:
        return out
    vv = ag.volume_values(records, list(frame["entry"]), dataset, sequence,
                          VOLUME_SOURCES[args.metric])
    point = ag.volume_statistic(vv.values, vv.present[None].astype(float))[0]
    frame["volume_value"] = point
    ref = frame["reference_value"].to_numpy(float)
    out["volume_spearman"], out["volume_kendall"] = ag.correlations(point, ref)
    rng = np.random.default_rng([args.seed, zlib.crc32(f"{dataset}/{sequence}".encode())])
    boot = ag.bootstrap_correlations(vv.values, ref, args.resamples, vv.present, rng)
    out["spearman_lo"], out["spearman_hi"] = ag.interval(boot[:, 0], args.confidence)
    out["kendall_lo"], out["kendall_hi"] = ag.interval(boot[:, 1], args.confidence)
    out["valid_resamples"] = int(np.isfinite(boot).all(axis=1).sum())
    return out


def main(args: argparse.Namespace) -> int:
    if args.resamples < 0 or not 0 < args.confidence < 1:
        raise ValueError("--resamples must be >= 0 and --confidence inside (0, 1)")
    board = ag.read_board(args.board)
    reference = read_reference(args.against)
    cohorts = cohorts_of(reference, args.metric, args.cohorts)
    matching = match_entries(board.entries(), reference, args.exclude, args.skip_missing)
    if not matching.model:
        raise ValueError(f"no entry of {board.path} stands for a row of {reference.path}")
    records = _records(board, args) if args.resamples > 0 else None
    rows, frames = [], []
    for _, cohort in cohorts.iterrows():
        row, frame = cohort_agreement(board, records, reference, matching, cohort, args)
        rows.append(row)
        frames.append(frame)
    table_text, volume_text = STATISTICS[args.metric]
    summary = pd.DataFrame(rows).assign(
        confidence=args.confidence, seed=args.seed, table_statistic=table_text,
        volume_statistic=volume_text, board=str(board.path), reference=shown(reference.path))
    methods = pd.concat(frames, ignore_index=True)
    print(render(summary, methods, matching, reference, args))
    if args.out is not None:
        write_csv(args.out, summary)
        beside = args.out.with_name(f"{args.out.stem}_methods.csv")
        write_csv(beside, methods)
        print(f"\nwrote {args.out} and {beside}")
    return 0


def _records(board: ag.Board, args: argparse.Namespace) -> pd.DataFrame:
    """The table of per-volume values of the board's runs (entry names as on the board)."""
    runs = args.runs or [ag.find_run_dir(board.path, r) for r in board.run_dirs]
    if not runs:
        raise ValueError(f"{board.path / 'inputs.json'} names no run directories; pass "
                         "them with --runs, or --resamples 0 for no bootstrap")
    records = load_runs(runs).table(VOLUME_SOURCES[args.metric].records)
    if board.folds is not None and "fold" in records.columns:  # as the board was built
        records = records[records["fold"].isin(board.folds)]
    return records


def shown(path: Path) -> str:
    """A shipped reference by its place in the package, another by the path given."""
    return f"benchmark/references/{path.name}" if path.parent == HERE else str(path)


def _signed(x: float) -> str:
    return "  n/a" if not np.isfinite(x) else f"{x:+.2f}"


def render(summary: pd.DataFrame, methods: pd.DataFrame, matching: Matching,
           reference: Reference, args: argparse.Namespace) -> str:
    """The printed report: mapping, statistics in words, correlations, top 3."""
    lines = [f"Rank agreement of {args.board} with {shown(reference.path)}, metric {args.metric}",
             "reference: " + " ".join(reference.citation[:3])]
    width = max(len(e) for e in [*matching.model, *matching.left_out])
    order = list(reference.models()["model"])
    lines += ["", "board entry -> reference row:"]
    lines += [f"  {e:<{width}}  -> {m}" for e, m in
              sorted(matching.model.items(), key=lambda em: order.index(em[1]))]
    lines += [f"  {e:<{width}}  (left out: {why})" for e, why in matching.left_out.items()]
    unused = [m for m in reference.models()["model"] if m not in matching.model.values()]
    if unused:
        lines.append("reference rows without a board entry: " + ", ".join(unused))
    table_text, volume_text = STATISTICS[args.metric]
    lines += ["", f"table : {table_text}", f"volume: {volume_text}"]
    if args.resamples > 0:
        lines.append(f"[interval]: {args.confidence:.0%} percentile interval of the volume "
                     f"statistic's correlation over {args.resamples} bootstrap resamples of "
                     f"the test volumes (paired: one draw for every method), seed {args.seed}")
    lines += ["rho: Spearman (average ranks for ties); tau: Kendall tau-b (scipy.stats)", ""]
    head = ["cohort", "n", "table rho", "table tau", "volume rho [interval]",
            "volume tau [interval]"]
    body = [[f"{r.cohort} ({r.sequence})", str(r.n_methods), _signed(r.table_spearman),
             _signed(r.table_kendall),
             f"{_signed(r.volume_spearman)} [{_signed(r.spearman_lo)}, {_signed(r.spearman_hi)}]",
             f"{_signed(r.volume_kendall)} [{_signed(r.kendall_lo)}, {_signed(r.kendall_hi)}]"]
            for r in summary.itertuples()]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    for cells in [head, *body]:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(cells, widths))).rstrip())
    lines += ["", "top 3 by the table statistic (board in the reference's units):"]
    pad = max(len(c) for c in summary["cohort"])
    for r in summary.itertuples():
        lines += [f"  {r.cohort:<{pad}}  board:     {r.board_top3}",
                  f"  {'':<{pad}}  reference: {r.reference_top3}"]
        missing = sorted(set(matching.model) - set(methods.loc[methods.cohort == r.cohort,
                                                               "entry"]))
        if missing:
            lines.append(f"  {'':<{pad}}  not ranked here (no value): " + ", ".join(missing))
    return "\n".join(lines)
