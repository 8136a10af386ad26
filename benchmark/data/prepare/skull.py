"""Step 3 of the preparation: skull stripping, i.e. finding the brain mask.

Choices (``--skull-strip``), best first:

- ``hdbet``: HD-BET (Isensee et al. 2019), as in the paper, when its ``hd-bet`` command is
  installed (``pip install hd-bet``; it fetches its own weights on first use). Native space.
- ``deepbet``: deepbet (Fisch et al. 2024, MIT), when installed (``pip install -e
  .[prepare]``): a T1 network whose weights ship inside its wheel, so it runs offline; CPU,
  one thread, ~5 s per scan. It runs on the subject's T1; the other sequences get the T1
  mask through their rigid registration to the T1 (same session, same head).
- ``mask``: a brain mask the user supplies (``--mask-dir``): one file per subject whose name
  starts with the subject id (any label > 0 is brain, e.g. an anatomical label map), on the
  subject's image grid; or one file for the whole cohort, already in template space.
- ``nonzero``: the input is already skull-stripped (BraTS, the MSLUB/WMH "preprocessed"
  releases): the brain is the image's non-background region.
- ``template``: FALLBACK, clearly not a skull-stripping tool: after registering the whole
  head, the template's brain mask, refined by intensity (dark skull/CSF at its border
  removed). A warning says so.
- ``auto``: ``mask`` if ``--mask-dir`` is given (the user's masks always win: a tool is
  used instead only when asked for by name, e.g. ``--skull-strip deepbet``); else ``hdbet``
  if installed; else ``deepbet`` if installed, the subject has a T1 and it is not
  skull-stripped already; else ``nonzero`` if the image looks skull-stripped; else
  ``template``. What ``auto`` chose is printed once in the summary and recorded in the
  manifest (``choices``).

Every record says which method ran (``skull_strip``) and on which sequence (``mask_from``).
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

SkullStrip = Literal["auto", "hdbet", "deepbet", "mask", "nonzero", "template"]
SKULL_STRIP_CHOICES: tuple[str, ...] = get_args(SkullStrip)
# a skull-stripped adult brain occupies about 1.0-1.8 litres; a head with skull, more
BRAIN_LITRES = (0.7, 2.3)


def hdbet_available() -> bool:
    """HD-BET is an optional dependency: its console script or its package."""
    return shutil.which("hd-bet") is not None or importlib.util.find_spec("HD_BET") is not None


def deepbet_available() -> bool:
    """deepbet is an optional dependency (the ``prepare`` extra)."""
    return importlib.util.find_spec("deepbet") is not None


def available_tools() -> dict[str, str | None]:
    """Installed skull strippers and their versions (part of a run's settings fingerprint:
    installing one changes what ``auto`` does, so subjects are redone)."""
    from importlib.metadata import PackageNotFoundError, version

    def _version(dist: str) -> str | None:
        try:
            return version(dist)
        except PackageNotFoundError:
            return "installed" if dist == "hd-bet" and hdbet_available() else None

    return {"hdbet": _version("hd-bet"), "deepbet": _version("deepbet")}


def resolve_skull_strip(choice: str, image: sitk.Image, *, has_user_mask: bool,
                        has_t1: bool = False) -> str:
    """Turn ``auto`` into a concrete method; check the requested one can run.

    ``image``: the reference sequence (1 mm); ``has_t1``: the subject has a T1 scan.
    """
    if choice not in SKULL_STRIP_CHOICES:
        raise ValueError(f"skull_strip must be one of {SKULL_STRIP_CHOICES}, got {choice!r}")
    if choice == "hdbet" and not hdbet_available():
        raise RuntimeError("--skull-strip hdbet: HD-BET is not installed (pip install hd-bet)")
    if choice == "deepbet" and not deepbet_available():
        raise RuntimeError("--skull-strip deepbet: deepbet is not installed "
                           "(pip install -e .[prepare], or pip install deepbet)")
    if choice == "deepbet" and not has_t1:
        raise RuntimeError("--skull-strip deepbet needs a T1 scan of the subject")
    if choice == "mask" and not has_user_mask:
        raise RuntimeError("--skull-strip mask needs --mask-dir")
    if choice != "auto":
        return choice
    if has_user_mask:  # supplied masks win over any installed tool
        return "mask"
    if hdbet_available():
        return "hdbet"
    stripped = looks_skull_stripped(image)
    if deepbet_available() and has_t1 and not stripped:
        return "deepbet"
    return "nonzero" if stripped else "template"


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


_DEEPBET: dict[str, object] = {}


def deepbet_mask(image: sitk.Image, subject: str) -> sitk.Image:
    """deepbet's brain mask of a T1 image (same grid), CPU, the ITK thread count.

    deepbet takes a nibabel image (it reorients to RAS itself and resizes internally), so
    the SimpleITK image is handed over in memory with its geometry; the network and its
    weights are loaded once per process.
    """
    import nibabel as nib
    import torch

    from benchmark.data.prepare.steps import _ras_affine, _xyz

    torch.set_num_threads(max(1, sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()))
    if "bet" not in _DEEPBET:
        from deepbet import BrainExtraction

        _DEEPBET["bet"] = BrainExtraction(no_gpu=not torch.cuda.is_available())
    affine = _ras_affine(np.array(image.GetOrigin()), np.array(image.GetDirection()).reshape(3, 3),
                         np.array(image.GetSpacing()))
    nifti = nib.Nifti1Image(_xyz(image).astype(np.float32), affine)
    try:
        _, mask_img, _ = _DEEPBET["bet"].run(nifti)
    except Exception as err:  # noqa: BLE001 - deepbet asserts on empty foreground etc.
        raise PrepareError(subject, f"deepbet failed: {type(err).__name__}: {err}") from None
    mask = sitk.GetImageFromArray(np.transpose(np.asarray(mask_img.dataobj) > 0,
                                               (2, 1, 0)).astype(np.uint8))
    mask.CopyInformation(image)
    return mask


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
