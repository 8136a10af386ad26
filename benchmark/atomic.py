"""Files written whole or not at all, and JSON records read with an error naming the file.

Every file of a run directory, a cache or a bundle is written through :func:`atomic_path`:
a unique temporary name beside the target, then a rename, so a reader sees the old file
or the new one, never half of one, and a killed writer leaves only a hidden
``.<name>.<random>.tmp`` behind.
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is not imported here: commands that only read JSON stay light
    import pandas as pd


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, unique to this writer; renamed onto ``path`` when
    the block succeeds, removed when it raises. Readers see the old file or the new one,
    never half of one; a killed writer leaves a hidden ``.<name>.<random>.tmp``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a unique name the writer creates itself (the usual permissions, unlike mkstemp's 0600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def is_leftover(path: Path, name: str) -> bool:
    """True for the temporary file a killed writer of ``name`` left beside it."""
    return path.name.startswith(f".{name}.") and path.name.endswith(".tmp")


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a crash never leaves a half-written file behind."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def read_json(path: Path) -> dict:
    """A JSON record (config.json, environment.json, done.json, ...): a JSON object, or a
    ValueError naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):  # bad input, reported as such (a ValueError: exit 2)
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")  # noqa: TRY004
    return data
