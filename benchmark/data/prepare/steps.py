"""The preparation steps of the paper's Sec. 4.2, one function each (SimpleITK images in and out).

Order used by :func:`benchmark.data.prepare.prepare_subject`:

1. :func:`reorient_resample` - common orientation (ITK "LPS": identity direction) and 1 mm
   isotropic spacing; 3rd-order B-spline for images, nearest neighbour for labels and masks.
2. :func:`register_affine` + :func:`apply_transform` - affine registration to a template
   (SRI24 when given, else the MNI152 2009a template shipped inside the nilearn wheel); the one
   transform is applied to image, brain mask and lesion label (labels: nearest neighbour).
3. skull stripping: see ``benchmark/data/prepare/skull.py``.
4. :func:`crop_to_brain` then :func:`n4_correct` - the authors crop first and run N4 on the
   crop (cheaper, same result inside the mask).
5. :func:`pad_downsample` - pad to 192x192x160, downsample by 2, drop 15 top and bottom axial
   slices -> 96x96x50 (H, W, D; axial last).

Every function that can fail on bad input raises :class:`PrepareError` naming the subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchmark.data.prepare.intensity import IntensityRange, clamp_to_range, n4_floor

ORIENTATION = "LPS"  # ITK identity direction = the authors' ANTs "RAI"; axial is the 3rd axis
PAD_SHAPE = (192, 192, 160)  # paper Sec. 4.2: largest brain + safety margin
DOWNSAMPLE = 2
DROP_AXIAL = 15  # slices removed at the top and at the bottom after downsampling
FINAL_SHAPE = (96, 96, 50)
TEMPLATE_MARGIN = 12  # mm of background kept around the template brain
NILEARN_TEMPLATE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


class PrepareError(RuntimeError):
    """A subject cannot be prepared; the message starts with the subject id."""

    def __init__(self, subject: str, message: str):
        super().__init__(f"{subject}: {message}")
        self.subject = subject


MAX_VOXELS = 1024 ** 3  # a header claiming more is not a head scan (and would fill memory)


def read_image(path: str | Path, subject: str, role: str) -> sitk.Image:
    """Read one image file (NIfTI, MetaImage, ...) as float32; a corrupt file, a header
    that is not a 3D single-channel volume of 1..MAX_VOXELS voxels, or NaN/inf voxels is
    a PrepareError naming the subject and the file. The header is checked before the
    voxels are read, so a claimed size never allocates memory."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        size = reader.GetSize()
        if reader.GetDimension() == 3 and not 0 < int(np.prod(size, dtype=np.int64)) <= MAX_VOXELS:
            raise PrepareError(subject, f"{role} file {path}: header size {size} is empty "
                                        f"or implausibly large (over {MAX_VOXELS:,} voxels)")
        image = reader.Execute()
    except RuntimeError as err:
        if isinstance(err, PrepareError):
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise PrepareError(subject, f"cannot read {role} file {path}: {first}") from None
    if image.GetDimension() != 3:
        raise PrepareError(subject, f"{role} file {path} is {image.GetDimension()}D, need 3D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise PrepareError(subject, f"{role} file {path} has several components per voxel")
    try:
        image = sitk.Cast(image, sitk.sitkFloat32)
    except RuntimeError:  # e.g. MET_STRING: a vector type SimpleITK cannot cast
        raise PrepareError(subject, f"{role} file {path}: voxels of type "
                                    f"{image.GetPixelIDTypeAsString()} are not numbers") from None
    voxels = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(voxels).all():
        raise PrepareError(subject, f"{role} file {path}: {int((~np.isfinite(voxels)).sum())} "
                                    "NaN/inf voxels")
    if not all(s > 0 and np.isfinite(s) for s in image.GetSpacing()):
        raise PrepareError(subject, f"{role} file {path}: voxel size {image.GetSpacing()} "
                                    "is not positive")
    return image


def check_same_grid(image: sitk.Image, other: sitk.Image, subject: str, role: str) -> None:
    """A label/mask must sit on its image's voxel grid (size, spacing, origin, direction)."""
    same = (
        image.GetSize() == other.GetSize()
        and np.allclose(image.GetSpacing(), other.GetSpacing(), atol=1e-3)
        and np.allclose(image.GetOrigin(), other.GetOrigin(), atol=1e-2)
        and np.allclose(image.GetDirection(), other.GetDirection(), atol=1e-3)
    )
    if not same:
        raise PrepareError(
            subject,
            f"{role} grid differs from its image: size {other.GetSize()} vs {image.GetSize()}, "
            f"spacing {np.round(other.GetSpacing(), 3)} vs {np.round(image.GetSpacing(), 3)}, "
            f"origin {np.round(other.GetOrigin(), 1)} vs {np.round(image.GetOrigin(), 1)}",
        )


def reorient_resample(image: sitk.Image, *, is_label: bool, spacing: float = 1.0) -> sitk.Image:
    """Step 1: orientation ``ORIENTATION`` and isotropic ``spacing`` mm, same field of view.

    Images use 3rd-order B-spline (paper: "cubic spline"), clamped to their own range;
    labels nearest neighbour: linear interpolation of a {0,1} label followed by ``> 0``
    (the reference scripts) dilates it.
    """
    image = sitk.DICOMOrient(image, ORIENTATION)  # a lossless axis permutation/flip
    if np.allclose(image.GetSpacing(), spacing, atol=1e-4):
        return image  # already on a 1 mm grid: interpolating would only blur
    old_size = np.array(image.GetSize())
    old_spacing = np.array(image.GetSpacing())
    new_size = np.maximum(np.round(old_size * old_spacing / spacing), 1).astype(int)
    # keep the centre of the field of view fixed
    extent_old = (old_size - 1) * old_spacing
    extent_new = (new_size - 1) * spacing
    direction = np.array(image.GetDirection()).reshape(3, 3)
    origin = np.array(image.GetOrigin()) + direction @ ((extent_old - extent_new) / 2)
    out = sitk.Resample(
        image, [int(s) for s in new_size], sitk.Transform(), _interpolator(is_label),
        origin.tolist(), [spacing] * 3, image.GetDirection(), 0.0, image.GetPixelID(),
    )
    return out if is_label else clamp_to_range(out, IntensityRange.of(image))


def _interpolator(is_label: bool) -> int:
    return sitk.sitkNearestNeighbor if is_label else sitk.sitkBSpline


def default_template_path() -> Path:
    """The MNI152 ICBM 2009a T1 brain template inside the installed nilearn wheel (no download)."""
    import nilearn.datasets

    path = Path(nilearn.datasets.__file__).parent / "data" / NILEARN_TEMPLATE
    if not path.is_file():
        raise FileNotFoundError(f"nilearn template not found at {path}; pass --template")
    return path


@dataclass
class Template:
    """A brain template (skull-stripped T1) in the common orientation; mask = template > 0."""

    image: sitk.Image
    mask: sitk.Image
    path: str


def load_template(path: str | Path | None = None) -> Template:
    """Load SRI24 ``T1_brain.nii`` (``path``) or the nilearn MNI152 template, 1 mm, LPS."""
    path = Path(path) if path else default_template_path()
    if not path.is_file():
        raise FileNotFoundError(f"--template {path} does not exist")
    image = reorient_resample(read_image(path, "template", "template"), is_label=False)
    mask = sitk.Cast(image > 1e-3 * _max(image), sitk.sitkUInt8)
    # the output grid: brain + 12 mm, so every subject is resampled onto fewer voxels
    lo, hi = bounding_box(_xyz(mask))
    lo = np.maximum(lo - TEMPLATE_MARGIN, 0)
    hi = np.minimum(hi + TEMPLATE_MARGIN, image.GetSize())
    size, index = [int(v) for v in hi - lo], [int(v) for v in lo]
    image = sitk.RegionOfInterest(image, size, index)
    mask = sitk.RegionOfInterest(mask, size, index)
    return Template(image=image, mask=mask, path=str(path))


def _max(image: sitk.Image) -> float:
    return float(sitk.GetArrayViewFromImage(image).max())


@dataclass(frozen=True)
class RegistrationSettings:
    """Multi-resolution affine registration, Mattes mutual information on a random voxel subset.

    ``shrink``/``smooth`` per level (voxels); ``sampling`` = fraction of fixed voxels in the
    metric; the fixed ``seed`` and one thread make the result bit-reproducible.
    """

    shrink: tuple[int, ...] = (4, 2)
    smooth: tuple[float, ...] = (2.0, 1.0)
    sampling: float = 0.05
    iterations: int = 200
    bins: int = 32
    seed: int = 3141

    @classmethod
    def fast(cls) -> RegistrationSettings:
        """Coarse settings for tests (one 4 mm level)."""
        return cls(shrink=(4,), smooth=(2.0,), sampling=0.05, iterations=60)


def register_affine(
    moving: sitk.Image,
    fixed: sitk.Image,
    settings: RegistrationSettings = RegistrationSettings(),
    *,
    fixed_mask: sitk.Image | None = None,
    kind: str = "affine",
    initial: sitk.Transform | None = None,
) -> sitk.Transform:
    """Step 2: transform mapping fixed (template) points to moving (subject) points.

    Initialised by aligning the intensity centres of mass (robust to different fields of view),
    then optimised from coarse to fine (or from ``initial``). ``kind="rigid"`` is used
    between sequences of one subject (same session, same head).
    """
    if kind not in ("affine", "rigid"):
        raise ValueError(f"kind must be 'affine' or 'rigid', got {kind!r}")
    base = sitk.AffineTransform(3) if kind == "affine" else sitk.Euler3DTransform()
    if initial is None:
        # intensity moments need a non-negative mass: a z-scored brain sums to ~0, and its
        # "centre of mass" (first moment / ~0) lands metres away, so that no sample overlaps
        initial = sitk.CenteredTransformInitializer(
            sitk.Maximum(fixed, 0.0), sitk.Maximum(moving, 0.0), base,
            sitk.CenteredTransformInitializerFilter.MOMENTS,
        )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.bins)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(settings.sampling, settings.seed)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=settings.iterations,
        relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(settings.shrink))
    reg.SetSmoothingSigmasPerLevel(list(settings.smooth))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(initial, inPlace=False)
    return reg.Execute(fixed, moving)


def head_top_initializer(head: sitk.Image, head_mask: sitk.Image,
                         template_mask: sitk.Image, depth_mm: float = 100.0) -> sitk.Transform:
    """Translation matching the top ``depth_mm`` of a head to the top of the template brain.

    A head scan with neck has its centre of mass far below the brain's, so moments-based
    initialisation against a brain-only template starts centimetres off; the vertex is a
    landmark both share (the scalp adds ~1 cm, which the registration absorbs).
    """
    def top_centroid(mask: sitk.Image, depth: float) -> np.ndarray:
        idx = np.argwhere(_xyz(mask) > 0)
        pts = np.array(mask.TransformContinuousIndexToPhysicalPoint([0.0, 0.0, 0.0]))
        direction = np.array(mask.GetDirection()).reshape(3, 3)
        phys = pts + (idx * np.array(mask.GetSpacing())) @ direction.T
        top = phys[:, 2].max()  # LPS: +z is superior
        return phys[phys[:, 2] > top - depth].mean(axis=0)

    shift = top_centroid(head_mask, depth_mm + 10.0) - top_centroid(template_mask, depth_mm)
    init = sitk.AffineTransform(3)
    init.SetTranslation(shift.tolist())
    return init


def apply_transform(
    image: sitk.Image, reference: sitk.Image, transform: sitk.Transform, *, is_label: bool
) -> sitk.Image:
    """Resample ``image`` onto ``reference``'s grid (B-spline images clamped to their own
    range, nearest labels); 0 (no signal) outside the field of view."""
    out = sitk.Resample(image, reference, transform, _interpolator(is_label), 0.0,
                        image.GetPixelID())
    if is_label:
        return out
    bounds = IntensityRange.of(image)
    return clamp_to_range(out, IntensityRange(min(bounds.low, 0.0), max(bounds.high, 0.0)))


def bounding_box(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) voxel indices (inclusive lo, exclusive hi) of the non-zero region."""
    idx = np.argwhere(mask > 0)
    return idx.min(axis=0), idx.max(axis=0) + 1


def crop_to_brain(images: dict[str, sitk.Image], mask: sitk.Image) -> dict[str, sitk.Image]:
    """Step 4a: crop every image (same grid as ``mask``) to the mask's bounding box."""
    lo, hi = bounding_box(_xyz(mask))
    lo, hi = [int(v) for v in lo], [int(v) for v in hi]
    size = [h - low for low, h in zip(lo, hi)]
    out = {name: sitk.RegionOfInterest(img, size, lo) for name, img in images.items()}
    out["mask"] = sitk.RegionOfInterest(mask, size, lo)
    return out


def crop_around(image: sitk.Image, mask: sitk.Image, margin_mm: float) -> sitk.Image:
    """``image`` cropped to ``mask``'s bounding box plus ``margin_mm`` (same grid)."""
    lo, hi = bounding_box(_xyz(mask))
    margin = np.ceil(margin_mm / np.array(mask.GetSpacing())).astype(int)
    lo = np.maximum(lo - margin, 0)
    hi = np.minimum(hi + margin, mask.GetSize())
    return sitk.RegionOfInterest(image, [int(v) for v in hi - lo], [int(v) for v in lo])


def _xyz(image: sitk.Image) -> np.ndarray:
    """Voxel array in (x, y, z) index order (SimpleITK gives (z, y, x))."""
    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))


def n4_correct(
    image: sitk.Image, mask: sitk.Image, *, shrink: int = 4,
    iterations: tuple[int, ...] = (50, 50, 50), control_points: int = 5,
    tolerance: float = 5e-4,
) -> sitk.Image:
    """Step 4b: N4 bias-field correction (Tustison 2010) fitted inside the brain mask.

    The field is fitted on a ``shrink``-times smaller copy and evaluated at full resolution,
    the usual speed-up; outside the mask the image is zero anyway after skull stripping.
    Fitting levels: each doubles the B-spline mesh. 5 control points (2 spans) and 3
    levels end on the same 8-span mesh as ANTs' 4 points x 4 levels, skipping the
    1-span level: 26 % less CPU, output within 0.07 % (mean) of the 4-level fit on IXI
    (datasets/README.md, "Speed"). The cost is per shrunk voxel per iteration.
    """
    image = sitk.Cast(image, sitk.sitkFloat32)
    # N4 works on log intensities: the fitting copy is floored to a small positive value
    # (the image has been shifted so that "no signal" is 0: see intensity.py)
    positive = sitk.Maximum(image, n4_floor(image, mask))
    small = sitk.Shrink(positive, [shrink] * 3)
    small_mask = sitk.Shrink(mask, [shrink] * 3)
    if sitk.GetArrayViewFromImage(small_mask).max() == 0:
        small_mask = sitk.Cast(sitk.BinaryDilate(small_mask, [1, 1, 1]) | 1, sitk.sitkUInt8)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetNumberOfControlPoints([control_points] * 3)
    n4.SetMaximumNumberOfIterations(list(iterations))
    n4.SetConvergenceThreshold(tolerance)
    n4.Execute(small, small_mask)
    log_field = n4.GetLogBiasFieldAsImage(positive)
    corrected = sitk.Cast(image / sitk.Exp(log_field), sitk.sitkFloat32)
    return sitk.Mask(corrected, mask)


def _pad_or_crop(array: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Centre ``array`` in ``shape`` (zero padding; centre crop where it is larger).

    Returns the array and the index offset ``o`` with new[i] = old[i - o] (o < 0 = cropped).
    """
    offset = np.array([(t - s) // 2 for s, t in zip(array.shape, shape)])
    out = np.zeros(shape, dtype=array.dtype)
    src = tuple(slice(max(-o, 0), max(-o, 0) + min(s, t)) for o, s, t in
                zip(offset, array.shape, shape))
    dst = tuple(slice(max(o, 0), max(o, 0) + min(s, t)) for o, s, t in
                zip(offset, array.shape, shape))
    out[dst] = array[src]
    return out, offset


def _nearest_downsample(label: np.ndarray, factor: int) -> np.ndarray:
    """Downsample a {0,1} label by nearest neighbour at the coarse voxel centres.

    The centre of a 2x2x2 block lies half-way between children; ITK's nearest neighbour
    (used by torchio's ``Resample(2)`` for labels in the reference loader) rounds the
    half-way index up, i.e. takes child (1, 1, 1). Sampling keeps the expected lesion volume
    (a block majority vote erodes small MS lesions by ~25 %; ``any`` dilates them).
    """
    start = factor // 2
    return np.ascontiguousarray(label[start::factor, start::factor, start::factor]).astype(
        np.uint8)


def pad_downsample(
    image: sitk.Image, mask: sitk.Image, seg: sitk.Image | None = None
) -> dict[str, np.ndarray]:
    """Step 5: pad to 192x192x160, downsample by 2, drop 15 top and bottom axial slices.

    image/mask/seg: one 1 mm grid (the brain crop). Returns float32 ``image`` and uint8
    ``mask``/``seg`` arrays of shape (96, 96, 50) = (H, W, D), axial last, and ``affine``
    (4x4, nibabel RAS convention) placing them in template space. The image is B-spline
    sampled at the centres of the 2x2x2 blocks (as torchio's ``Resample(2)`` in the
    reference loader), labels by nearest neighbour; the image is zero outside the mask.
    """
    spacing = np.array(image.GetSpacing())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    padded, offset = _pad_or_crop(_xyz(image).astype(np.float32), PAD_SHAPE)
    origin = np.array(image.GetOrigin()) - direction @ (offset * spacing)
    big = sitk.GetImageFromArray(np.transpose(padded, (2, 1, 0)))
    big.SetSpacing(spacing.tolist())
    big.SetDirection(direction.ravel().tolist())
    big.SetOrigin(origin.tolist())
    coarse_size = [s // DOWNSAMPLE for s in PAD_SHAPE]
    coarse_origin = origin + direction @ (spacing * (DOWNSAMPLE - 1) / 2)  # block centres
    small = sitk.Resample(big, coarse_size, sitk.Transform(), sitk.sitkBSpline,
                          coarse_origin.tolist(), (spacing * DOWNSAMPLE).tolist(),
                          direction.ravel().tolist(), 0.0, sitk.sitkFloat32)
    keep = slice(DROP_AXIAL, coarse_size[2] - DROP_AXIAL)
    out = {"mask": _nearest_downsample(_pad_or_crop(_xyz(mask) > 0, PAD_SHAPE)[0], DOWNSAMPLE)}
    if seg is not None:
        seg_1mm = _pad_or_crop((_xyz(seg) > 0).astype(np.uint8), PAD_SHAPE)[0]
        out["seg"] = _nearest_downsample(seg_1mm, DOWNSAMPLE)
    # B-spline overshoot beyond the input's own range is not signal; nothing else is clipped
    bounds = IntensityRange.of(image)
    img = np.clip(_xyz(small), min(bounds.low, 0.0), max(bounds.high, 0.0)) * out["mask"]
    out = {k: v[:, :, keep] for k, v in out.items()}
    out["image"] = img[:, :, keep].astype(np.float32)
    final_origin = coarse_origin + direction @ (spacing * DOWNSAMPLE * np.array([0, 0, DROP_AXIAL]))
    if seg is not None:  # lesion volume in the kept slab, to check the 8x downsampling
        kept_1mm = slice(DROP_AXIAL * DOWNSAMPLE, PAD_SHAPE[2] - DROP_AXIAL * DOWNSAMPLE)
        out["seg_voxels_1mm"] = int(seg_1mm[:, :, kept_1mm].sum())
    out["affine"] = _ras_affine(final_origin, direction, spacing * DOWNSAMPLE)
    return out


def _ras_affine(origin: np.ndarray, direction: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """ITK (LPS) geometry -> nibabel voxel-to-RAS affine."""
    flip = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = flip @ direction @ np.diag(spacing)
    affine[:3, 3] = flip @ origin
    return affine
