"""Volumes for the fidelity measurement, real and synthetic, on one footing: the benchmark's
2 mm grid and its intensity normalisation (the loader's: the brain's 1st-99th percentile
mapped to [0, 1], clipped, zero outside the brain).

Real scans are read with SimpleITK (NIfTI or MetaImage), resampled to 2 mm isotropic
(B-spline for images, nearest neighbour for masks and labels, as the loader's
``Resample(2)``); synthetic ones come through the loader itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPACING_MM = 2.0


@dataclass
class MeasuredVolume:
    """image: (H, W, D) float in [0, 1]; brain, lesion: (H, W, D) bool (lesion may be None)."""

    source: str       # e.g. "synthetic-v1", "real"
    cohort: str       # the benchmark cohort it stands for (MSLUB, Brats21, ...), or IXI
    sequence: str     # t1, t2, flair, t1c
    subject: str
    image: np.ndarray
    brain: np.ndarray
    lesion: np.ndarray | None


def normalise(image: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The loader's intensity normalisation (torchio RescaleIntensity on the brain's 1st-99th
    percentile -> [0, 1]), then clipped and masked."""
    import torch
    import torchio as tio

    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.from_numpy(
        image.astype(np.float32))[None]), mask=tio.LabelMap(tensor=torch.from_numpy(
            brain.astype(np.uint8))[None]))
    rescale = tio.RescaleIntensity(out_min_max=(0, 1), percentiles=(1, 99), masking_method="mask")
    out = rescale(subject)["image"].data[0].numpy().astype(np.float64)
    return np.clip(out, 0.0, 1.0) * brain


def _resample(img, spacing: float, label: bool):
    import SimpleITK as sitk

    size = [round(n * s / spacing) for n, s in zip(img.GetSize(), img.GetSpacing())]
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkBSpline
    return sitk.Resample(img, size, sitk.Transform(), interp, img.GetOrigin(),
                         (spacing,) * 3, img.GetDirection(), 0.0,
                         sitk.sitkUInt8 if label else sitk.sitkFloat32)


def read_real(image: Path, sequence: str, cohort: str, subject: str,
              brain: Path | None = None, lesion: Path | None = None,
              brain_labels_above: float = 0.0) -> MeasuredVolume:
    """A real scan on the 2 mm grid, normalised. brain: a mask or a label map (voxels
    > ``brain_labels_above``); without one, the scan is taken as skull-stripped (brain =
    non-zero voxels, holes filled). lesion: a label map, lesion = label > 0."""
    import SimpleITK as sitk
    from scipy import ndimage

    for path in (image, brain, lesion):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"fidelity: {path} not found")
    img = sitk.ReadImage(str(image), sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(_resample(img, SPACING_MM, label=False)).astype(np.float64)
    if brain is not None:
        b = sitk.Cast(sitk.ReadImage(str(brain)) > brain_labels_above, sitk.sitkUInt8)
        mask = sitk.GetArrayFromImage(_resample(b, SPACING_MM, label=True)) > 0
    else:
        nz = sitk.Cast(sitk.NotEqual(img, 0.0), sitk.sitkUInt8)
        mask = sitk.GetArrayFromImage(_resample(nz, SPACING_MM, label=True)) > 0
        mask = ndimage.binary_fill_holes(mask)
    les = None
    if lesion is not None:
        lab = sitk.Cast(sitk.ReadImage(str(lesion)) > 0, sitk.sitkUInt8)
        les = sitk.GetArrayFromImage(_resample(lab, SPACING_MM, label=True)) > 0
        if les.shape != arr.shape:
            raise ValueError(f"{lesion}: grid {les.shape} does not match {image} {arr.shape}")
        les &= mask
    return MeasuredVolume("real", cohort, sequence, subject, normalise(arr, mask), mask, les)


def synthetic(root: Path, cohort: str, split: str = "test", limit: int | None = None,
              source: str = "synthetic") -> list[MeasuredVolume]:
    """The synthetic default's volumes of one cohort (IXI: the healthy test set), through
    the benchmark's own loader (already on the 2 mm grid and normalised)."""
    from benchmark.data import layout
    from benchmark.data.loader import load_volume

    if cohort == layout.HEALTHY_COHORT:
        out = []
        for sequence in ("t1", "t2"):
            records = layout.healthy_splits(root, sequence, 0)["test"][:limit]
            out += [_from_loader(load_volume(r), source, cohort, sequence) for r in records]
        return out
    records = layout.unhealthy_split(root, cohort, split)[:limit]
    return [_from_loader(load_volume(r), source, cohort, r.sequence) for r in records]


def _from_loader(vol, source: str, cohort: str, sequence: str) -> MeasuredVolume:
    return MeasuredVolume(source, cohort, sequence, vol.name, vol.image.astype(np.float64),
                          vol.mask, vol.seg)
