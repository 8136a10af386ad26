"""Command line: ``python -m benchmark <command>`` (also installed as ``uad-bench``).

    list                              registered methods: name, family, paper, #params
    run --methods cddpm,pddpm         train, evaluate and write a run directory
                                      (--launcher local|slurm: parts as parallel jobs)
    status RUN_DIR                    where each part of a run stands (done/running/...)
    plan --profile paper --methods .. a run's parts and its estimated cost
    evaluate RUN_DIR                  re-score a finished run from its cached maps
                                      (a model bundle: score it on a data root)
    predict --model M --input SCAN    a trained model on new raw scans (maps on their grid)
    export RUN/METHOD/SEQ/foldK       a finished part as a bundle (safetensors, model card)
    leaderboard RUN_DIR ... --out D   tables, significance tests, timings, plots
    report LEADERBOARD_DIR            one self-contained HTML page of a leaderboard
    data synth|prepare|verify|download  synthetic default; raw scans -> benchmark layout
    experiment <name> ...             the paper's experiments (noise levels, conditioning, ...)
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomllib

from . import __version__
from .profiles import PROFILES

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------- list
def _cmd_list(args: argparse.Namespace) -> int:
    import logging
    import warnings

    from .registry import get_method, list_methods

    rows, random_init = [], False
    backbone_log = logging.getLogger("benchmark.backbones")
    level = backbone_log.level
    backbone_log.setLevel(logging.ERROR)  # the banner goes in one footnote, not mid-table
    try:
        for name in list_methods():
            cls = get_method(name)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    n_params = f"{cls.from_profile(args.profile).n_params():,}"
                except Exception as exc:  # noqa: BLE001 - e.g. pretrained weights that cannot be had offline
                    n_params = f"n/a ({type(exc).__name__})"
            if any("NO IMAGENET WEIGHTS" in str(w.message) for w in caught):
                n_params, random_init = n_params + " *", True
            rows.append((name, cls.family, cls.paper, n_params))
    finally:
        backbone_log.setLevel(level)
    header = ("method", "family", "paper", f"#params ({args.profile})")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    if random_init:
        print(f"* no ImageNet weights found on this machine: with --profile {args.profile} "
              "these methods run with RANDOM backbones, tagged pretrained=False "
              "(see $UAD_BENCH_WEIGHTS_DIR in the method READMEs)")
    return 0


# ---------------------------------------------------------------------------- run
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
    from .data.synth import ensure_synthetic, source_name

    size = args.synthetic_size or profile.synthetic_size
    version = args.synthetic_version
    return (ensure_synthetic(size=size, progress=not args.no_progress, version=version),
            source_name(size, version))


def _cmd_run(args: argparse.Namespace) -> int:
    from .profiles import get_profile
    from .rundir import new_run_id
    from .runner import RunConfig, launch_rank, run_benchmark, summary_legend, summary_table
    from .train import TrainerOptions

    # unknown methods, hyperparameters and cohorts are reported by benchmark.validate,
    # together with every other problem of the run
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if len(set(methods)) != len(methods):
        raise CliError(f"--methods lists a method twice: {args.methods!r}")
    try:
        profile = get_profile(args.profile)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    from .launch import options_from_args

    launch_options = options_from_args(args)  # flag errors before any data is made
    sequences = [s.strip().lower() for s in args.sequences.split(",") if s.strip()]
    bad = [s for s in sequences if s not in ("t1", "t2")]
    if bad or not sequences:
        raise CliError(f"--sequences {args.sequences!r}: allowed values are t1, t2")
    overrides = parse_overrides(args.set, args.config, methods)
    from .data.options import parse_data_options

    try:
        data_options = parse_data_options(args.data_option)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    folds = _int_list(args.folds, "--folds") if args.folds else None
    from .curves import CurveOptions
    from .train import SELECTION

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
    curves = CurveOptions(every_n_epochs=curve_every, points=curve_points,
                          volumes=args.curve_volumes or profile.curve_volumes)
    root, source = _resolve_data_root(args, profile)
    # DDP re-runs this command per device: the children must write into the same run.
    run_id = (_run_id(args.run_id, "--run-id") if args.run_id else
              _run_id(os.environ["UAD_BENCH_RUN_ID"], "$UAD_BENCH_RUN_ID")
              if os.environ.get("UAD_BENCH_RUN_ID") else new_run_id())
    os.environ["UAD_BENCH_RUN_ID"] = run_id
    run_dir = args.out / run_id
    cfg = RunConfig(
        methods=methods, profile=profile, data_root=root, run_dir=run_dir, sequences=sequences,
        folds=folds, overrides=overrides,
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
    )
    if args.check:
        from .validate import inspect_run, report

        found = inspect_run(cfg)
        print(found.summary(cfg))
        if found.problems:
            raise CliError(report(found.problems))
        print("check: OK, nothing written")
        return 0
    if args.launcher != "inprocess":  # parts as jobs (benchmark.launch, docs/cluster.md)
        from .launch import launch

        code = launch(cfg, launch_options)
        if code != 0 or args.detach:
            return code
    else:
        run_benchmark(cfg)
    if launch_rank() != 0:
        return 0
    table = summary_table(run_dir)
    if not table.empty:
        print(table.to_string())
    print(f"\nresults: {run_dir}  (per_volume.csv, per_dataset.csv, timings.csv)")
    for line in summary_legend(table):
        print(line)
    if profile.name != "paper":
        print(f"The {profile.name} profile's numbers are not the paper's (CPU-sized networks "
              "and training); the converged reference board is leaderboard/synthetic-reference/.")
    return 0


def _configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", required=True, help="comma-separated, e.g. cddpm,pddpm")
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
    from .launch import add_run_arguments

    add_run_arguments(p)


# ---------------------------------------------------------------------------- plug-in commands
def _optional(module: str, configure: str, main: str, help_text: str):
    """(configure, main) of a command implemented in another module."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise

        def unavailable(args: argparse.Namespace) -> int:
            raise CliError(f"{module} is not part of this installation")

        return (lambda p: None), unavailable, help_text
    return getattr(mod, configure), getattr(mod, main), help_text


def _experiments() -> dict[str, tuple[Callable, Handler, str]]:
    try:
        pkg = importlib.import_module("benchmark.experiments")
    except ModuleNotFoundError:
        return {}
    found = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        mod = importlib.import_module(f"benchmark.experiments.{info.name}")
        if hasattr(mod, "configure_parser") and hasattr(mod, "main"):
            doc = (mod.__doc__ or "").strip().splitlines()
            found[info.name.replace("_", "-")] = (mod.configure_parser, mod.main,
                                                  doc[0] if doc else "")
    return found


def _cmd_evaluate_configure(p: argparse.ArgumentParser) -> None:
    mod = importlib.import_module("benchmark.scoring.rescore")
    if hasattr(mod, "configure_parser"):
        mod.configure_parser(p)
    else:
        p.add_argument("run_dir", type=Path)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    mod = importlib.import_module("benchmark.scoring.rescore")
    return mod.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"uad-bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="registered methods")
    p.add_argument("--profile", default="paper", choices=tuple(PROFILES))
    p.set_defaults(handler=_cmd_list)
    p = sub.add_parser("run", help="train and evaluate methods, write a run directory")
    _configure_run(p)
    p.set_defaults(handler=_cmd_run)
    for name, module, help_text in (
            ("status", "benchmark.launch.status", "where each part of a run stands"),
            ("plan", "benchmark.launch.plan", "a run's parts and its estimated cost")):
        p = sub.add_parser(name, help=help_text)
        configure, main, _ = _optional(module, "configure_parser", "main", help_text)
        configure(p)
        p.set_defaults(handler=main)
    for name, conf, main_fn, help_text in (  # benchmark/deploy: using a trained model
            ("predict", "configure_predict_parser", "predict_main",
             "a trained model (part or bundle) on new raw scans, maps on their grid"),
            ("export", "configure_export_parser", "export_main",
             "a finished part as a bundle: safetensors weights, settings, model card")):
        p = sub.add_parser(name, help=help_text)
        configure, main, _ = _optional("benchmark.deploy.cli", conf, main_fn, help_text)
        configure(p)
        p.set_defaults(handler=main)
    p = sub.add_parser("evaluate", help="re-score a finished run from its cached maps")
    _cmd_evaluate_configure(p)
    p.set_defaults(handler=_cmd_evaluate)
    p = sub.add_parser("leaderboard", help="tables, significance tests, timings, plots")
    configure, main, _ = _optional("benchmark.leaderboard", "configure_parser", "main", "")
    configure(p)
    p.set_defaults(handler=main)
    p = sub.add_parser("report", help="one self-contained HTML page of a leaderboard")
    configure, main, _ = _optional("benchmark.report", "configure_parser", "main", "")
    configure(p)
    p.set_defaults(handler=main)
    data = sub.add_parser("data", help="synthetic default data; prepare/verify real data")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    for name, module, conf, main_fn, help_text in (
        ("synth", "benchmark.data.synth", "configure_parser", "main",
         "generate the synthetic default data set"),
        ("prepare", "benchmark.data.prepare", "configure_prepare_parser", "prepare_main",
         "raw scans -> benchmark layout"),
        ("verify", "benchmark.data.manifest", "configure_verify_parser", "verify_main",
         "check a data root (synthetic or prepared) against its manifest"),
        ("download", "benchmark.data.prepare.download", "configure_download_parser",
         "download_main", "fetch IXI/MSLUB (checked, resumable); how to get the others"),
    ):
        configure, main, _ = _optional(module, conf, main_fn, help_text)
        dp = dsub.add_parser(name, help=help_text)
        configure(dp)
        dp.set_defaults(handler=main)
    exp = sub.add_parser("experiment", help="the paper's experiments on a finished run")
    esub = exp.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name, (configure, main, help_text) in sorted(_experiments().items()):
        ep = esub.add_parser(name, help=help_text)
        configure(ep)
        ep.set_defaults(handler=main)
    _no_abbreviations(parser)
    return parser


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """argparse accepts a flag's prefix (--epoch for --epochs) by default; a typo must be an
    error instead, in every subcommand."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _no_abbreviations(sub)


def _quiet_lightning() -> None:
    """Lightning's banners (GPU available, tips) drown the results in a benchmark log."""
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*Checkpoint directory .* exists and is not empty.*",
                    ".*LeafSpec.*", ".*does not have many workers.*",
                    ".*The number of training batches .* is smaller than the logging interval.*",
                    # a machine with Slurm's srun installed, running in process
                    ".*The `srun` command is available on your system but is not used.*"):
        warnings.filterwarnings("ignore", message=pattern)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _quiet_lightning()
    from .rundir import PartClaimedError, RunLockedError
    from .runner import IncompleteRunError

    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except IncompleteRunError as exc:
        print(f"incomplete: {exc}", file=sys.stderr)
        return 3
    except (FileNotFoundError, FileExistsError, ValueError, KeyError, RunLockedError,
            PartClaimedError) as exc:
        return _user_error(exc, args.verbose)
    except OSError as exc:  # disk full, permission denied, I/O error: the system, not the input
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
              + ". A run loses no finished part (each file is written whole or not at all): "
              "fix this, then the same command with --resume continues it", file=sys.stderr)
        return 4


def _user_error(exc: Exception, verbose: bool) -> int:
    if type(exc) is KeyError:
        # a bare KeyError says only the key: a bug somewhere, not bad input. Say where.
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        message = (f"KeyError {exc} in {frame.name} ({Path(frame.filename).name}:"
                   f"{frame.lineno}); python -m benchmark -v ... prints the traceback")
    else:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    if verbose:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return 2
