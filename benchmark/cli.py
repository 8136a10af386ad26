"""Command line: ``python -m benchmark <command>`` (also installed as ``uad-bench``).

    list                              registered methods: name, family, paper, #params
    run --methods cddpm,pddpm         train, evaluate and write a run directory
    evaluate RUN_DIR                  re-score a finished run from its cached maps
    leaderboard RUN_DIR ... --out D   tables, significance tests, timings, plots
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
import tomllib
from pathlib import Path
from typing import Any, Callable

from . import __version__

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
                except Exception as exc:  # e.g. pretrained weights that cannot be had offline
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
    if config is not None:
        if not config.is_file():
            raise CliError(f"--config: file not found: {config}")
        text = config.read_text()
        try:
            data = json.loads(text) if config.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"--config {config}: {exc}") from None
        data = data.get("methods", data)
        for method, values in data.items():
            if not isinstance(values, dict):
                raise CliError(f"--config {config}: [{method}] must be a table of hyperparameters")
            out.setdefault(method, {}).update(values)
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise CliError(f"--set {item!r}: expected METHOD.KEY=VALUE, e.g. ae.latent_dim=64")
        out.setdefault(method, {})[name] = value
    unknown = sorted(set(out) - set(methods))
    if unknown:
        raise CliError(f"overrides for method(s) {unknown} that are not in --methods {methods}")
    return out


def _int_list(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise CliError(f"{flag} {text!r}: expected comma-separated integers") from None


def _resolve_data_root(args: argparse.Namespace, profile) -> tuple[Path, str]:
    if args.data_root is not None:
        if not args.data_root.exists():
            raise CliError(f"--data-root: {args.data_root} does not exist")
        return args.data_root, "user"
    from .data.synth import ensure_synthetic

    size = args.synthetic_size or profile.synthetic_size
    return ensure_synthetic(size=size, progress=not args.no_progress), f"synthetic-{size}"


def _cmd_run(args: argparse.Namespace) -> int:
    from .profiles import get_profile
    from .registry import parse_method_list
    from .rundir import new_run_id
    from .runner import RunConfig, launch_rank, run_benchmark, summary_table
    from .train import TrainerOptions

    try:
        methods = parse_method_list(args.methods)
        profile = get_profile(args.profile)
    except (KeyError, ValueError) as exc:
        raise CliError(str(exc)) from None
    sequences = [s.strip().lower() for s in args.sequences.split(",") if s.strip()]
    bad = [s for s in sequences if s not in ("t1", "t2")]
    if bad or not sequences:
        raise CliError(f"--sequences {args.sequences!r}: allowed values are t1, t2")
    overrides = parse_overrides(args.set, args.config, methods)
    for name in methods:  # fail before any training if a key is unknown
        from .registry import get_method

        try:
            get_method(name).resolve_hparams(profile.name, overrides.get(name))
        except (KeyError, ValueError) as exc:
            raise CliError(str(exc).strip('"')) from None
    folds = _int_list(args.folds, "--folds") if args.folds else None
    root, source = _resolve_data_root(args, profile)
    # DDP re-runs this command per device: the children must write into the same run.
    run_id = args.run_id or os.environ.get("UAD_BENCH_RUN_ID") or new_run_id()
    os.environ["UAD_BENCH_RUN_ID"] = run_id
    run_dir = args.out / run_id
    cfg = RunConfig(
        methods=methods, profile=profile, data_root=root, run_dir=run_dir, sequences=sequences,
        folds=folds, overrides=overrides,
        trainer=TrainerOptions(accelerator=args.accelerator, devices=args.devices,
                               strategy=args.strategy, num_nodes=args.num_nodes,
                               precision=args.precision, epochs=args.epochs,
                               progress=not args.no_progress, logger=args.logger, seed=args.seed),
        fold_scheme=args.fold_scheme, augment=not args.no_augment, num_workers=args.num_workers,
        cohorts=args.cohorts.split(",") if args.cohorts else None, map_dtype=args.map_dtype,
        resume=args.resume, data_source=source,
    )
    run_benchmark(cfg)
    if launch_rank() != 0:
        return 0
    table = summary_table(run_dir)
    if not table.empty:
        print(table.to_string())
    print(f"\nresults: {run_dir}  (per_volume.csv, per_dataset.csv, timings.csv)")
    return 0


def _configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", required=True, help="comma-separated, e.g. cddpm,pddpm")
    p.add_argument("--profile", default="quick", choices=("paper", "quick", "smoke"))
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding Data/ in the authors' layout (default: synthetic data)")
    p.add_argument("--synthetic-size", choices=("smoke", "quick", "paper"), default=None)
    p.add_argument("--sequences", default="t2,t1", help="t1, t2 or both (default t2,t1)")
    p.add_argument("--folds", default=None, help="e.g. 0,1,2 (default: the profile's)")
    p.add_argument("--fold-scheme", default="disjoint", choices=("disjoint", "reference"))
    p.add_argument("--cohorts", default=None, help="restrict the test sets, e.g. Brats21,MSLUB")
    p.add_argument("--out", type=Path, default=Path("runs"))
    p.add_argument("--run-id", default=None)
    p.add_argument("--resume", action="store_true", help="skip (method, sequence, fold) parts "
                   "already finished in --run-id")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE")
    p.add_argument("--config", type=Path, default=None, help="JSON/TOML hyperparameter file")
    p.add_argument("--epochs", type=int, default=None, help="override every method's epochs")
    p.add_argument("--seed", type=int, default=3141)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="auto")
    p.add_argument("--strategy", default="auto", help="e.g. ddp for several GPUs/nodes")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--precision", default=None, help="e.g. 16-mixed, bf16-mixed, 32-true")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--map-dtype", default="float32", choices=("float32", "float16"))
    p.add_argument("--logger", default="csv", choices=("csv", "tensorboard", "wandb"))
    p.add_argument("--no-progress", action="store_true")


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
    mod = importlib.import_module("benchmark.scoring")
    if hasattr(mod, "configure_parser"):
        mod.configure_parser(p)
    else:
        p.add_argument("run_dir", type=Path)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    mod = importlib.import_module("benchmark.scoring")
    return mod.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"uad-bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="registered methods")
    p.add_argument("--profile", default="paper", choices=("paper", "quick", "smoke"))
    p.set_defaults(handler=_cmd_list)
    p = sub.add_parser("run", help="train and evaluate methods, write a run directory")
    _configure_run(p)
    p.set_defaults(handler=_cmd_run)
    p = sub.add_parser("evaluate", help="re-score a finished run from its cached maps")
    _cmd_evaluate_configure(p)
    p.set_defaults(handler=_cmd_evaluate)
    p = sub.add_parser("leaderboard", help="tables, significance tests, timings, plots")
    configure, main, _ = _optional("benchmark.leaderboard", "configure_parser", "main", "")
    configure(p)
    p.set_defaults(handler=main)
    data = sub.add_parser("data", help="synthetic default data; prepare/verify real data")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    for name, module, conf, main_fn, help_text in (
        ("synth", "benchmark.data.synth", "configure_parser", "main",
         "generate the synthetic default data set"),
        ("prepare", "benchmark.data.prepare", "configure_prepare_parser", "prepare_main",
         "raw scans -> benchmark layout"),
        ("verify", "benchmark.data.prepare", "configure_verify_parser", "verify_main",
         "check a prepared directory against its manifest"),
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
    return parser


def _quiet_lightning() -> None:
    """Lightning's banners (GPU available, tips) drown the results in a benchmark log."""
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*Checkpoint directory .* exists and is not empty.*",
                    ".*LeafSpec.*", ".*does not have many workers.*",
                    ".*The number of training batches .* is smaller than the logging interval.*"):
        warnings.filterwarnings("ignore", message=pattern)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _quiet_lightning()
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
