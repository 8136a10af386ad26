"""Result tags: the columns that name a variant of a method on every result row.

A method's ``result_tags()`` (e.g. ``{"pretrained": False}``) are recorded in its part's
``done.json`` and written on each result row twice: all of them as one JSON object in the
``tags`` column, and one column per tag for filtering. Re-scoring and the leaderboard read
them back from there, so no list of tag names exists anywhere.
"""
from __future__ import annotations

import json
from typing import Any

TAGS_COLUMN = "tags"  # per-row JSON object of the part's result tags


def plain(value: Any) -> Any:
    """A tag value as a plain JSON value (numpy/torch scalars unwrapped; others as str)."""
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    return value if isinstance(value, (bool, int, float, str)) or value is None else str(value)


def encode_tags(tags: dict[str, Any]) -> str:
    """The ``tags`` column: a JSON object, keys in the method's order."""
    return json.dumps({k: plain(v) for k, v in tags.items()})


def decode_tags(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text.strip():
        return {}
    return json.loads(text)


def tag_columns(tags: dict[str, Any]) -> dict[str, Any]:
    """The columns a part's result rows carry for its tags: ``tags`` (all of them, JSON)
    and one column per tag (for filtering)."""
    return {TAGS_COLUMN: encode_tags(tags), **{k: plain(v) for k, v in tags.items()}}
