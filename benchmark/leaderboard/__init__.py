"""The leaderboard: merge run directories into tables with significance tests and timings.

    python -m benchmark leaderboard RUN_DIR [RUN_DIR ...] --out DIR
        [--paired fold|volume] [--correction none|holm|bonferroni]
        [--rounds 10000] [--alpha 0.05] [--size-bins 3] [--stratum-min-volumes 5]

Besides the tables: results by lesion-size bin and by site (strata.py, stratified.csv).

Python API: `build_leaderboard(run_dirs, out, settings)`. See docs/leaderboard.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from ..runconfig import RunConfig
from ..rundir import RunDir
from .aggregate import fold_values, summarise
from .load import CONSISTENCY_TAGS, RunSet, load_runs, select_folds
from .significance import CORRECTIONS, ENGINES, UNITS, SignificanceSettings, run_tests
from .strata import StrataSettings, stratify, write_strata
from .tables import (
    build_table,
    render_latex,
    render_markdown,
    table1_columns,
    table2_columns,
    volume_counterpart,
)
from .timings import render_timings_markdown, summarise_timings

__all__ = [
    "SignificanceSettings",
    "build_leaderboard",
    "configure_parser",
    "load_runs",
    "main",
]


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the leaderboard's arguments to a (sub)parser."""
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="run directories to merge (per_volume.csv, per_dataset.csv, ...)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--paired", choices=UNITS, default="fold",
                        help="sample unit of the permutation tests: per-fold values (as "
                             "the paper) or per-volume values paired by (fold, volume)")
    parser.add_argument("--fold-pairing", choices=("unpaired", "paired"), default="unpaired",
                        help="with --paired fold: exchange labels freely (mlxtend's default, "
                             "default here) or pair fold k with fold k")
    parser.add_argument("--correction", choices=CORRECTIONS, default="none",
                        help="multiple-comparison correction within each dataset x metric")
    parser.add_argument("--rounds", type=int, default=10_000, help="permutation rounds")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="mlxtend itself, or its vectorised replica (identical p-values, "
                             "much faster); auto: mlxtend for small problems only")
    parser.add_argument("--test-metrics", choices=("tables", "all"), default="tables",
                        help="test only the metrics shown in Tables 1-2 (default) or all")
    parser.add_argument("--folds", default=None, metavar="0,1,...",
                        help="only these folds of the runs (e.g. 0: a board at one fold, "
                             "beside a run that has only fold 0); recorded in inputs.json")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument("--qualitative", action="append", default=[],
                        metavar="DATASET:VOLUME",
                        help="add a grid of input, reconstruction, anomaly map and ground "
                             "truth of this test volume from the runs' cached maps "
                             "(repeatable; paper Figs. 5 and 7)")
    parser.add_argument("--qualitative-fold", type=int, default=0,
                        help="fold whose cached maps the qualitative grids show")
    parser.add_argument("--size-bins", type=int, default=3,
                        help="at most this many lesion-size bins per data set "
                             "(stratified.csv; equal-count quantile bins)")
    parser.add_argument("--stratum-min-volumes", type=int, default=5,
                        help="fewest volumes a lesion-size bin or a site stratum may hold")
    return parser


def main(args: argparse.Namespace) -> int:
    """Entry point for `python -m benchmark leaderboard`; returns the exit status."""
    try:
        settings = SignificanceSettings(unit=args.paired, correction=args.correction,
                                        rounds=args.rounds, alpha=args.alpha,
                                        seed=args.seed, fold_pairing=args.fold_pairing,
                                        engine=args.engine)
        strata = StrataSettings(size_bins=args.size_bins,
                                min_volumes=args.stratum_min_volumes)
        folds = parse_folds(args.folds)
        result = build_leaderboard(args.run_dirs, args.out, settings,
                                   test_metrics=args.test_metrics, plots=not args.no_plots,
                                   qualitative=args.qualitative,
                                   qualitative_fold=args.qualitative_fold, strata=strata,
                                   folds=folds)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for flag in result["flags"]:
        print(f"warning: {flag}", file=sys.stderr)
    print(result["table2_md"])
    print(f"leaderboard written to {args.out} ({len(result['flags'])} warning(s))")
    return 0


def _caption(kind: str, s: SignificanceSettings) -> str:
    paired = ("paired by (fold, volume); a pooled column is tested with the same metric per "
              "volume") if s.unit == "volume" else \
        f"per-fold values, {s.fold_pairing}"
    what = {"table1": "Reconstruction quality on healthy data and l1-ratio "
                      "(unhealthy / healthy l1-error) per unhealthy data set.",
            "table2": "Segmentation performance; [DICE] uses the oracle threshold "
                      "(best Dice on the test set itself: an upper bound)."}[kind]
    return (f"{what} Mean ± std (ddof=1) over folds. Best in bold; * = the best is "
            f"significantly better than every other model (two-sided permutation test of "
            f"mlxtend, {s.rounds} rounds, {paired}, correction {s.correction}, "
            f"alpha {s.alpha}; significance.csv).")


def parse_folds(text: str | None) -> list[int] | None:
    """``--folds 0,2`` -> [0, 2]; None -> every fold."""
    if text is None:
        return None
    try:
        folds = sorted({int(f) for f in text.split(",") if f.strip()})
    except ValueError:
        raise ValueError(f"--folds {text!r}: expected comma-separated fold numbers") from None
    if not folds:
        raise ValueError(f"--folds {text!r}: no fold given")
    return folds


def build_leaderboard(run_dirs: list, out: str | Path,
                      settings: SignificanceSettings | None = None,
                      test_metrics: str = "tables", plots: bool = True,
                      qualitative: list[str] = (), qualitative_fold: int = 0,
                      strata: StrataSettings | None = None,
                      folds: list[int] | None = None) -> dict:
    """Merge runs and write every output file into `out`; returns what was written.

    qualitative: "DATASET:VOLUME" cases drawn from the runs' cached maps.
    strata: lesion-size bins and site strata (stratified.csv; see strata.py).
    folds: only these folds of the runs (None: all).
    """
    settings = settings or SignificanceSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    selected = folds  # `folds` is reused below for the per-fold values
    rs = select_folds(load_runs(run_dirs), selected)
    folds = fold_values(rs)
    board = summarise(folds, rs.flags)
    board.to_csv(out / "leaderboard.csv", index=False)
    folds.to_csv(out / "fold_values.csv", index=False)
    specs = {"table1": table1_columns(board), "table2": table2_columns(board)}
    groups = [c.group for cols in specs.values() for c in cols]
    if settings.unit == "volume":  # a pooled column's asterisk uses its per-volume test
        groups += [g for g in (volume_counterpart(board, x) for x in groups) if g]
    if test_metrics == "all":
        groups = list(board[["dataset", "sequence", "metric", "level", "threshold_source"]]
                      .drop_duplicates().itertuples(index=False, name=None))
    raw = {"volume": rs.table("per_volume.csv"), "healthy": rs.table("recon_quality.csv")}
    sig = run_tests(folds, raw, list(dict.fromkeys(groups)), settings)
    sig.to_csv(out / "significance.csv", index=False)
    marks = {e: " †" for e in board.loc[board["flags"] != "", "entry"]}
    result = {"flags": rs.flags, "leaderboard": board, "significance": sig}
    for name, title in (("table1", "Table 1: reconstruction quality"),
                        ("table2", "Table 2: segmentation performance")):
        table = build_table(board, sig, specs[name], title, _caption(name, settings))
        if marks:
            table.notes.append("† flagged (details in warnings.txt): " + _flag_summary(board))
        md, tex = render_markdown(table, marks), render_latex(table, marks)
        (out / f"{name}.md").write_text(md)
        (out / f"{name}.tex").write_text(tex)
        result[f"{name}_md"], result[name] = md, table
    timings = summarise_timings(rs.table("timings.csv"))
    timings.to_csv(out / "timings.csv", index=False)
    (out / "timings.md").write_text(render_timings_markdown(timings))
    (out / "warnings.txt").write_text("".join(f"{f}\n" for f in rs.flags))
    _write_inputs(out, rs, settings, strata, selected)
    result["strata"] = stratify(rs, settings, strata, test_metrics)
    write_strata(result["strata"], out)
    result["plots"] = _plots(rs, board, out / "plots") if plots else []
    result["plots"] += _strata_plots(result["strata"].results, out / "plots") if plots else []
    result["plots"] += [_qualitative(rs, case, qualitative_fold, out / "plots")
                        for case in qualitative]
    return result


def _flag_summary(board: pd.DataFrame) -> str:
    """'ae: duplicate; rd: fewer_folds, missing_dataset' for the note under a table."""
    flagged = board[board["flags"] != ""].groupby("entry")["flags"]
    return "; ".join(f"{e}: " + ", ".join(sorted(set(";".join(f).split(";"))))
                     for e, f in flagged)


def _write_inputs(out: Path, rs: RunSet, settings: SignificanceSettings,
                  strata: StrataSettings | None = None, folds: list[int] | None = None
                  ) -> None:
    """Record what was merged and how, so the leaderboard can be regenerated (and the
    report can say which runs, profile, protocol and environment made it)."""
    record = {"run_dirs": [str(d) for d in rs.run_dirs],
              **({"folds": folds} if folds is not None else {}),
              "significance": settings.__dict__,
              "strata": (strata or StrataSettings()).__dict__,
              "protocol": _protocol_tags(rs),
              "configs": {run: _recorded_config(run, c) for run, c in rs.configs.items()},
              "environments": rs.environments}
    (out / "inputs.json").write_text(json.dumps(record, indent=2, default=str))


RECORDED_CONFIG = ("methods", "profile", "data_source", "data_root", "sequences", "folds",
                   "fold_scheme", "cohorts", "data_options", "trainer", "overrides")


def _recorded_config(run: str, config: RunConfig) -> dict:
    """A run's settings for inputs.json. config.json keeps the *last launch's* methods,
    sequences and folds (a resumed run may be launched fold by fold or method by method),
    so those three are taken from the run's finished parts where it has any."""
    record = {k: v for k, v in config.to_json().items() if k in RECORDED_CONFIG}
    parts = RunDir(Path(run)).parts()
    if parts:
        record |= {"methods": sorted({p.method for p in parts}),
                   "sequences": sorted({p.sequence for p in parts}),
                   "folds": sorted({p.fold for p in parts})}
    return record


def _protocol_tags(rs: RunSet) -> dict[str, list[str]]:
    """Every value of each protocol tag (protocol_version, postprocess, ...) in the runs."""
    tags = {}
    for name in ("per_volume.csv", "per_dataset.csv"):
        table = rs.table(name)
        for tag in CONSISTENCY_TAGS:
            if tag in table.columns:
                tags.setdefault(tag, set()).update(table[tag].dropna().astype(str))
    return {tag: sorted(values) for tag, values in tags.items()}


def _plots(rs: RunSet, board: pd.DataFrame, where: Path) -> list[Path]:
    """Per-dataset box/strip plots and, when a run has noise_levels.csv, Fig. 6."""
    from . import plots  # matplotlib only when figures are asked for

    written = []
    pv = rs.table("per_volume.csv")
    for dataset in sorted(pv["dataset"].unique()) if not pv.empty else []:
        fig = plots.per_volume_boxplots(pv, dataset)
        written.append(plots.save(fig, where / f"per_volume_{_safe(dataset)}.png"))
    noise = rs.table("noise_levels.csv")
    if not noise.empty and "auprc" in noise.columns:
        written.append(plots.save(plots.noise_level_curve(noise), where / "noise_levels.png"))
    return written


def _strata_plots(strat: pd.DataFrame, where: Path) -> list[Path]:
    """Metric vs lesion size (and by site) per entry, detection rate per size bin."""
    from . import plots

    written = []
    for (dataset, by), _ in strat.groupby(["dataset", "stratify_by"], sort=True):
        fig = plots.stratified_lines(strat, dataset, by)
        written.append(plots.save(fig, where / f"strata_{_safe(dataset)}_{by}.png"))
        if by == "lesion_size" and (strat["metric"] == "detection_rate_pooled").any():
            written.append(plots.save(plots.detection_by_size(strat, dataset),
                                      where / f"detection_{_safe(dataset)}.png"))
    return written


def _qualitative(rs: RunSet, case: str, fold: int, where: Path) -> Path:
    from . import plots
    from .qualitative import case_rows

    dataset, sep, volume = case.partition(":")
    if not sep or not dataset or not volume:
        raise ValueError(f"--qualitative {case!r}: expected DATASET:VOLUME")
    rows, labels = case_rows(rs.run_dirs, dataset, volume, fold=fold)
    if not rows:
        raise ValueError(f"--qualitative {case!r}: no method has cached maps of {volume}")
    fig = plots.qualitative_grid(rows, labels)
    return plots.save(fig, where / f"qualitative_{_safe(dataset)}_{_safe(volume)}.png")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))
