"""Checksums of a data root: what was written, checked when it is read and on demand.

Two kinds of data root carry a manifest, in different places and formats:

    synthetic  <root>/manifest.json       {"version", "parameters",
                                           "files": {"Data/Train/...": sha256}}
    prepared   <root>/Data/manifest.json  {"format": 1, "files": {"Train/...":
                                           {"sha256": ..., "bytes": ...}}}

:func:`find` reads either. The loader calls :func:`check_file` before it reads a volume:
a file listed in its data root's manifest whose sha256 differs is an error naming the
file, the first time the process reads it (a flipped byte in the cached synthetic data
cannot slip into a run). A full hash costs about 0.3 ms per 96x96x50 volume file (the
paper-size synthetic set, 1.1 GB, in 2.3 s; docs/failures.md), far below reading it, so
nothing is sampled. ``python -m benchmark data verify ROOT`` checks every file at once.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from .layout import DataLayoutError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Manifest:
    """path: the manifest file; data: the ``Data`` folder it covers; files: {absolute path:
    sha256}; sizes: {absolute path: bytes} where the manifest records them."""

    path: Path
    kind: str  # "synthetic" or "prepared"
    data: Path
    files: dict[Path, str]
    sizes: dict[Path, int]

    def advice(self) -> str:
        if self.kind == "synthetic":
            return ("the cached synthetic data changed after it was generated: regenerate it "
                    "with `python -m benchmark data synth --force` (same seed, same bytes)")
        return ("the prepared data changed after `data prepare` wrote it: restore the file "
                "or prepare the subject again (`data prepare ... --force`)")


def find(root: Path) -> Manifest | None:
    """The manifest of a data root (the folder holding ``Data/``, or ``Data/`` itself)."""
    root = Path(root).expanduser().resolve()
    data = root / "Data" if (root / "Data").is_dir() else root
    return _load(data)


def _load(data: Path) -> Manifest | None:
    """The manifest covering ``data`` (re-read when the file changes)."""
    for path, kind in ((data / MANIFEST, "prepared"), (data.parent / MANIFEST, "synthetic")):
        try:
            stat = path.stat()
        except OSError:
            continue
        return _parse(path, kind, data, stat.st_mtime_ns, stat.st_size)
    return None


@functools.lru_cache(maxsize=16)
def _parse(path: Path, kind: str, data: Path, mtime_ns: int, size: int) -> Manifest:
    entries = _read(path).get("files", {})
    base = data if kind == "prepared" else data.parent
    files = {base / rel: _sha(e) for rel, e in entries.items()}
    sizes = {base / rel: int(e["bytes"]) for rel, e in entries.items()
             if isinstance(e, dict) and "bytes" in e}
    return Manifest(path, kind, data, files, sizes)


def _read(path: Path) -> dict:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataLayoutError(f"cannot read manifest {path}: {err}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("files", {}), dict):
        raise DataLayoutError(f"{path}: not a data manifest (no 'files' object)")
    return payload


def _sha(entry: object) -> str:
    return entry["sha256"] if isinstance(entry, dict) else str(entry)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# ---------------------------------------------------------------------------- at read time
_verified: set[tuple[str, int, int]] = set()
_verified_lock = threading.Lock()


def _data_dir_of(path: Path) -> Path | None:
    """The ``Data`` folder above ``path`` (the nearest ancestor with a ``splits`` folder)."""
    return _data_dir_of_folder(path.parent)


@functools.lru_cache(maxsize=4096)
def _data_dir_of_folder(folder: Path) -> Path | None:
    for candidate in (folder, *folder.parents):
        if (candidate / "splits").is_dir():
            return candidate
    return None


def check_file(path: Path) -> None:
    """Compare ``path`` with its data root's manifest (once per process and file version);
    a changed file raises DataLayoutError naming it. Files outside any manifest pass."""
    path = Path(path).resolve()
    data = _data_dir_of(path)
    manifest = _load(data) if data is not None else None
    if manifest is None or path not in manifest.files:
        return
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _verified_lock:
        if key in _verified:
            return
    size = manifest.sizes.get(path)
    if size is not None and size != stat.st_size:
        raise DataLayoutError(f"{path}: {stat.st_size} bytes, {manifest.path} records {size}: "
                              + manifest.advice())
    if sha256_file(path) != manifest.files[path]:
        raise DataLayoutError(f"{path}: content does not match its sha256 in {manifest.path}: "
                              + manifest.advice())
    with _verified_lock:
        _verified.add(key)


# ---------------------------------------------------------------------------- data verify
def verify(root: Path) -> tuple[Manifest, dict[str, list[str]]]:
    """Every file of the manifest (missing, changed), files it does not list (extra) and
    split-CSV paths that do not exist (broken). Raises FileNotFoundError without one."""
    manifest = find(root)
    if manifest is None:
        raise FileNotFoundError(f"no manifest under {root}: expected {Path(root) / MANIFEST} "
                                f"(synthetic data) or {Path(root) / 'Data' / MANIFEST} "
                                "(prepared data)")
    base = manifest.data.parent if manifest.kind == "synthetic" else manifest.data
    problems: dict[str, list[str]] = {"missing": [], "changed": [], "extra": [], "broken": []}
    for path, digest in sorted(manifest.files.items()):
        rel = path.relative_to(base).as_posix()
        if not path.is_file():
            problems["missing"].append(rel)
        elif sha256_file(path) != digest:
            problems["changed"].append(rel)
    for path in sorted(manifest.data.rglob("*")):
        rel_parts = path.relative_to(manifest.data).parts
        if (path.is_file() and path != manifest.path and path not in manifest.files
                and not any(p.startswith(".") for p in rel_parts)
                and not path.name.endswith(".part")):
            problems["extra"].append(path.relative_to(base).as_posix())
    import pandas as pd  # here: `data verify --help` needs no pandas

    for csv in sorted((manifest.data / "splits").glob("*.csv")):
        table = pd.read_csv(csv, index_col=0)
        for col in ("img_path", "mask_path", "seg_path"):
            for rel in table.get(col, pd.Series(dtype=str)).dropna():
                if rel and not (manifest.data / str(rel).lstrip("/")).is_file():
                    problems["broken"].append(f"{csv.name}: {rel}")
    return manifest, problems


def configure_verify_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m benchmark data verify``."""
    parser.add_argument("dir", type=Path, help="a data root: synthetic (holds manifest.json "
                        "and Data/) or prepared (OUT or OUT/Data)")


def verify_main(args: argparse.Namespace) -> int:
    """0 when every file matches the manifest and every split path exists, 1 when not,
    2 without a manifest."""
    try:
        manifest, problems = verify(args.dir)
    except (FileNotFoundError, DataLayoutError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    bad = {k: v for k, v in problems.items() if v and k != "extra"}
    for kind, items in problems.items():
        for item in items[:20]:
            print(f"{kind}: {item}")
        if len(items) > 20:
            print(f"{kind}: ... and {len(items) - 20} more")
    n = len(manifest.files)
    print(f"verify ({manifest.kind} data, {n} files, {manifest.path}): "
          + ("OK" if not bad else f"FAILED ({', '.join(bad)})"))
    return 1 if bad else 0


def clear_cache() -> None:
    """Forget manifests and verified files (tests that rewrite a data root in place)."""
    _parse.cache_clear()
    _data_dir_of_folder.cache_clear()
    with _verified_lock:
        _verified.clear()


__all__ = ["MANIFEST", "Manifest", "check_file", "clear_cache", "configure_verify_parser",
           "find", "sha256_file", "verify", "verify_main"]
