"""Command line: ``python -m benchmark <command>`` (also installed as ``uad-bench``).

    list                              registered methods: name, family, paper (--params: #params)
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
# The parser answers at once: each command is a row of COMMANDS naming the module that
# holds its arguments and its handler, and only the command being run is imported (a
# command module imports nothing heavy at its top: torch, Lightning, pandas and the
# methods are imported inside the handler). tests/test_cli_imports.py keeps it so.
from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import logging
import pkgutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


@dataclass(frozen=True)
class Command:
    """A sub-command: its help line and where its arguments and handler live."""

    name: str
    help: str
    module: str
    configure: str = "configure_parser"
    main: str = "main"


COMMANDS = (
    Command("list", "registered methods", "benchmark.cli.methods"),
    Command("run", "train and evaluate methods, write a run directory", "benchmark.cli.run"),
    Command("status", "where each part of a run stands", "benchmark.launch.status"),
    Command("plan", "a run's parts and its estimated cost", "benchmark.launch.plan"),
    Command("predict", "a trained model (part or bundle) on new raw scans, maps on their grid",
            "benchmark.deploy.cli", "configure_predict_parser", "predict_main"),
    Command("export", "a finished part as a bundle: safetensors weights, settings, model card",
            "benchmark.deploy.cli", "configure_export_parser", "export_main"),
    Command("evaluate", "re-score a finished run from its cached maps",
            "benchmark.scoring.rescore"),
    Command("leaderboard", "tables, significance tests, timings, plots",
            "benchmark.leaderboard"),
    Command("report", "one self-contained HTML page of a leaderboard", "benchmark.report"),
)
DATA_COMMANDS = (
    Command("synth", "generate the synthetic default data set", "benchmark.data.synth"),
    Command("prepare", "raw scans -> benchmark layout", "benchmark.data.prepare.cli",
            "configure_prepare_parser", "prepare_main"),
    Command("verify", "check a data root (synthetic or prepared) against its manifest",
            "benchmark.data.manifest", "configure_verify_parser", "verify_main"),
    Command("download", "fetch IXI/MSLUB (checked, resumable); how to get the others",
            "benchmark.data.prepare.download", "configure_download_parser", "download_main"),
)
GROUPS = {"data": ("synthetic default data; prepare/verify real data", "data_command"),
          "experiment": ("the paper's experiments on a finished run", "experiment")}
EXPERIMENTS = "benchmark.experiments"


def experiment_commands() -> tuple[Command, ...]:
    """Every module of benchmark/experiments/ with ``configure_parser`` and ``main``, read
    from its source (a help line from its docstring) without importing it."""
    try:
        spec = importlib.util.find_spec(EXPERIMENTS)
    except ModuleNotFoundError:
        return ()
    if spec is None or not spec.submodule_search_locations:
        return ()
    found = []
    for info in pkgutil.iter_modules(spec.submodule_search_locations):
        path = Path(info.module_finder.path) / f"{info.name}.py"
        if info.ispkg or not path.is_file():
            continue
        tree = ast.parse(path.read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if {"configure_parser", "main"} <= functions:
            doc = (ast.get_docstring(tree) or "").strip().splitlines()
            found.append(Command(info.name.replace("_", "-"), doc[0] if doc else "",
                                 f"{EXPERIMENTS}.{info.name}"))
    return tuple(sorted(found, key=lambda c: c.name))


def _load(command: Command) -> tuple[Callable[[argparse.ArgumentParser], object], Handler]:
    """(configure, main) of a command: its module is imported here, when it is chosen."""
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not command.module.startswith(exc.name):
            raise

        def unavailable(args: argparse.Namespace) -> int:
            raise CliError(f"{command.module} is not part of this installation")

        return (lambda p: None), unavailable
    return getattr(module, command.configure), getattr(module, command.main)


def _chosen(argv: list[str], names: set[str]) -> tuple[str | None, int]:
    """The first word of ``argv`` that is not an option, if it names a command, and where
    it stands (no option before a command takes a value)."""
    for i, token in enumerate(argv):
        if token == "--":
            break
        if not token.startswith("-"):
            return (token if token in names else None), i
    return None, len(argv)


def _add(sub: argparse._SubParsersAction, command: Command, configure: bool) -> None:
    p = sub.add_parser(command.name, help=command.help, description=command.help)
    if configure:
        configure_args, main = _load(command)
        configure_args(p)
        p.set_defaults(handler=main)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: every command is listed, only the chosen one (the first
    word of ``argv``; every one when ``argv`` is None) gets its arguments."""
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"uad-bench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    every = argv is None
    rest = list(argv or [])
    chosen, at = _chosen(rest, {c.name for c in COMMANDS} | set(GROUPS))
    for command in COMMANDS:
        _add(sub, command, every or command.name == chosen)
    for group, (help_text, dest) in GROUPS.items():
        gp = sub.add_parser(group, help=help_text, description=help_text)
        gsub = gp.add_subparsers(dest=dest, required=True, metavar=dest.upper())
        if not (every or group == chosen):
            continue
        commands = DATA_COMMANDS if group == "data" else experiment_commands()
        inner, _ = _chosen(rest[at + 1:], {c.name for c in commands})
        for command in commands:
            _add(gsub, command, every or command.name == inner)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        _quiet_lightning()
    from ..locks import IncompleteRunError, PartClaimedError, RunLockedError

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


__all__ = ["COMMANDS", "CliError", "Command", "build_parser", "main"]
