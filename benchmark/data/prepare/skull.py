"""Step 3 of the preparation: skull stripping, i.e. finding the brain mask.

Choices (``--skull-strip``), best first:

- ``hdbet``: HD-BET (Isensee et al. 2019), as in the paper, when its ``hd-bet`` command is
  installed (``pip install hd-bet``; it fetches its own weights on first use). Native space.
- ``mask``: a brain mask the user supplies (``--mask-dir``): one file per subject whose name
  starts with the subject id (any label > 0 is brain, e.g. an anatomical label map), on the
  subject's image grid; or one file for the whole cohort, already in template space.
- ``nonzero``: the input is already skull-stripped (BraTS, the MSLUB/WMH "preprocessed"
  releases): the brain is the image's non-background region.
- ``template``: FALLBACK, clearly not HD-BET quality: after registering the whole head, the
  template's brain mask, refined by intensity (dark skull/CSF at its border removed).
- ``auto``: ``hdbet`` if installed, else ``mask`` if ``--mask-dir`` is given, else
  ``nonzero`` if the image looks skull-stripped, else ``template``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import SimpleITK as sitk

from benchmark.data.prepare.steps import PrepareError, read_image

SkullStrip = Literal["auto", "hdbet", "mask", "nonzero", "template"]
SKULL_STRIP_CHOICES: tuple[str, ...] = get_args(SkullStrip)
# a skull-stripped adult brain occupies about 1.0-1.8 litres; a head with skull, more
BRAIN_LITRES = (0.7, 2.3)


def hdbet_available() -> bool:
    """HD-BET is an optional dependency: its console script or its package."""
    return shutil.which("hd-bet") is not None or importlib.util.find_spec("HD_BET") is not None


def resolve_skull_strip(choice: str, image: sitk.Image, *, has_user_mask: bool) -> str:
    """Turn ``auto`` into a concrete method; check the requested one can run."""
    if choice not in SKULL_STRIP_CHOICES:
        raise ValueError(f"skull_strip must be one of {SKULL_STRIP_CHOICES}, got {choice!r}")
    if choice == "hdbet" and not hdbet_available():
        raise RuntimeError("--skull-strip hdbet: HD-BET is not installed (pip install hd-bet)")
    if choice == "mask" and not has_user_mask:
        raise RuntimeError("--skull-strip mask needs --mask-dir")
    if choice != "auto":
        return choice
    if hdbet_available():
        return "hdbet"
    if has_user_mask:
        return "mask"
    return "nonzero" if looks_skull_stripped(image) else "template"


def foreground(image: sitk.Image, fraction: float = 0.01) -> sitk.Image:
    """Largest connected region brighter than ``fraction`` of the 99th percentile, holes filled."""
    arr = sitk.GetArrayViewFromImage(image)
    threshold = fraction * float(np.percentile(arr, 99))
    fg = sitk.Cast(image > threshold, sitk.sitkUInt8)
    fg = _largest_component(fg)
    return sitk.Cast(sitk.BinaryFillhole(fg), sitk.sitkUInt8)


def _largest_component(mask: sitk.Image) -> sitk.Image:
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    return sitk.Cast(labels == 1, sitk.sitkUInt8)


def _litres(mask: sitk.Image) -> float:
    voxel_mm3 = float(np.prod(mask.GetSpacing()))
    return float(sitk.GetArrayViewFromImage(mask).sum()) * voxel_mm3 / 1e6


def looks_skull_stripped(image: sitk.Image) -> bool:
    """True when the non-background region has the volume of a brain, not of a head."""
    low, high = BRAIN_LITRES
    return low <= _litres(foreground(image)) <= high


def nonzero_mask(image: sitk.Image) -> sitk.Image:
    """Brain mask of an already skull-stripped image."""
    return foreground(image)


def user_mask(path: str | Path, subject: str, image: sitk.Image | None) -> sitk.Image:
    """A supplied mask (label > 0 = brain); on ``image``'s grid when ``image`` is given."""
    from benchmark.data.prepare.steps import check_same_grid

    mask = read_image(path, subject, "brain mask")
    if image is not None:
        check_same_grid(image, mask, subject, f"brain mask {Path(path).name}")
    return sitk.Cast(mask > 0, sitk.sitkUInt8)


def template_mask(image: sitk.Image, template_brain: sitk.Image) -> sitk.Image:
    """FALLBACK: template brain mask (same grid as ``image``) minus dark voxels at its border.

    Inside the template mask, voxels darker than 15 % of the in-mask 99th percentile are skull
    bone, CSF or background; a closing restores sulci and ventricles, the largest component
    is kept. Good enough for a benchmark run, not a substitute for HD-BET.
    """
    arr = sitk.GetArrayViewFromImage(image)
    inside = sitk.GetArrayViewFromImage(template_brain) > 0
    if not inside.any():
        raise ValueError("template brain mask is empty")
    threshold = 0.15 * float(np.percentile(arr[inside], 99))
    bright = sitk.Cast((image > threshold) * sitk.Cast(template_brain, sitk.sitkUInt8),
                       sitk.sitkUInt8)
    closed = sitk.BinaryMorphologicalClosing(bright, [3, 3, 3])
    filled = sitk.BinaryFillhole(_largest_component(closed))
    return sitk.Cast(filled * sitk.Cast(template_brain, sitk.sitkUInt8), sitk.sitkUInt8)


def hdbet_mask(image: sitk.Image, subject: str) -> sitk.Image:
    """Run the ``hd-bet`` command on one image and read back its brain mask.

    Works with HD-BET 1.x (``-mode fast -tta 0``, writes ``*_mask.nii.gz``) and 2.x
    (``--disable_tta --save_bet_mask``, writes ``*_bet.nii.gz``). Not exercised by the test
    suite (HD-BET is not installed there).
    """
    exe = shutil.which("hd-bet")
    if exe is None:
        raise PrepareError(subject, "HD-BET is not installed (pip install hd-bet)")
    device = "cpu"
    if importlib.util.find_spec("torch") is not None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.nii.gz", Path(tmp) / "out.nii.gz"
        sitk.WriteImage(image, str(src))
        tries = [[exe, "-i", str(src), "-o", str(dst), "-device", device, "--disable_tta",
                  "--save_bet_mask"],
                 [exe, "-i", str(src), "-o", str(dst), "-device", device, "-mode", "fast",
                  "-tta", "0"]]
        for cmd in tries:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            found = [p for p in Path(tmp).glob("out*.nii.gz") if p.name != "out.nii.gz"]
            if done.returncode == 0 and found:
                mask = read_image(found[0], subject, "HD-BET mask")
                mask.CopyInformation(image)
                return sitk.Cast(mask > 0, sitk.sitkUInt8)
        raise PrepareError(subject, f"HD-BET failed: {done.stderr.strip()[-300:]}")
