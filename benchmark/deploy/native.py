"""A raw scan onto the model's grid and back: ``data prepare`` for one scan, and its inverse.

:func:`prepare_scan` runs the scan through ``benchmark.data.prepare.run_prepare`` (every
check and step ``data prepare`` makes, with the settings of the model's training data)
into a one-subject data root, then, for a model trained on a fixed grid (the synthetic
default), resamples it onto that grid. :func:`to_native` takes a volume on the model's
grid back onto the scan's own voxel grid: through the inverse of the registration
transform prepare recorded (template -> scanner points), linear interpolation, 0 outside
the prepared field of view (the benchmark keeps the central 100 mm of the brain axially).

Arrays are (H, W, D) = the NIfTI voxel order (i, j, k) of their file.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..data.prepare import run_prepare
from ..data.prepare.cohorts import COHORTS, Cohort
from ..data.prepare.output import write_nifti
from ..data.prepare.steps import apply_transform, read_image
from ..data.prepare.subject import PrepareSettings, record_path
from .recipe import Grid, Preparation

SET_NAME = "predict"  # the one-subject data root's test set: Data/Test/predict/...


class ScanError(ValueError):
    """A scan that cannot be prepared; the message names the file and prepare's reason."""


@dataclass
class PreparedScan:
    """image, mask: the model's input files (its grid); record: prepare's subject record;
    to_template: raw scanner points -> template points; settings: what prepare ran with."""

    name: str
    image: Path
    mask: Path
    record: dict
    to_template: sitk.Transform
    settings: PrepareSettings
    skull_strip_note: str | None = None


def _cohort(sequence: str) -> Cohort:
    """The ``custom`` cohort without a lesion label (a scan to predict on has none)."""
    return dataclasses.replace(COHORTS["custom"], set_name=SET_NAME, label_patterns=(),
                               default_sequences=(sequence,))


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"


def skull_strip_choice(preparation: Preparation, mask: Path | None,
                       requested: str | None) -> tuple[str, str | None]:
    """(what prepare runs, a note or None): a given brain mask is used; otherwise the
    training data's choice, except supplied masks (a new scan has none: ``auto``)."""
    if mask is not None:
        return "mask", None
    if requested is not None:
        return requested, None
    recorded = preparation.settings.get("skull_strip", "auto")
    if recorded == "mask":
        return "auto", ("the training scans used supplied brain masks; without --mask this "
                        "scan is skull-stripped by prepare's `auto` choice")
    return recorded, None


def sequence_problem(record: dict, sequence: str) -> str | None:
    """What prepare's own sequence check (its tissue-contrast check, where this version of
    ``data prepare`` has one) recorded against ``sequence``: a message when the scan clearly
    looks like another sequence, else None (no check, unclear, or the same sequence)."""
    contrast = (record.get("tissue_contrast") or {}).get(sequence) or {}
    seen = contrast.get("looks_like")
    if seen is None or seen == sequence:
        return None
    said = [w for w in record.get("warnings", []) if "does not look like" in w]
    return said[0] if said else f"it looks like a {seen.upper()}"


def prepare_scan(scan: Path, mask: Path | None, preparation: Preparation, work: Path,
                 name: str, skull_strip: str | None = None, fast: bool = False,
                 check_sequence: bool = True) -> PreparedScan:
    """``scan`` (and its brain ``mask``, on the scan's grid) prepared as the training data
    was, into ``work/`` (``raw/`` links, ``prepared/Data/...``, ``model-grid/``). A scan
    that prepare's sequence check finds to be another sequence is an error unless
    ``check_sequence`` is False."""
    choice, note = skull_strip_choice(preparation, mask, skull_strip)
    settings = preparation.prepare_settings(skull_strip=choice, fast=fast)
    seq = preparation.sequence
    raw = work / "raw"
    (raw / name).mkdir(parents=True, exist_ok=True)
    _link(raw / name / f"{seq}{_suffix(scan)}", scan)
    mask_dir = None
    if mask is not None:
        mask_dir = work / "masks"
        mask_dir.mkdir(parents=True, exist_ok=True)
        _link(mask_dir / f"{name}_brainmask{_suffix(mask)}", mask)
    cohort = _cohort(seq)
    lines: list[str] = []
    result = run_prepare(cohort, raw, work / "prepared", settings, force=True, echo=lines.append,
                         mask_dir=str(mask_dir) if mask_dir is not None else None)
    if result["failed"]:
        raise ScanError(f"{scan}: cannot be prepared: {result['failed'][name]}")
    data = work / "prepared" / "Data"
    record = json.loads(record_path(data, cohort, name).read_text())
    problem = sequence_problem(record, seq)
    if problem and check_sequence:
        raise ScanError(f"{scan}: the model takes {seq.upper()} scans, and data prepare's "
                        f"sequence check says: {problem} (--ignore-sequence-check if it is "
                        f"a {seq.upper()})")
    image, brain = data / record["files"][seq].lstrip("/"), data / record["files"]["mask"].lstrip("/")
    if preparation.grid is not None:
        image, brain = to_grid(image, brain, preparation.grid, work / "model-grid", name, seq)
    transform = sitk.ReadTransform(str(record_path(data, cohort, name).with_name(
        record["transforms"][seq])))
    return PreparedScan(name, image, brain, record, transform.GetInverse(), settings, note)


def _link(link: Path, target: Path) -> None:
    link.unlink(missing_ok=True)
    link.symlink_to(Path(target).resolve())


def grid_reference(grid: Grid) -> sitk.Image:
    """An empty image on ``grid`` (RAS affine -> ITK's LPS origin/direction/spacing)."""
    lps = np.diag([-1.0, -1.0, 1.0])
    matrix = grid.matrix()
    linear = lps @ matrix[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    ref = sitk.Image([int(s) for s in grid.shape], sitk.sitkFloat32)
    ref.SetSpacing(spacing.tolist())
    ref.SetDirection((linear / spacing).ravel().tolist())
    ref.SetOrigin((lps @ matrix[:3, 3]).tolist())
    return ref


def _xyz(image: sitk.Image) -> np.ndarray:
    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))


def to_grid(image: Path, mask: Path, grid: Grid, out: Path, name: str,
            seq: str) -> tuple[Path, Path]:
    """A prepared image and mask resampled onto a fixed grid of the same (template) space:
    B-spline clamped to the image's range and nearest neighbour, as prepare resamples."""
    ref = grid_reference(grid)
    moved = apply_transform(sitk.ReadImage(str(image), sitk.sitkFloat32), ref, sitk.Transform(),
                            is_label=False)
    brain = apply_transform(sitk.ReadImage(str(mask), sitk.sitkUInt8), ref, sitk.Transform(),
                            is_label=True)
    inside = _xyz(brain) > 0
    if not inside.any():
        raise ScanError(f"{name}: the prepared brain lies outside the model's grid")
    paths = out / f"{name}_{seq}.nii.gz", out / f"{name}_mask.nii.gz"
    write_nifti(paths[0], (_xyz(moved) * inside).astype(np.float32), grid.matrix())
    write_nifti(paths[1], inside.astype(np.uint8), grid.matrix())
    return paths


def read_scan(scan: Path, name: str) -> sitk.Image:
    """The raw scan as prepare reads it (its voxel grid is the output grid)."""
    return read_image(scan, name, "scan")


def to_native(volume: np.ndarray, prepared: PreparedScan, native: sitk.Image) -> np.ndarray:
    """volume: (H, W, D) on the model grid -> float32 array on ``native``'s voxel grid
    (NIfTI voxel order), linear interpolation, 0 where the model grid does not reach."""
    ref = sitk.ReadImage(str(prepared.image))
    image = sitk.GetImageFromArray(np.transpose(np.asarray(volume, np.float32), (2, 1, 0)))
    image.CopyInformation(ref)
    out = sitk.Resample(image, native, prepared.to_template, sitk.sitkLinear, 0.0,
                        sitk.sitkFloat32)
    return _xyz(out)
