"""Data-pipeline options where the paper is silent: this benchmark's choices by default,
the cDDPM authors' code as options and as one named preset.

Running the authors' code side by side (docs/data-options.md) showed five places where
their data path differs from ours and the paper says nothing either way:

=====================  =====================  ==========================================
key                    default (ours)         authors' code
=====================  =====================  ==========================================
``smoothing``          ``none``               ``curvature_flow``: SimpleITK CurvatureFlow
                                              (timeStep 0.125, 3 iterations) on every
                                              image read, before resampling
``augment_space``      ``slice``              ``volume``: augment the whole 3-D volume,
                                              then take the slice
``augment_clamp``      ``true``               ``false``: no clamp to [0, 1], no re-masking
                                              after augmentation
``augment_voxel_mm``   ``1.0``                ``2.0``: the voxel size the augmentation
                                              sees (RandomBlur's std is in mm)
``drop_last``          ``false``              ``true``: the last incomplete training batch
                                              of an epoch is dropped
=====================  =====================  ==========================================

``--data-option preset=authors`` sets all five to the authors' values; single keys after
it override the preset (``--data-option preset=authors --data-option drop_last=false``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

SMOOTHING = ("none", "curvature_flow")
AUGMENT_SPACES = ("slice", "volume")
# SimpleITK CurvatureFlow as the authors' reader calls it (reference-implementation.md)
CURVATURE_FLOW = {"timeStep": 0.125, "numberOfIterations": 3}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class DataOptions:
    """How images are read and training slices augmented; see the module docstring."""

    smoothing: str = "none"
    augment_space: str = "slice"
    augment_clamp: bool = True
    augment_voxel_mm: float = 1.0
    drop_last: bool = False

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHING:
            raise ValueError(f"data option smoothing={self.smoothing!r}; allowed: "
                             f"{', '.join(SMOOTHING)}")
        if self.augment_space not in AUGMENT_SPACES:
            raise ValueError(f"data option augment_space={self.augment_space!r}; allowed: "
                             f"{', '.join(AUGMENT_SPACES)}")
        for key in ("augment_clamp", "drop_last"):
            if not isinstance(getattr(self, key), bool):  # ValueError, as for the others
                raise ValueError(f"data option {key}={getattr(self, key)!r}; "  # noqa: TRY004
                                 "allowed: true, false")
        mm = self.augment_voxel_mm
        if isinstance(mm, bool) or not isinstance(mm, (int, float)) or not mm > 0:
            raise ValueError(f"data option augment_voxel_mm={mm!r}: expected a voxel size "
                             "in mm > 0 (e.g. 2.0)")
        object.__setattr__(self, "augment_voxel_mm", float(mm))

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> DataOptions:
        """From a run's config.json (``data_options``); missing keys take the defaults."""
        values = dict(values or {})
        unknown = sorted(set(values) - set(KEYS))
        if unknown:
            raise ValueError(f"unknown data option(s) {unknown}; known: {', '.join(KEYS)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str | None:
        """None for the defaults; else the preset's name, or ``key:value`` of each
        non-default key (the result tag that keeps such runs apart on a leaderboard)."""
        if self == DataOptions():
            return None
        for name, preset in PRESETS.items():
            if self == preset:
                return name
        default = DataOptions()
        return ",".join(f"{f.name}:{_show(getattr(self, f.name))}" for f in fields(self)
                        if getattr(self, f.name) != getattr(default, f.name))


KEYS = tuple(f.name for f in fields(DataOptions))
PRESETS: dict[str, DataOptions] = {
    "default": DataOptions(),
    "authors": DataOptions(smoothing="curvature_flow", augment_space="volume",
                           augment_clamp=False, augment_voxel_mm=2.0, drop_last=True),
}


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" \
        if isinstance(value, float) else str(value)


def _value(key: str, text: str) -> Any:
    kind = {f.name: f.type for f in fields(DataOptions)}[key]
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        raise ValueError(f"--data-option {key}={text!r}; allowed: true, false")
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"--data-option {key}={text!r}: expected a number") from None
    return text.strip()


def parse_data_options(items: list[str] | None) -> DataOptions:
    """``--data-option KEY=VALUE`` items, applied in order, into DataOptions.

    ``preset=NAME`` replaces every key by the preset's value; an unknown key, preset or
    value is a ValueError naming the allowed ones.
    """
    options = DataOptions()
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--data-option {item!r}: expected KEY=VALUE, e.g. "
                             "smoothing=curvature_flow or preset=authors")
        if key == "preset":
            if text.strip() not in PRESETS:
                raise ValueError(f"--data-option preset={text!r}; allowed: "
                                 f"{', '.join(PRESETS)}")
            options = PRESETS[text.strip()]
            continue
        if key not in KEYS:
            raise ValueError(f"--data-option {key!r}: unknown key; known: preset, "
                             f"{', '.join(KEYS)}")
        options = replace(options, **{key: _value(key, text)})
    return options


__all__ = [
    "AUGMENT_SPACES",
    "CURVATURE_FLOW",
    "KEYS",
    "PRESETS",
    "SMOOTHING",
    "DataOptions",
    "parse_data_options",
]
