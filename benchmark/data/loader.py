"""One loader for every cohort: NIfTI volumes -> normalised 96x96x50 arrays -> slice batches.

Loading follows the cDDPM authors (reference-implementation.md): volumes not already at
the target shape go through ``CropOrPad(2 * target)`` and ``Resample(2)`` (B-spline for
images, nearest neighbour for masks and labels); intensities are rescaled to [0, 1]
between the 1st and 99th percentile inside the brain mask (torchio's RescaleIntensity).
Each volume is read once per process and kept in memory.

What is read is checked, and a problem is a DataLayoutError naming the file: a file listed
in its data root's manifest must match its sha256 (:mod:`benchmark.data.manifest`);
volumes must be 3D, non-empty, finite, real-valued, image/mask/label on one voxel grid
(shape and affine: voxel size, origin, orientation), the image not constant inside its
mask, the mask non-empty after the scoring's erosion (a mask the protocol erodes away
scores nothing but a number), and a labelled volume's mask must hold healthy voxels too;
label values must follow the cohort's :class:`~benchmark.data.layout.LabelRule` (0/1
unless declared). :func:`check_volume` runs these checks (``run`` and ``run --check``
before anything is written).

Arrays are (H, W, D) with the axial axis last; a slice batch is (B, 1, H, W).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio
from torch.utils.data import Dataset

from . import manifest
from .layout import DataLayoutError, VolumeRecord
from .options import AUGMENT_SPACES, CURVATURE_FLOW

TARGET_SHAPE = (96, 96, 50)


@dataclass
class Volume:
    """A loaded volume. image: (H, W, D) float32 in [0, 1]; mask, seg: (H, W, D) bool."""

    record: VolumeRecord
    image: np.ndarray
    mask: np.ndarray
    seg: np.ndarray | None

    @property
    def name(self) -> str:
        return self.record.name

    def slices(self) -> torch.Tensor:
        """All axial slices in order: (D, 1, H, W)."""
        return torch.from_numpy(self.image).permute(2, 0, 1).unsqueeze(1).contiguous()


MAX_VOXELS = 512 ** 3  # a header claiming more is not a brain volume (and would fill memory)
# the default scoring protocol's erosion (benchmark.postprocess.PostProcess)
SCORING_EROSION = {"iterations": 3, "mode": "2d"}


def _read(path: Path, what: str, volume: str) -> tio.Image:
    if not path.is_file():
        raise DataLayoutError(f"{what} of volume {volume} not found: {path}")
    manifest.check_file(path)
    try:
        img = nib.load(str(path))
        shape = tuple(int(n) for n in img.shape)
        if len(shape) < 3 or any(n != 1 for n in shape[3:]):
            raise DataLayoutError(f"{path}: expected a 3D volume, got shape {shape}")
        if min(shape) < 1 or int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
            raise DataLayoutError(f"{path}: {what} of shape {shape} is empty or implausibly "
                                  f"large (more than {MAX_VOXELS:,} voxels)")
        if np.issubdtype(img.get_data_dtype(), np.complexfloating) or \
                img.get_data_dtype().fields is not None:
            raise DataLayoutError(f"{path}: voxels of type {img.get_data_dtype()} are not "
                                  "real numbers")
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(shape[:3])
    except DataLayoutError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for corrupt files
        raise DataLayoutError(f"cannot read {what} of volume {volume} ({path}): "
                              f"{type(exc).__name__}: {exc}") from None
    if not np.isfinite(data).all():
        raise DataLayoutError(f"{path}: {int((~np.isfinite(data)).sum())} NaN/inf voxels")
    affine = img.affine
    if affine is None or not np.isfinite(affine).all() or \
            abs(np.linalg.det(affine[:3, :3])) < 1e-6:
        raise DataLayoutError(f"{path}: the header's voxel-to-world affine is not usable "
                              f"(zero voxel size or NaN): {np.round(affine, 3).tolist()}")
    cls = tio.ScalarImage if what == "image" else tio.LabelMap
    return cls(tensor=torch.from_numpy(data)[None], affine=affine)


def _same_grid(image: tio.Image, other: tio.Image) -> bool:
    """One voxel grid: the same shape and affine (voxel size and orientation to 1e-3,
    origin to 0.01 mm; as ``data prepare`` checks a raw label against its image)."""
    a, b = image.affine, other.affine
    return (image.spatial_shape == other.spatial_shape
            and np.allclose(a[:3, :3], b[:3, :3], atol=1e-3)
            and np.allclose(a[:3, 3], b[:3, 3], atol=1e-2))


def _grid(image: tio.Image) -> str:
    return (f"shape {image.spatial_shape}, voxel size {np.round(image.spacing, 3).tolist()} mm, "
            f"origin {np.round(image.origin, 2).tolist()}")


def _subject(record: VolumeRecord) -> tio.Subject:
    parts = {"image": _read(record.image, "image", record.name),
             "mask": _read(record.mask, "mask", record.name)}
    if record.seg is not None:
        parts["seg"] = _read(record.seg, "segmentation", record.name)
    shape = parts["image"].spatial_shape
    for key in ("mask", "seg"):
        if key in parts and parts[key].spatial_shape != shape:
            path = record.mask if key == "mask" else record.seg
            raise DataLayoutError(
                f"{path}: {key} shape {parts[key].spatial_shape} does not match its image "
                f"{record.image} shape {shape}"
            )
        if key in parts and not _same_grid(parts["image"], parts[key]):
            path = record.mask if key == "mask" else record.seg
            raise DataLayoutError(
                f"{path}: {key} is not on its image's voxel grid ({_grid(parts[key])}; image "
                f"{record.image}: {_grid(parts['image'])}): the two would be scored as if "
                "aligned. Resample one onto the other (data prepare does)")
    if "seg" in parts:
        record.labels.check(parts["seg"].data.numpy(), record.seg, record.cohort)
    return tio.Subject(**parts)


def _check_image(record: VolumeRecord, image: np.ndarray, mask: np.ndarray) -> None:
    """image: (H, W, D) float; mask: (H, W, D) bool, non-empty. Raises DataLayoutError."""
    low, high = np.percentile(image[mask], (1, 99))
    if np.isclose(low, high):
        raise DataLayoutError(
            f"{record.image}: the image of {record.name} is constant inside its brain mask "
            f"(1st and 99th percentile {low:g}): it cannot be normalised or scored")


def _check_mask(record: VolumeRecord, mask: np.ndarray, seg: np.ndarray | None) -> None:
    """mask, seg: (H, W, D) bool on the grid the volume is scored on. Raises
    DataLayoutError naming the file."""
    from ..postprocess import erode_brain_mask

    if not mask.any():
        raise DataLayoutError(f"{record.mask}: the brain mask of {record.name} is empty")
    if not erode_brain_mask(mask, **SCORING_EROSION).any():
        raise DataLayoutError(
            f"{record.mask}: the brain mask of {record.name} ({int(mask.sum())} voxels at "
            f"{mask.shape}) is empty after the scoring's erosion (3 times, 2D per slice): "
            "every score of this volume would be a constant (is this a brain mask?)")
    if seg is not None and not (mask & ~seg).any():
        raise DataLayoutError(
            f"{record.mask}: every brain voxel of {record.name} is lesion in {record.seg}: "
            "with no healthy voxel its AUROC is undefined (is the mask the lesion label?)")


def _resize(target: tuple[int, int, int]) -> tio.Transform:
    """Files not at ``target``: ``CropOrPad(2 * target)`` then ``Resample(2)`` (B-spline
    for images, nearest neighbour for labels), as the reference loads 1 mm files."""
    return tio.Compose([
        tio.CropOrPad(tuple(2 * s for s in target)),
        tio.Resample(2, image_interpolation="bspline", label_interpolation="nearest"),
    ])


def _to_target(subject: tio.Subject, record: VolumeRecord, image: tio.Image,
               target: tuple[int, int, int]) -> tio.Subject:
    """``subject`` on the ``target`` grid: as it is where ``image`` (the file's image, as
    read) is at ``target``, else through :func:`_resize`; raises DataLayoutError naming
    the file where that does not land on ``target``."""
    if image.spatial_shape == target:
        return subject
    resized = _resize(target)(subject)
    got = next(iter(resized.get_images(intensity_only=False))).spatial_shape
    if got != target:
        raise DataLayoutError(
            f"{record.image}: shape {image.spatial_shape} at voxel size "
            f"{np.round(image.spacing, 3).tolist()} mm gives {got} after CropOrPad and "
            f"Resample(2), expected {target} (files are read at 1 mm, or at 2 mm as {target})")
    return resized


def check_volume(record: VolumeRecord, target: tuple[int, int, int] = TARGET_SHAPE
                 ) -> tuple[int, int, int]:
    """Every check :func:`load_volume` makes, without keeping anything: files readable and
    matching the manifest, 3D, finite, one grid, labels valid, the image not constant in
    its mask, the mask as :func:`_check_mask` asks on the grid it is scored on (a file not
    at ``target`` has its mask and label resampled: nearest neighbour, cheap). Returns the
    image's shape as read; raises DataLayoutError naming the file."""
    subject = _subject(record)
    mask = subject["mask"].data[0].numpy() > 0
    if not mask.any():
        raise DataLayoutError(f"{record.mask}: the brain mask of {record.name} is empty")
    _check_image(record, subject["image"].data[0].numpy(), mask)
    labels = tio.Subject(**{k: subject[k] for k in ("mask", "seg") if k in subject})
    labels = _to_target(labels, record, subject["image"], target)
    seg = record.labels.lesion_mask(labels["seg"].data[0].numpy()) if "seg" in labels else None
    _check_mask(record, labels["mask"].data[0].numpy() > 0, seg)
    return tuple(subject["image"].spatial_shape)


@functools.cache
def load_volume(record: VolumeRecord, target: tuple[int, int, int] = TARGET_SHAPE) -> Volume:
    """Read, resample if needed, and normalise one volume (cached per process).

    torchio draws from torch's global RNG while it builds the subject; a cache hit does
    not, so the RNG is forked here: whether a volume was cached (an earlier part of the
    same process loaded it) must not change the training noise or slices that follow.
    """
    with torch.random.fork_rng(devices=[]):
        return _load_volume(record, target)


def _load_volume(record: VolumeRecord, target: tuple[int, int, int]) -> Volume:
    subject = _subject(record)
    if record.smoothing != "none":
        smooth_image(subject["image"], record.smoothing)
    subject = _to_target(subject, record, subject["image"], target)
    mask = subject["mask"].data[0].numpy() > 0
    seg = record.labels.lesion_mask(subject["seg"].data[0].numpy()) if "seg" in subject else None
    _check_mask(record, mask, seg)
    _check_image(record, subject["image"].data[0].numpy(), mask)
    rescale = tio.RescaleIntensity(out_min_max=(0, 1), percentiles=(1, 99), masking_method="mask")
    image = rescale(subject)["image"].data[0].numpy().astype(np.float32)
    image = np.clip(image, 0.0, 1.0) * mask  # skull-stripped: background is 0
    if record.slice_step > 1:  # normalised on the whole volume first: the same intensities
        keep = slice(record.slice_step // 2, None, record.slice_step)
        image, mask = image[..., keep], mask[..., keep]
        seg = None if seg is None else seg[..., keep]
    return Volume(record, np.ascontiguousarray(image), mask, seg)


def smooth_image(image: tio.ScalarImage, smoothing: str) -> None:
    """Smooth ``image`` in place as the authors' reader does (data option ``smoothing``).

    ``curvature_flow``: SimpleITK's CurvatureFlow (timeStep 0.125, 3 iterations) on the
    image as read, on its own grid and voxel spacing, before any cropping, resampling or
    rescaling; masks and labels are never smoothed. image: (1, X, Y, Z).
    """
    if smoothing != "curvature_flow":
        raise ValueError(f"unknown smoothing {smoothing!r}; allowed: none, curvature_flow")
    import SimpleITK as sitk

    smoothed = sitk.CurvatureFlow(image1=image.as_sitk(), **CURVATURE_FLOW)
    image.set_data(tio.ScalarImage.from_sitk(smoothed).data.float())  # sitkFloat32, as read


def load_volumes(records: list[VolumeRecord], progress: bool = False) -> list[Volume]:
    if progress:
        from tqdm.auto import tqdm

        records = tqdm(records, desc="loading volumes", leave=False)
    return [load_volume(r) for r in records]


def _axial(array: np.ndarray, k: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array[..., k], dtype=np.float32))[None]


class SliceDataset(Dataset):
    """One axial slice per volume per item, as the reference trains.

    Training (``fixed_slices=None``): item i is a uniformly random slice of volume
    i % n_volumes (empty slices are not skipped, as in the reference); an epoch has
    ``n_volumes * repeats`` items. Validation (``fixed_slices=k``): k evenly spaced slices
    of each volume, the same every epoch, so val/loss compares checkpoints fairly.

    Augmentation (data options, :mod:`benchmark.data.options`): ``augment_space="slice"``
    augments the (1, H, W) slice; ``"volume"`` augments the whole (1, H, W, D) volume and
    then takes the slice (the authors' order: a bias field or blur is 3-D-consistent).
    ``clamp``: clip the result to [0, 1] and zero the background again. ``voxel_mm``: the
    voxel size the transforms see (RandomBlur's std is in mm).
    """

    def __init__(self, volumes: list[Volume], repeats: int = 1, fixed_slices: int | None = None,
                 augment: tio.Transform | None = None, augment_space: str = "slice",
                 clamp: bool = True, voxel_mm: float = 1.0) -> None:
        if not volumes:
            raise ValueError("SliceDataset needs at least one volume")
        if augment_space not in AUGMENT_SPACES:
            raise ValueError(f"augment_space {augment_space!r}; allowed: "
                             f"{', '.join(AUGMENT_SPACES)}")
        self.volumes, self.repeats, self.augment = volumes, repeats, augment
        self.augment_space, self.clamp, self.voxel_mm = augment_space, clamp, voxel_mm
        depth = volumes[0].image.shape[2]
        self.fixed = None if fixed_slices is None else np.linspace(
            depth * 0.2, depth * 0.8, fixed_slices).round().astype(int)

    def __len__(self) -> int:
        n = len(self.volumes)
        return n * len(self.fixed) if self.fixed is not None else n * self.repeats

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if self.fixed is not None:
            vol, k = self.volumes[i // len(self.fixed)], int(self.fixed[i % len(self.fixed)])
        else:
            vol = self.volumes[i % len(self.volumes)]
            k = int(torch.randint(vol.image.shape[2], ()).item())
        mask = _axial(vol.mask, k)
        if self.augment is None:
            return {"image": _axial(vol.image, k), "mask": mask}
        if self.augment_space == "volume":
            whole = augment_array(self.augment, torch.from_numpy(vol.image)[None], self.voxel_mm)
            image = whole[..., k].contiguous()
        else:
            image = augment_array(self.augment, _axial(vol.image, k)[..., None],
                                  self.voxel_mm)[..., 0]
        if self.clamp:
            image = image.clamp(0, 1) * mask
        return {"image": image, "mask": mask}


class VolumeDataset(Dataset):
    """Whole volumes for methods with ``sampling = "volume"``: image, mask (1, H, W, D).
    ``clamp`` and ``voxel_mm`` as in :class:`SliceDataset`."""

    def __init__(self, volumes: list[Volume], repeats: int = 1,
                 augment: tio.Transform | None = None, clamp: bool = True,
                 voxel_mm: float = 1.0) -> None:
        self.volumes, self.repeats, self.augment = volumes, repeats, augment
        self.clamp, self.voxel_mm = clamp, voxel_mm

    def __len__(self) -> int:
        return len(self.volumes) * self.repeats

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        vol = self.volumes[i % len(self.volumes)]
        image = torch.from_numpy(vol.image)[None]
        mask = torch.from_numpy(vol.mask.astype(np.float32))[None]
        if self.augment is not None:
            image = augment_array(self.augment, image, self.voxel_mm)
            if self.clamp:
                image = image.clamp(0, 1) * mask
        return {"image": image, "mask": mask}


def augment_array(augment: tio.Transform, image: torch.Tensor, voxel_mm: float = 1.0
                  ) -> torch.Tensor:
    """Apply a torchio transform to image (1, H, W, D) seen at ``voxel_mm`` mm per voxel.

    At 1 mm the tensor goes in as it is (torchio assumes 1 mm); otherwise it is wrapped in
    an image with that spacing. The input is not modified (torchio copies it).
    """
    if voxel_mm == 1.0:
        return augment(image)
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    return augment(tio.ScalarImage(tensor=image, affine=affine)).data


def paper_augmentation() -> tio.Transform:
    """cDDPM's intensity augmentation (reference code): gamma, bias field, blur, ghosting."""
    return tio.Compose([
        tio.RandomGamma(p=0.5),
        tio.RandomBiasField(p=0.25),
        tio.RandomBlur(p=0.25),
        tio.RandomGhosting(p=0.5),
    ])
