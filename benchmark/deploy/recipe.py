"""How a model's training data was prepared, so that a new raw scan can be prepared the same way.

Two kinds of training data carry a preparation a raw scan can follow:

    prepare    a data root written by ``benchmark data prepare``: each subject's record
               (``Data/.prepare/IXI/<sid>.json``) holds the settings it was prepared with;
               a new scan goes through the same steps onto prepare's own grid (96x96x50,
               2 mm, template space, centred on the scan's brain).
    synthetic  the synthetic default (``benchmark data synth``): volumes rendered directly
               in the space of the MNI ICBM152 2009a template (the one ``data prepare``
               registers to by default) on one fixed 2 mm grid. A new scan goes through
               ``data prepare``'s steps with its default settings, then onto that grid
               (one more B-spline interpolation at 2 mm; the axes are RAS as in the
               synthetic files, not prepare's LPS).

Any other data root (e.g. the authors' preprocessed download) does not record how it was
made; :class:`UnknownPreparationError` says so. The recipe travels in a model bundle, so
a bundle needs no data root to prepare a scan.
"""
from __future__ import annotations

import collections
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..data.layout import HEALTHY_COHORT, data_dir

if TYPE_CHECKING:
    from ..runconfig import RunConfig

Kind = Literal["prepare", "synthetic"]
KINDS: tuple[str, ...] = ("prepare", "synthetic")
PREPARE_GENERATOR = "benchmark.data.prepare"
SYNTHETIC_NOTE = ("the synthetic default was rendered in MNI152 2009a space; a raw scan goes "
                  "through `data prepare` with its default settings (nilearn MNI152 2009a "
                  "template), then onto the synthetic grid")


class UnknownPreparationError(ValueError):
    """Training data whose preparation is not recorded: a raw scan cannot follow it."""


@dataclass(frozen=True)
class Grid:
    """A fixed output grid: shape (H, W, D) and its voxel -> RAS (mm) affine."""

    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]

    @classmethod
    def of(cls, shape, affine: np.ndarray) -> Grid:
        return cls(tuple(int(s) for s in shape),
                   tuple(tuple(float(v) for v in row) for row in np.asarray(affine)))

    def matrix(self) -> np.ndarray:
        return np.array(self.affine, dtype=float)


@dataclass(frozen=True)
class Preparation:
    """The preparation a model's inputs need (see the module doc).

    settings: :class:`~benchmark.data.prepare.subject.PrepareSettings` as plain values
        (``to_record``), the sequence being the model's own.
    grid: the fixed grid of the training data (synthetic), or None: prepare's own grid.
    training_skull_strip: {method: number of training subjects} as prepare recorded it.
    notes: what had to be assumed (e.g. settings an older ``data prepare`` did not record).
    smoothing: how the loader smoothed images on reading (the run's data option
        ``smoothing``: "none", or "curvature_flow" as the authors' reader does).
    """

    kind: Kind
    sequence: str
    settings: dict[str, Any]
    grid: Grid | None = None
    training_skull_strip: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    smoothing: str = "none"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"preparation kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        # plain JSON values (lists, not tuples): equal after a trip through bundle.json
        object.__setattr__(self, "settings", json.loads(json.dumps(self.settings)))

    def to_json(self) -> dict:
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, data: dict) -> Preparation:
        grid = data.get("grid")
        return cls(kind=data["kind"], sequence=data["sequence"], settings=dict(data["settings"]),
                   grid=Grid.of(grid["shape"], np.array(grid["affine"])) if grid else None,
                   training_skull_strip=dict(data.get("training_skull_strip") or {}),
                   notes=tuple(data.get("notes") or ()),
                   smoothing=data.get("smoothing", "none"))

    def prepare_settings(self, skull_strip: str | None = None, fast: bool = False):
        """PrepareSettings for one new scan of the model's sequence. ``skull_strip``
        overrides the recorded choice; ``fast``: coarse registration and short N4."""
        from ..data.prepare.subject import PrepareSettings

        values = {**self.settings, "sequences": [self.sequence]}
        if skull_strip is not None:
            values["skull_strip"] = skull_strip
        settings = PrepareSettings.from_record(values)
        if fast:
            fast_settings = PrepareSettings.fast(settings.sequences)
            settings = PrepareSettings.from_record({
                **settings.to_record(), "registration": asdict(fast_settings.registration),
                "n4_iterations": list(fast_settings.n4_iterations),
                "n4_control_points": fast_settings.n4_control_points})
        return settings



def manifest_file(root: Path) -> Path | None:
    """The data root's manifest: ``<root>/manifest.json`` (synthetic) or
    ``<root>/Data/manifest.json`` (prepared)."""
    ddir = data_dir(root)
    for path in (ddir / "manifest.json", ddir.parent / "manifest.json"):
        if path.is_file():
            return path
    return None


def data_root_kind(root: Path) -> tuple[Kind | None, dict]:
    """("synthetic" | "prepare" | None, the manifest's content) of a data root."""
    from ..data.synth import GENERATOR as SYNTH_GENERATOR

    manifest = manifest_file(root)
    info = json.loads(manifest.read_text()) if manifest is not None else {}
    kind = {SYNTH_GENERATOR: "synthetic", PREPARE_GENERATOR: "prepare"}.get(info.get("generator"))
    return kind, info


def from_run_config(config: RunConfig, sequence: str, train_names: list[str]) -> Preparation:
    """The preparation of a run's training data, from its configuration: the data root and
    source, and the loader's smoothing (data option)."""
    recipe = from_data_root(Path(config.data_root), config.data_source, sequence, train_names)
    return replace(recipe, smoothing=config.data_options.smoothing)


def from_data_root(root: Path, data_source: str, sequence: str,
                   train_names: list[str]) -> Preparation:
    """The preparation of a data root (``data_source`` as config.json records it;
    ``train_names``: the training subjects of the part)."""
    from ..data.prepare.subject import PrepareSettings

    kind, info = data_root_kind(root)
    if kind == "synthetic" or data_source.startswith("synthetic"):
        from ..data.synth.anatomy import GRID_SHAPE, grid_affine

        defaults = PrepareSettings((sequence,)).to_record()
        return Preparation("synthetic", sequence, defaults, Grid.of(GRID_SHAPE, grid_affine()),
                           notes=(SYNTHETIC_NOTE,))
    if kind != "prepare":
        raise UnknownPreparationError(
            f"the training data {root} was not written by `benchmark data prepare` (no "
            f"{PREPARE_GENERATOR} manifest) nor is it the synthetic default: how it was "
            "prepared is not recorded, so a raw scan cannot be prepared to match it. Prepare "
            "the training scans with `data prepare`, or prepare your scan as that data was")
    return _from_records(data_dir(root), info, sequence, train_names)


def _from_records(ddir: Path, manifest: dict, sequence: str,
                  train_names: list[str]) -> Preparation:
    from ..data.prepare.subject import PrepareSettings

    records = []
    for sid in train_names:
        path = ddir / ".prepare" / HEALTHY_COHORT / f"{sid}.json"
        if path.is_file():
            records.append(json.loads(path.read_text()))
    if not records:
        raise UnknownPreparationError(
            f"{ddir}: no preparation record of the training subjects under "
            f".prepare/{HEALTHY_COHORT}/ (were they prepared by `data prepare`?)")
    notes = []
    recorded = [json.dumps(r["settings"], sort_keys=True) for r in records if "settings" in r]
    if recorded:
        common, n = collections.Counter(recorded).most_common(1)[0]
        settings = json.loads(common)
        if n < len(records):
            notes.append(f"training subjects were prepared with different settings; the "
                         f"most common ({n} of {len(records)}) are used")
    else:  # an older prepare: only the choices each record names
        first = records[0]
        settings = PrepareSettings(
            (sequence,), skull_strip="auto", template=manifest.get("template")
            if manifest.get("template", "").endswith((".nii", ".nii.gz")) else None,
            n4=first.get("n4", "on") == "on").to_record()
        notes.append("this data root's `data prepare` did not record its settings: the "
                     "default registration and N4 settings are assumed")
    reference = (settings.get("sequences") or [sequence])[0]
    if reference != sequence:
        notes.append(f"the training scans were registered through their {reference} (the "
                     f"{sequence} rigidly to it); a new {sequence} scan is registered directly")
    skull = collections.Counter(r.get("skull_strip", "?") for r in records)
    return Preparation("prepare", sequence, settings, None, dict(skull), tuple(notes))
