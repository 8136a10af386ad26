"""``python -m benchmark plan``: the parts a run would create, and what they would cost.

    python -m benchmark plan --profile paper --methods cddpm,pddpm,ddpm
    python -m benchmark plan --profile paper --methods all --timings runs/gpu-calibration

Per part the cost is training (each stage's epochs x seconds per epoch) plus inference
(every evaluation volume x seconds per volume). The seconds come from, in this order:

1. ``--timings RUN ...``: the timings.csv of earlier runs with the SAME profile (network
   sizes differ between profiles, so other profiles' timings are not used), per method;
   seconds per epoch are scaled by the number of training volumes (an epoch visits each
   training volume ``repeats`` times), inference is per volume. The hardware is the one
   the timings were measured on (timings.csv's ``hardware``/``device`` columns).
2. the reference figures below (paper profile, diffusion models only): measured with
   ``python -m perf.bench_diffusion --profile paper`` on the project's 2-core CPU (README,
   "Performance"). No GPU figures are built in: time one short run on your GPU (see
   docs/cluster.md, "Sizing the allocation") and pass it with --timings.

Methods with neither are listed with their parts and no estimate. Volume counts come from
the data (``--data-root``, or the synthetic data of the profile's size where generated),
else from the synthetic generator's size table. Not counted: validation passes inside
an epoch when estimating from the reference figures (timings.csv's seconds per epoch
include them), data loading before training, queueing.
"""
from __future__ import annotations

import argparse
import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas and the run configuration are imported where they are used
    import pandas as pd

    from ..runconfig import RunConfig

# where a method's own measured cost (AnomalyMethod.reference_cost) comes from
REFERENCE_HARDWARE = "2-core AMD EPYC CPU (cpu)"
REFERENCE_SOURCE = ("README 'Performance': perf.bench_diffusion --profile paper, batch 4, "
                    "t=500 inference (ENS: x3 UNet passes, not included)")


@dataclass
class Counts:
    train: int                     # healthy training volumes
    val: int                       # healthy validation volumes
    evaluation: int                # volumes inferred (every evaluation set and split)
    source: str


@dataclass
class Figure:
    """Seconds per epoch (None: from slices/s) and per inference volume, and their origin."""

    seconds_per_epoch: float | None
    seconds_per_volume: float | None
    hardware: str
    source: str
    train_volumes: int | None = None          # of the measured run (epoch cost scales with it)
    slices_per_second: float | None = None    # training throughput (reference figures)


@dataclass
class PartPlan:
    method: str
    sequence: str
    fold: int
    epochs: dict[str, int]
    counts: Counts
    train_hours: float | None = None
    infer_hours: float | None = None
    hardware: str = "-"
    source: str = "no timing for this method: pass --timings RUN of a run with this profile"
    notes: list[str] = field(default_factory=list)

    @property
    def hours(self) -> float | None:
        if self.train_hours is None or self.infer_hours is None:
            return None
        return self.train_hours + self.infer_hours


# ---------------------------------------------------------------------------- volumes
def synthetic_counts(size: str, sequence: str, profile) -> Counts:
    """Volume counts of the synthetic data set of ``size`` from the generator's table."""
    from ..data.synth import SIZES
    from ..data.synth.subjects import UNHEALTHY

    sizes = SIZES[size]
    cap = profile.max_test_volumes
    capped = (lambda n: n) if cap is None else (lambda n: min(n, cap))
    train, val = sizes.ixi_pool - sizes.ixi_val, sizes.ixi_val
    if profile.max_train_volumes is not None:
        train, val = min(train, profile.max_train_volumes), min(val, max(1, profile.max_train_volumes // 4))
    evaluation = capped(sizes.ixi_test) + capped(val)
    for name, cohort in UNHEALTHY.items():
        if sequence in cohort.sequences:
            n_val, n_test = sizes.unhealthy[name]
            evaluation += capped(n_val) + capped(n_test)
    return Counts(train, val, evaluation, f"synthetic-{size} size table")


def data_counts(cfg: RunConfig, sequence: str, fold: int) -> Counts:
    """Volume counts read from the run's data root's split CSVs (no volume is loaded)."""
    from ..data.module import BenchmarkDataModule

    data = BenchmarkDataModule(cfg.data_config(sequence, fold))
    sets = data.evaluation_sets()
    evaluation = sum(len(records) for splits in sets.values() for records in splits.values())
    return Counts(len(data.records["train"]), len(data.records["val"]), evaluation,
                  str(cfg.data_root))


# ---------------------------------------------------------------------------- timings
def measured_figures(runs: list[Path], profile: str) -> tuple[dict[tuple[str, str], Figure], list[str]]:
    """{(method, sequence): Figure} from timings.csv of runs with ``profile``; notes on
    runs left out."""
    import pandas as pd

    from ..rundir import RunDir

    out: dict[tuple[str, str], Figure] = {}
    notes: list[str] = []
    for path in runs:
        run = RunDir(path)
        config = run.run_config()
        table = run.table_path("timings.csv")
        if config.profile.name != profile:
            notes.append(f"{path}: profile {config.profile.name!r}, not {profile!r}: not used "
                         "(network sizes differ between profiles)")
            continue
        if not table.is_file():
            notes.append(f"{path}: no timings.csv")
            continue
        frame = pd.read_csv(table)
        for (method, sequence), rows in frame.groupby(["method", "sequence"]):
            train_volumes = None
            try:
                train_volumes = data_counts(config, sequence, int(rows["fold"].iloc[0])).train
            except (OSError, KeyError, ValueError):
                pass
            per_epoch = rows["train_seconds_per_epoch"].dropna()
            infer = rows["infer_seconds_per_volume"].dropna()
            hardware = f"{rows['hardware'].iloc[0]} ({rows['device'].iloc[0]})"
            out[(method, sequence)] = Figure(
                float(per_epoch.mean()) if len(per_epoch) else None,
                float(infer.mean()) if len(infer) else None, hardware,
                f"timings.csv of {path} ({len(rows)} part(s))", train_volumes)
    return out, notes


def reference_figure(cls, profile: str) -> Figure | None:
    """The cost a method's class states for ``profile`` (``reference_cost``), if any."""
    if profile not in cls.reference_cost:
        return None
    rate, infer = cls.reference_cost[profile]
    return Figure(None, infer, REFERENCE_HARDWARE, REFERENCE_SOURCE, slices_per_second=rate)


# ---------------------------------------------------------------------------- planning
def method_spec(cls, hparams: dict):
    """An instance of a method's class with its resolved hyperparameters and no network
    (``__init__`` not run): enough for its stages() and stage_epochs(), which read
    hyperparameters and class attributes only, without building a paper-size model or
    fetching pretrained weights to plan a run."""
    from lightning.fabric.utilities.data import AttributeDict

    defaults = {n: p.default for n, p in cls.hyperparameters().items()
                if p.default is not inspect.Parameter.empty}
    spec = cls.__new__(cls)
    object.__setattr__(spec, "_hparams", AttributeDict({**defaults, **hparams}))
    return spec


def plan_parts(cfg: RunConfig, counts, figures: dict[tuple[str, str], Figure],
               epochs_override=None) -> list[PartPlan]:
    """One PartPlan per (method, sequence, fold) of ``cfg``. counts(sequence, fold) ->
    Counts."""
    from ..registry import get_method
    from ..train import stage_epochs

    out = []
    profile = cfg.profile
    for name in cfg.methods:
        cls = get_method(name)
        method = method_spec(cls, cfg.hparams(name))
        epochs = ({s: stage_epochs(method, s, profile, epochs_override) for s in method.stages()}
                  if method.requires_training else {})
        for sequence in cfg.sequences:
            figure = (figures.get((name, sequence))
                      or next((f for (m, _), f in figures.items() if m == name), None)
                      or reference_figure(cls, profile.name))
            for fold in cfg.fold_list():
                c = counts(sequence, fold)
                part = PartPlan(name, sequence, fold, epochs, c)
                if figure is not None:
                    _estimate(part, figure, profile)
                out.append(part)
    return out


def _estimate(part: PartPlan, figure: Figure, profile) -> None:
    total_epochs = sum(part.epochs.values())
    if total_epochs == 0:
        train = 0.0
    elif figure.seconds_per_epoch is not None:
        scale = 1.0
        if figure.train_volumes:
            scale = part.counts.train / figure.train_volumes
        else:
            part.notes.append("measured run's training volumes unknown: assumed equal")
        train = total_epochs * figure.seconds_per_epoch * scale
    elif figure.slices_per_second:
        slices = part.counts.train * profile.repeats
        if isinstance(profile.limit_train_batches, int):
            slices = min(slices, profile.limit_train_batches * profile.batch_size)
        train = total_epochs * slices / figure.slices_per_second
    else:
        return
    if figure.seconds_per_volume is None:
        return
    part.train_hours = train / 3600
    part.infer_hours = part.counts.evaluation * figure.seconds_per_volume / 3600
    part.hardware, part.source = figure.hardware, figure.source


def summary(parts: list[PartPlan]) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for method in dict.fromkeys(p.method for p in parts):
        mine = [p for p in parts if p.method == method]
        known = [p for p in mine if p.hours is not None]
        first = mine[0]
        rows.append({
            "method": method, "parts": len(mine),
            "epochs": "+".join(f"{k}={v}" for k, v in first.epochs.items()) or "0",
            "train vols": first.counts.train,
            "eval vols/part": "/".join(str(n) for n in dict.fromkeys(p.counts.evaluation
                                                                     for p in mine)),
            "hours/part": (sum(p.hours for p in known) / len(known)) if known else math.nan,
            "hours": sum(p.hours for p in known) if len(known) == len(mine) else math.nan,
            "on": first.hardware, "source": first.source})
    return pd.DataFrame(rows)


def format_plan(parts: list[PartPlan], list_parts: bool = False) -> str:
    import pandas as pd

    table = summary(parts)
    lines = []
    if list_parts:
        lines += [f"{p.method}/{p.sequence}/fold{p.fold}  "
                  + (f"{p.hours:.2f} h" if p.hours is not None else "no estimate")
                  for p in parts]
        lines.append("")
    shown = table.copy()
    for col in ("hours/part", "hours"):
        shown[col] = shown[col].map(lambda v: "-" if pd.isna(v) else f"{v:,.2f}")
    lines.append(shown.drop(columns=["source"]).to_string(index=False))
    lines.append("")
    methods = len(table)
    sequences = len({p.sequence for p in parts})
    folds = len({p.fold for p in parts})
    lines.append(f"parts: {len(parts)} ({methods} method(s) x {sequences} sequence(s) x "
                 f"{folds} fold(s)); volumes: {parts[0].counts.source if parts else '-'}")
    by_hardware: dict[str, float] = {}
    for p in parts:
        if p.hours is not None:
            by_hardware[p.hardware] = by_hardware.get(p.hardware, 0.0) + p.hours
    for hardware, hours in by_hardware.items():
        kind = "GPU-hours" if "(cuda)" in hardware else "hours"
        lines.append(f"total: {hours:,.1f} {kind} on {hardware}")
    missing = sorted({p.method for p in parts if p.hours is None})
    if missing:
        lines.append(f"no estimate for: {', '.join(missing)} (no timing at this profile: pass "
                     "--timings RUN of a run that has them)")
    sources = list(dict.fromkeys(p.source for p in parts if p.hours is not None))
    lines.append("sources:" + ("" if sources else " none"))
    lines += [f"  {source}" for source in sources]
    notes = dict.fromkeys(n for p in parts for n in p.notes)
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- CLI
def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", required=True, help="comma-separated, or all")
    from ..profiles import PROFILES

    p.add_argument("--profile", default="paper", choices=tuple(PROFILES))
    p.add_argument("--sequences", default="t2,t1")
    p.add_argument("--folds", default=None, help="e.g. 0,1,2 (default: the profile's)")
    p.add_argument("--epochs", default=None, metavar="N|STAGE=N,...",
                   help="as run's --epochs")
    p.add_argument("--data-root", type=Path, default=None,
                   help="count volumes in this data (default: the profile's synthetic size)")
    p.add_argument("--fold-scheme", default="disjoint", choices=("disjoint", "reference"))
    p.add_argument("--cohorts", default=None, help="as run's --cohorts")
    p.add_argument("--timings", type=Path, nargs="+", default=[], metavar="RUN",
                   help="run directories whose timings.csv give the seconds (same profile)")
    p.add_argument("--parts", action="store_true", help="also list every part")


def main(args: argparse.Namespace) -> int:
    from ..cli import CliError
    from ..cli.run import _epochs, _int_list
    from ..profiles import get_profile
    from ..registry import list_methods, parse_method_list
    from ..runconfig import RunConfig
    from ..rundir import RunDir

    try:
        methods = (list_methods() if args.methods.strip() == "all"
                   else parse_method_list(args.methods))
        profile = get_profile(args.profile)
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    sequences = [s.strip().lower() for s in args.sequences.split(",") if s.strip()]
    if not sequences or any(s not in ("t1", "t2") for s in sequences):
        raise CliError(f"--sequences {args.sequences!r}: allowed values are t1, t2")
    folds = _int_list(args.folds, "--folds") if args.folds else list(profile.folds)
    cohorts = args.cohorts.split(",") if args.cohorts else None
    root = args.data_root
    if root is None:
        from ..data.synth import default_root, manifest_matches

        candidate = default_root(profile.synthetic_size)
        if manifest_matches(candidate, profile.synthetic_size, 0):
            root = candidate
    elif not root.exists():
        raise CliError(f"--data-root: {root} does not exist")
    cfg = RunConfig(methods=methods, profile=profile, data_root=root or Path(),
                    run_dir=Path(), sequences=sequences, folds=folds,
                    fold_scheme=args.fold_scheme, cohorts=cohorts)
    if root is not None:
        def counts(sequence, fold):
            return data_counts(cfg, sequence, fold)
    else:
        def counts(sequence, fold):
            return synthetic_counts(profile.synthetic_size, sequence, profile)
    for run in args.timings:
        if not RunDir(run).exists():
            raise CliError(f"--timings {run}: not a run directory (no config.json)")
    figures, notes = measured_figures(args.timings, profile.name)
    parts = plan_parts(cfg, counts, figures, _epochs(args.epochs))
    print(format_plan(parts, list_parts=args.parts))
    for note in notes:
        print(f"note: {note}")
    return 0
