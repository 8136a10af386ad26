"""``python -m benchmark run``: its arguments, and the run configuration they make.

Imports nothing heavy at its top (``run --help`` answers at once); the handler imports
the runner (Lightning, torch, the methods) when it runs.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from ..profiles import PROFILES
from . import CliError

if TYPE_CHECKING:
    from ..runconfig import CurveOptions, RunConfig


def parse_overrides(items: list[str], config: Path | None, methods: list[str]) -> dict:
    """``--set ae.latent_dim=64`` and ``--config file.{json,toml}`` -> {method: {key: value}}.

    Keys are checked against each method's typed __init__ arguments when it is built;
    here a method that is not part of the run is an error (probably a typo).
    """
    out: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}  # method -> where its overrides came from
    if config is not None:
        if not config.is_file():
            raise CliError(f"--config: file not found: {config}")
        try:
            text = config.read_text()
            data = json.loads(text) if config.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CliError(f"--config {config}: {exc}") from None
        data = data.get("methods", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise CliError(f"--config {config}: expected tables of hyperparameters, e.g. "
                           "[ae] latent_dim = 64 (JSON: {\"ae\": {\"latent_dim\": 64}})")
        for method, values in data.items():
            if not isinstance(values, dict):
                raise CliError(f"--config {config}: [{method}] must be a table of hyperparameters")
            out.setdefault(method, {}).update(values)
            where.setdefault(method, f"--config {config}")
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise CliError(f"--set {item!r}: expected METHOD.KEY=VALUE, e.g. ae.latent_dim=64")
        out.setdefault(method, {})[name] = value
        where.setdefault(method, f"--set {item}")
    unknown = sorted(set(out) - set(methods))
    if unknown:
        sources = "; ".join(f"{m!r} from {where[m]}" for m in unknown)
        raise CliError(f"overrides for method(s) that are not in --methods {methods}: {sources}")
    return out


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"{flag} {text!r}: expected comma-separated integers") from None


def _epochs(text: str | None) -> int | dict[str, int] | None:
    """``--epochs 100`` (every stage) or ``--epochs main=100,pretrain=20`` (by stage name)."""
    if text is None:
        return None
    try:
        if "=" not in text:
            value = int(text)
            if value < 0:
                raise ValueError
            return value
        out = {}
        for item in text.split(","):
            stage, _, n = item.partition("=")
            if not stage.strip() or int(n) < 0:
                raise ValueError
            out[stage.strip()] = int(n)
        return out
    except ValueError:
        raise CliError(f"--epochs {text!r}: expected N or STAGE=N,... (e.g. main=100,"
                       "pretrain=20) with N >= 0") from None


def _run_id(text: str, flag: str) -> str:
    """A run id is one folder name under --out: never a path that leaves it or is --out."""
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    if text.strip() in ("", ".", "..") or any(sep in text for sep in seps):
        raise CliError(f"{flag} {text!r}: a run id is one folder name inside --out (no "
                       "'/', and not '.' or '..'); use --out to choose where runs go")
    return text


def _resolve_data_root(args: argparse.Namespace, profile) -> tuple[Path, str]:
    if args.data_root is not None:
        if not args.data_root.exists():
            raise CliError(f"--data-root: {args.data_root} does not exist")
        return args.data_root, "user"
    from ..data.synth import ensure_synthetic, source_name

    size = args.synthetic_size or profile.synthetic_size
    version = args.synthetic_version
    return (ensure_synthetic(size=size, progress=not args.no_progress, version=version),
            source_name(size, version))


def run_config(args: argparse.Namespace) -> RunConfig:
    """The run's configuration from ``run``'s arguments, typed and resolved (the synthetic
    default is generated here if it is missing). Unknown methods, hyperparameters and
    cohorts are left for benchmark.validate to report with every other problem."""
    from ..data.options import parse_data_options
    from ..profiles import get_profile
    from ..runconfig import RunConfig, TrainerOptions
    from ..rundir import new_run_id

    if args.methods.strip() == "all":  # every registered method, in the registry's order
        from ..registry import list_methods

        methods = list_methods()
    else:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if len(set(methods)) != len(methods):
        raise CliError(f"--methods lists a method twice: {args.methods!r}")
    try:
        profile = get_profile(args.profile)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    sequences = [s.strip().lower() for s in args.sequences.split(",") if s.strip()]
    bad = [s for s in sequences if s not in ("t1", "t2")]
    if bad or not sequences:
        raise CliError(f"--sequences {args.sequences!r}: allowed values are t1, t2")
    overrides = parse_overrides(args.set, args.config, methods)
    try:
        data_options = parse_data_options(args.data_option)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    folds = _int_list(args.folds, "--folds") if args.folds else None
    curves = _curves(args, profile)
    root, source = _resolve_data_root(args, profile)
    # DDP re-runs this command per device: the children must write into the same run.
    run_id = (_run_id(args.run_id, "--run-id") if args.run_id else
              _run_id(os.environ["UAD_BENCH_RUN_ID"], "$UAD_BENCH_RUN_ID")
              if os.environ.get("UAD_BENCH_RUN_ID") else new_run_id())
    os.environ["UAD_BENCH_RUN_ID"] = run_id
    return RunConfig(
        methods=methods, profile=profile, data_root=root, run_dir=args.out / run_id,
        sequences=sequences, folds=folds, overrides=overrides,
        trainer=TrainerOptions(accelerator=args.accelerator, devices=args.devices,
                               strategy=args.strategy, num_nodes=args.num_nodes,
                               precision=args.precision, epochs=_epochs(args.epochs),
                               progress=not args.no_progress, logger=args.logger, seed=args.seed,
                               select=args.select_checkpoint),
        fold_scheme=args.fold_scheme, augment=not args.no_augment, data_options=data_options,
        num_workers=args.num_workers,
        cohorts=args.cohorts.split(",") if args.cohorts else None, map_dtype=args.map_dtype,
        resume=args.resume, data_source=source, curves=curves, wait=args.wait,
        allow_config_change=args.allow_config_change,
    ).typed()  # --set values as their methods' types, resolved once for the whole run


def _curves(args: argparse.Namespace, profile) -> CurveOptions:
    from ..runconfig import CurveOptions
    from ..train import SELECTION

    curve_every = profile.curve_every if args.curve_every is None else args.curve_every
    curve_points = profile.curve_points if args.curve_points is None else args.curve_points
    if args.curve_every is not None and args.curve_points is None:
        curve_points = 0  # an explicit cadence replaces the profile's
    if args.curve_points is not None and args.curve_every is None:
        curve_every = 0
    if curve_every < 0 or curve_points < 0:
        raise CliError("--curve-every/--curve-points: expected 0 (off) or a positive number")
    if args.select_checkpoint not in SELECTION:
        raise CliError(f"--select-checkpoint {args.select_checkpoint!r}; allowed: "
                       f"{', '.join(SELECTION)}")
    if args.select_checkpoint != "val_loss" and curve_every == 0 and curve_points == 0:
        raise CliError(f"--select-checkpoint {args.select_checkpoint} needs learning curves: "
                       "pass --curve-every N")
    return CurveOptions(every_n_epochs=curve_every, points=curve_points,
                        volumes=args.curve_volumes or profile.curve_volumes)


def main(args: argparse.Namespace) -> int:
    from ..launch import options_from_args
    from ..runner import launch_rank, run_benchmark, summary_legend, summary_table

    launch_options = options_from_args(args)  # flag errors before any data is made
    cfg = run_config(args)
    if args.check:
        from ..validate import inspect_run, report

        found = inspect_run(cfg)
        print(found.summary(cfg))
        if found.problems:
            raise CliError(report(found.problems))
        print("check: OK, nothing written")
        return 0
    if args.launcher != "inprocess":  # parts as jobs (benchmark.launch, docs/cluster.md)
        from ..launch import launch

        code = launch(cfg, launch_options)
        if code != 0 or args.detach:
            return code
    else:
        run_benchmark(cfg)
    if launch_rank() != 0:
        return 0
    table = summary_table(cfg.run_dir)
    if not table.empty:
        print(table.to_string())
    print(f"\nresults: {cfg.run_dir}  (per_volume.csv, per_dataset.csv, timings.csv)")
    for line in summary_legend(table):
        print(line)
    if cfg.profile.name != "paper":
        print(f"The {cfg.profile.name} profile's numbers are not the paper's (CPU-sized "
              "networks and training); the reference board is "
              "leaderboard/synthetic-reference-v2/ (v1: leaderboard/synthetic-reference/).")
    return 0


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", required=True,
                   help="comma-separated, e.g. cddpm,pddpm; all: every registered method")
    p.add_argument("--profile", default="quick", choices=tuple(PROFILES),
                   help="paper (GPU), reference (the published CPU board), quick (default), "
                        "smoke (tests)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding Data/ in the authors' layout (default: synthetic data)")
    p.add_argument("--synthetic-size", choices=("smoke", "quick", "paper"), default=None)
    p.add_argument("--synthetic-version", choices=("1", "2"), default="2",
                   help="synthetic generator version (default 2, calibrated to real lesion "
                        "statistics; 1: the first reference board's; docs/synthetic.md)")
    p.add_argument("--sequences", default="t2,t1", help="t1, t2 or both (default t2,t1)")
    p.add_argument("--folds", default=None, help="e.g. 0,1,2 (default: the profile's)")
    p.add_argument("--fold-scheme", default="disjoint", choices=("disjoint", "reference"))
    p.add_argument("--cohorts", default=None, help="restrict the test sets, e.g. Brats21,MSLUB")
    p.add_argument("--out", type=Path, default=Path("runs"))
    p.add_argument("--run-id", default=None)
    p.add_argument("--resume", action="store_true", help="skip (method, sequence, fold) parts "
                   "already finished in --run-id (the settings must be the recorded ones)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: continue although the settings differ from the run's "
                        "config.json (the change is recorded there)")
    p.add_argument("--check", action="store_true",
                   help="only check the methods, configuration and every file the run would "
                        "read, print what it would do, and write nothing")
    p.add_argument("--wait", action="store_true",
                   help="if another process holds this run, wait for it instead of refusing")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE")
    p.add_argument("--config", type=Path, default=None, help="JSON/TOML hyperparameter file")
    p.add_argument("--epochs", default=None, metavar="N|STAGE=N,...",
                   help="override the profile's epochs: N for every training stage, or by "
                        "stage name, e.g. main=100,pretrain=20 (stages a method does not "
                        "have are ignored)")
    p.add_argument("--curve-every", type=int, default=None, metavar="N",
                   help="learning curves: validation metrics every N epochs into "
                        "<part>/curves.csv (default: the profile's; 0 = off)")
    p.add_argument("--curve-points", type=int, default=None, metavar="K",
                   help="learning curves: about K points per training stage (default: the "
                        "profile's; 0 = off)")
    p.add_argument("--curve-volumes", type=int, default=None, metavar="K",
                   help="validation volumes per set for each curve point (default: profile's)")
    p.add_argument("--select-checkpoint", default="val_loss",
                   help="checkpoint kept: val_loss (default), val_auprc_mean (unhealthy "
                        "validation splits) or val_ssim; the last two need --curve-every")
    p.add_argument("--seed", type=int, default=3141)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="auto")
    p.add_argument("--strategy", default="auto", help="e.g. ddp for several GPUs/nodes")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--precision", default=None, help="e.g. 16-mixed, bf16-mixed, 32-true")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="data pipeline (docs/data-options.md): smoothing=none|curvature_flow, "
                        "augment_space=slice|volume, augment_clamp=true|false, "
                        "augment_voxel_mm=MM, drop_last=true|false; preset=authors sets all "
                        "to the cDDPM authors' code (default: this benchmark's choices)")
    p.add_argument("--map-dtype", default="float32", choices=("float32", "float16"))
    p.add_argument("--logger", default="csv", choices=("csv", "tensorboard", "wandb"))
    p.add_argument("--no-progress", action="store_true")
    from ..launch import add_run_arguments

    add_run_arguments(p)
