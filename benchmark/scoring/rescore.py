"""``python -m benchmark evaluate RUN``: re-score every finished part from its cached maps.

No model runs. Another post-processing, AUC region or set of threshold sources gives new
result tables for the same maps. Every part is scored before anything is written, so a
missing or unreadable maps file stops the command (exit 2, the file named) with the run
exactly as it was; a run with no finished part is an error too. It holds the run's launch
lock: a run that another process is writing is refused, not re-scored under it. The part's identity
columns come from the run's records (config.json, done.json), its result tags included.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..postprocess import PostProcess
from ..profiles import PROFILES
from ..rundir import RunDir
from ..tags import tag_columns
from ..thresholds import DEFAULT_SOURCES, SOURCES, parse_sources
from . import AUC_REGIONS, ScoringOptions, part_tables

if TYPE_CHECKING:  # pandas when parts are re-scored: `evaluate --help` needs none
    import pandas as pd


def configure_parser(parser) -> None:
    parser.add_argument("run_dir", type=Path, help="a finished run directory, or a model "
                        "bundle (`export`): then its model is scored on --data-root")
    parser.add_argument("--postprocess", default=str(PostProcess()),
                        help="post-processing tag, e.g. 'erode3_2d+median5+cc7_26' (default), "
                             "'median5+erode3_2d+cc7_26' (paper's text order), "
                             "'erode3_2d+median5+cc8_26' (authors' code: drop <= 7 voxels), "
                             "'none'")
    parser.add_argument("--auc-region", default="brain", choices=AUC_REGIONS,
                        help="voxels for AUPRC/AUROC: inside the brain mask (default) or all "
                             "voxels (the authors' code)")
    parser.add_argument("--thresholds", default=",".join(DEFAULT_SOURCES),
                        help=f"threshold sources (default: all of {', '.join(SOURCES)})")
    bundle = parser.add_argument_group("with a model bundle (benchmark/deploy/evaluate.py)")
    bundle.add_argument("--data-root", type=Path, default=None,
                        help="the data root to score it on (default: the synthetic data it "
                             "was trained on, if it was)")
    bundle.add_argument("--out", type=Path, default=Path("runs"),
                        help="where its run directory goes (default runs/)")
    bundle.add_argument("--run-id", default=None)
    bundle.add_argument("--profile", default="paper", choices=tuple(PROFILES),
                        help="whose test/validation volume caps apply (default paper: none)")


def options_from_args(args) -> ScoringOptions:
    return ScoringOptions(postprocess=PostProcess.from_string(args.postprocess),
                          auc_region=args.auc_region,
                          threshold_sources=parse_sources(args.thresholds))


def _legacy_tags(part, per_volume: pd.DataFrame) -> dict:
    """Tags of a part finished before done.json recorded them: the columns of its old
    per_volume.csv that a re-score does not write."""
    path = part.table_path("per_volume.csv")
    if not path.is_file():
        return {}
    import pandas as pd

    old = pd.read_csv(path, nrows=1)
    return {c: old[c].iloc[0].item() if hasattr(old[c].iloc[0], "item") else old[c].iloc[0]
            for c in old.columns if c not in per_volume.columns}


def rescore(run: RunDir, opts: ScoringOptions) -> int:
    """Score every finished part, then write; returns the number of parts."""
    config = run.run_config()
    parts = run.parts()
    if not parts:
        raise FileNotFoundError(f"{run.path}: no finished part to re-score (no done.json)")
    profile = config.profile.name
    results = []
    for part in parts:  # score everything first: nothing is overwritten unless all succeed
        sets = run.evaluation_sets(part)
        done = part.done()
        ids = part.ids(profile=profile, data_source=config.data_source)
        if "tags" in done:
            tables = part_tables(part, sets, {**ids, **tag_columns(done["tags"])}, opts)
        else:
            tables = part_tables(part, sets, ids, opts)
            legacy = tag_columns(_legacy_tags(part, tables["per_volume.csv"]))
            tables = {name: frame.assign(**legacy) for name, frame in tables.items()}
        results.append((part, tables))
    for part, tables in results:
        for name, frame in tables.items():
            part.write_table(name, frame)
    run.collect()
    return len(parts)


def main(args) -> int:
    opts = options_from_args(args)
    if (Path(args.run_dir) / "bundle.json").is_file():
        from ..deploy.evaluate import main as evaluate_bundle

        return evaluate_bundle(args, opts)
    if args.data_root is not None:
        raise ValueError("--data-root applies to a model bundle only; a run is re-scored on "
                         "the data it recorded")
    run = RunDir(args.run_dir)
    run.run_config()  # not a run directory: an error before a lock file is made there
    with run.launch_lock():  # a run being written by another process is not re-scored
        n = rescore(run, opts)
    print(f"re-scored {n} part(s) of {run.path} with post-processing {opts.describe()}, AUCs "
          f"over {opts.auc_region} voxels, thresholds {','.join(opts.threshold_sources)}")
    return 0


__all__ = ["configure_parser", "main", "options_from_args", "rescore"]
