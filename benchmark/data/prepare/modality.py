"""Does a scan look like the sequence it is filed under? A tissue-contrast sanity check.

After registration every subject sits on the template's grid, and the template is a T1:
its darkest brain voxels are cerebrospinal fluid (CSF), its brightest white matter (WM),
grey matter (GM) lies between. The median intensity of the subject's scan in the cores
of these template classes gives the scan's tissue contrast:

    T1     WM > GM > CSF     (fluid dark, white matter bright)
    T2     CSF > GM > WM     (fluid bright, white matter dark)
    FLAIR  GM > WM >~ CSF    (fluid suppressed: CSF and WM about equal)

The sign of WM - CSF, relative to the brain's 1st-99th percentile range, is what tells
them apart reliably: measured on the real samples (fast registration, N4 on), T1 scans
(IXI x3, the MS patient, a BraTS glioma) +0.12 to +0.44, T2 scans (MS patient, BraTS)
-0.06 and -0.14, FLAIR scans +0.02 and +0.04. So a scan at or above ``T1_FROM`` looks like
a T1, one at or below ``T2_BELOW`` like a T2, and one between is unclear (FLAIR lives
there). A T1 filed as T2 or FLAIR, or a T2 filed as T1 or FLAIR, gets a warning in its
record and in the summary; a FLAIR is not told from a T1 (GM vs WM is too weak a
contrast for that on these samples), and unclear scans never warn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

# template-intensity quantiles (inside the template brain) that define each class: the
# cores of the three tissues, away from the partial-volume bands between them
CLASS_QUANTILES = {"csf": (0.0, 0.10), "gm": (0.40, 0.55), "wm": (0.85, 1.0)}
T1_FROM, T2_BELOW = 0.08, -0.05  # (WM - CSF) / brain range; see the module docstring


@dataclass(frozen=True)
class TissueContrast:
    """Median intensity of a scan in the template's CSF, GM and WM cores."""

    csf: float
    gm: float
    wm: float
    scale: float  # the subject's 1st-99th percentile range inside the brain

    @property
    def wm_csf(self) -> float:
        """(WM - CSF) / scale: T1 positive, T2 negative, FLAIR about 0."""
        return (self.wm - self.csf) / self.scale if self.scale > 0 else 0.0

    def looks_like(self) -> str | None:
        """"t1", "t2", or None when unclear (FLAIR, or too little contrast)."""
        if self.wm_csf >= T1_FROM:
            return "t1"
        return "t2" if self.wm_csf <= T2_BELOW else None

    def describe(self) -> str:
        return (f"median CSF {self.csf:.4g}, GM {self.gm:.4g}, WM {self.wm:.4g}; "
                f"(WM - CSF) / brain range {self.wm_csf:+.2f}")


def tissue_contrast(image: sitk.Image, brain: sitk.Image, template: sitk.Image
                    ) -> TissueContrast | None:
    """``image`` and ``brain`` (mask) on one grid in template space; ``template``: the T1
    template on any grid covering it. None when a class has too few brain voxels."""
    tpl = sitk.GetArrayFromImage(sitk.Resample(template, image, sitk.Transform(),
                                               sitk.sitkLinear, 0.0))
    values = sitk.GetArrayFromImage(image)
    inside = (sitk.GetArrayFromImage(brain) > 0) & (tpl > 0)
    if inside.sum() < 1000:
        return None
    t = tpl[inside]
    v = values[inside]
    medians = {}
    for name, (lo, hi) in CLASS_QUANTILES.items():
        low, high = np.quantile(t, [lo, hi])
        sel = (t >= low) & (t <= high)
        if sel.sum() < 100:
            return None
        medians[name] = float(np.median(v[sel]))
    p1, p99 = np.percentile(v, (1, 99))
    return TissueContrast(scale=float(p99 - p1), **medians)


def modality_warning(sequence: str, contrast: TissueContrast | None) -> str | None:
    """A warning when ``contrast`` clearly is another sequence's: a T1 filed as T2/FLAIR
    or a T2 filed as T1/FLAIR (a FLAIR is not told from a T1)."""
    if contrast is None:
        return None
    seen = contrast.looks_like()
    if seen is None or seen == sequence or (sequence == "flair" and seen == "t1"):
        return None
    fluid = "brighter" if seen == "t2" else "darker"
    return (f"the {sequence.upper()} scan does not look like {sequence.upper()}: "
            f"cerebrospinal fluid is {fluid} than white matter as in a {seen.upper()} "
            f"({contrast.describe()}, in the template's tissue classes); is it filed under "
            "the right sequence?")
