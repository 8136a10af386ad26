"""One self-contained HTML page of a leaderboard (issue 18).

    python -m benchmark report LEADERBOARD_DIR [--runs RUN_DIR ...] [--out FILE]
        [--browser-volumes 1] [--browser-fold 0] [--slice-step 2] [--screenshot PNG]

Reads what `python -m benchmark leaderboard` wrote (leaderboard.csv, significance.csv,
stratified*.csv, timings.csv, inputs.json, plots/) and writes one HTML file that opens
from disk with no server and no network: the script, the styles, the data and every
image are inlined (a Content-Security-Policy forbids the page any request). Tables 1 and 2
are rebuilt with the leaderboard's own code (same cells, bold and `*` as the Markdown
tables). The volume browser needs the runs' cached maps and data root; without them the
page says why it has none. Python API: `build_report(leaderboard_dir, out, runs)`.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..rundir import RunDir

if TYPE_CHECKING:  # pandas and the volume browser load when a report is made
    import pandas as pd

    from .volumes import BrowserOptions

ASSETS = Path(__file__).parent / "assets"
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")
REQUIRED = ("leaderboard.csv", "inputs.json")


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("leaderboard_dir", type=Path, metavar="LEADERBOARD_DIR",
                        help="output folder of `python -m benchmark leaderboard`")
    parser.add_argument("--runs", nargs="*", type=Path, default=None, metavar="RUN_DIR",
                        help="run directories whose cached maps feed the volume browser "
                             "(default: those of inputs.json that exist here)")
    parser.add_argument("--out", type=Path, default=None,
                        help="HTML file to write (default: LEADERBOARD_DIR/report.html)")
    parser.add_argument("--browser-volumes", type=int, default=1,
                        help="test volumes per data set in the browser, spread over the "
                             "lesion sizes (0: no browser)")
    parser.add_argument("--browser-fold", type=int, default=0, help="fold whose maps to show")
    parser.add_argument("--slice-step", type=int, default=2,
                        help="every k-th axial slice inside the brain (smaller page)")
    parser.add_argument("--screenshot", type=Path, default=None, metavar="PNG",
                        help="also save a picture of the page (headless Chromium via "
                             "playwright; both must be installed)")
    return parser


def _browser_options(**values) -> BrowserOptions:
    from .volumes import BrowserOptions

    return BrowserOptions(**values)


def main(args: argparse.Namespace) -> int:
    try:
        out = build_report(args.leaderboard_dir, args.out, args.runs,
                           _browser_options(volumes=args.browser_volumes, fold=args.browser_fold,
                                          slice_step=args.slice_step))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"report written to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.screenshot is not None:
        from .screenshot import screenshot

        try:
            print(f"screenshot: {screenshot(out, args.screenshot)}")
        except RuntimeError as err:
            print(f"error: no screenshot: {err}", file=sys.stderr)
            return 2
    return 0


@dataclass
class Board:
    """What the leaderboard folder holds (empty frames for files it lacks)."""

    root: Path
    board: pd.DataFrame
    significance: pd.DataFrame
    timings: pd.DataFrame
    strata: pd.DataFrame
    strata_significance: pd.DataFrame
    inputs: dict
    warnings: list[str]
    plots: list[Path]
    configs: dict = field(default_factory=dict)


def _csv(path: Path, strings=("sequence", "threshold_source", "flags", "better",
                              "hardware")) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        return pd.DataFrame()
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    for col in strings:
        if col in df.columns:
            df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    return df


def load_board(root: str | Path) -> Board:
    """Read a leaderboard folder; a missing leaderboard.csv or inputs.json is an error."""
    root = Path(root)
    missing = [n for n in REQUIRED if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: not a leaderboard folder (missing {missing}); "
                                "make one with `python -m benchmark leaderboard`")
    try:
        inputs = json.loads((root / "inputs.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{root / 'inputs.json'}: not valid JSON ({err})") from err
    warnings = (root / "warnings.txt").read_text().splitlines() \
        if (root / "warnings.txt").is_file() else []
    configs = dict(inputs.get("configs") or {})
    records = root / "run-records"  # published boards keep their runs' records
    for run in map(RunDir, sorted(records.iterdir()) if records.is_dir() else []):
        if run.exists():
            configs.setdefault(str(run.path.relative_to(root)), run.run_config().to_json())
    return Board(root, _csv(root / "leaderboard.csv"), _csv(root / "significance.csv"),
                 _csv(root / "timings.csv"), _csv(root / "stratified.csv"),
                 _csv(root / "stratified_significance.csv"), inputs,
                 [w for w in warnings if w.strip()], sorted((root / "plots").glob("*.png")),
                 configs)


def default_runs(board: Board) -> list[Path]:
    """The run directories of inputs.json that exist here (as given, or beside the board)."""
    found = []
    for run in board.inputs.get("run_dirs", []):
        for candidate in (Path(run), board.root / run):
            if candidate.is_dir():
                found.append(candidate)
                break
    return found


def build_report(leaderboard_dir: str | Path, out: str | Path | None = None,
                 runs: list[str | Path] | None = None,
                 browser: BrowserOptions | None = None) -> Path:
    """Write the report of a leaderboard folder; returns the HTML file's path."""
    from .page import render_page

    board = load_board(leaderboard_dir)
    run_dirs = [Path(r) for r in runs] if runs is not None else default_runs(board)
    missing = [str(r) for r in run_dirs if not r.is_dir()]
    if missing:
        raise FileNotFoundError(f"--runs: not a directory: {missing}")
    from .volumes import BrowserOptions, browser_volumes

    volumes, notes = browser_volumes(run_dirs, browser or BrowserOptions())
    if runs is None and not run_dirs:
        notes = [(f"the run directories of this board ({', '.join(board.inputs.get('run_dirs', []))}"
                 ") are not on this machine, so their cached maps cannot be shown; pass "
                 "--runs to point at them")]
    html = render_page(board, volumes, notes, run_dirs)
    out = Path(out) if out is not None else board.root / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def inline_json(data) -> str:
    """JSON safe inside <script>: no '</' can close the element early."""
    return (json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))
