"""Any intensity range in, the same preparation out.

Raw MR magnitudes are >= 0 with air at ~0, but what users bring often is not: z-scored
redistributions (brain mean 0, background stored at the minimum value), offset or
winsorised derivatives, N4-corrected images with negative interpolation ringing. Every
step that needs "no signal = 0" (intensity-weighted initialisation of the registration,
masking, skull-strip heuristics, N4's log intensities) would otherwise mistake the brain
for background or vice versa. So each image is first shifted so that its own "no signal"
value sits at 0 (:func:`signal_zero`, :func:`shift_to_zero`); nothing is rescaled or
clipped, so every brain voxel keeps its signal (the loader normalises intensities later
by percentiles inside the brain mask, which a shift does not change).

The only clamp anywhere in the pipeline is :func:`clamp_to_range`: B-spline resampling
overshoots near sharp edges (skull/background), and values beyond the range of the image
that was resampled are not signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

# a single value held by at least this fraction of voxels is a stored background
BACKGROUND_FRACTION = 0.05


@dataclass(frozen=True)
class IntensityRange:
    """The range of one image: every B-spline resampling of it is clamped back to it."""

    low: float
    high: float

    @classmethod
    def of(cls, image: sitk.Image) -> IntensityRange:
        arr = sitk.GetArrayViewFromImage(image)
        return cls(float(arr.min()), float(arr.max()))


def signal_zero(image: sitk.Image) -> float:
    """The intensity that means "no signal" in ``image`` (0 for ordinary magnitudes).

    - a value at the low end held by >= 5 % of the voxels is a stored background: the
      minimum of a z-scored skull-stripped scan, a constant offset, or 0 itself (then
      negative voxels inside the brain are interpolation ringing and stay as they are);
    - else, with negative values (a z-scored head scan, noisy air): the 0.1st percentile,
      where air is;
    - else 0: a magnitude image, left unchanged.
    """
    arr = sitk.GetArrayViewFromImage(image)
    low = float(arr.min())
    if np.count_nonzero(arr == low) >= BACKGROUND_FRACTION * arr.size:
        return low
    if low < 0 and np.count_nonzero(arr == 0) >= BACKGROUND_FRACTION * arr.size:
        return 0.0
    if low < 0:
        return float(np.percentile(arr, 0.1))
    return 0.0


def shift_to_zero(image: sitk.Image) -> tuple[sitk.Image, float]:
    """``image - signal_zero(image)`` and the value subtracted (a no-op for magnitudes)."""
    zero = signal_zero(image)
    if zero == 0.0:
        return image, 0.0
    shifted = sitk.Cast(image - zero, sitk.sitkFloat32)
    return shifted, zero


def clamp_to_range(image: sitk.Image, bounds: IntensityRange) -> sitk.Image:
    """Clamp B-spline overshoot back to the resampled image's own range."""
    return sitk.Clamp(image, sitk.sitkFloat32, bounds.low, bounds.high)


def n4_floor(image: sitk.Image, mask: sitk.Image) -> float:
    """Lowest intensity N4 fits on (its model is multiplicative: log intensities).

    1e-3 of the brain's 99th percentile, not a fixed 1e-3: N4 sharpens a histogram of log
    intensities spanning [log floor, log max], so a fixed floor makes the result depend on
    the input's scale (a z-scored brain, 0..10, and a magnitude image, 0..4000, got
    different bins). Relative to the brain it is scale-free: ``n4(c * x) = c * n4(x)``.
    Only the fitting copy is floored; the corrected image keeps its own values.
    """
    arr = sitk.GetArrayViewFromImage(image)
    inside = sitk.GetArrayViewFromImage(mask) > 0
    values = arr[inside] if inside.any() else arr
    return max(1e-3 * float(np.percentile(values, 99)), 1e-6)
