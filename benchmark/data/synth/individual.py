"""Individual anatomy: real healthy T1 scans' tissue maps in place of the warped template.

A diagnostic for issue 27 (does the synthetic board's smooth, population-average anatomy
decide its ranking?), not part of any generator version: the embedded default never
reads real scans. ``python -m benchmark data synth --anatomy-from PREPARED --out ROOT``
renders the same cohorts, sites, lesions and noise as the default, but every subject's
grey/white-matter/CSF fractions come from one real scan of a prepared healthy T1 data
root (``benchmark data prepare``: skull-stripped, bias-corrected, affinely registered to
the MNI template, 2 mm), instead of from the MNI ICBM152 template (an average of 152
brains, hence smoother than any one brain). The subject's random warp (affine, smooth
displacement, ventricle growth, tumour mass effect) is applied to the individual maps as
to the template.

Tissue fractions: the two-tissue partial-volume model of the renderer itself (a voxel's
intensity is a mixture of its tissues' intensities, render.tissue_image), inverted: the
three tissue intensities are the means of a three-class Gaussian mixture of the brain's
T1 values (CSF < GM < WM), and a voxel between two adjacent means is that mixture of the
two tissues, linearly (a voxel beyond the outer means is pure). No smoothing: the
prepared scans are already B-spline resampled to 2 mm and the warp samples them with
linear interpolation (the template's 0.7 mm smoothing is the anti-aliasing of its 1 mm
-> 2 mm sampling). These choices are fixed before any method is trained on the result;
they are not chosen by the ranking they produce.

Anatomies are split by scan: the first two thirds (sorted by name) serve the IXI
training/validation pool only, the rest every test subject (IXI test, the lesion cohorts
and their healthy variants), so no test anatomy is seen in training.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from benchmark.data import layout
from benchmark.data.synth.anatomy import Template

# fixed before use (issue 27)
METHOD = {"tissue_means": "GaussianMixture(3) of the brain's T1 values", "seed": 0,
          "fractions": "linear partial volume between adjacent tissue means",
          "train_share": 2 / 3}


def tissue_means(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """The CSF, GM and WM intensities of a T1 brain: a 3-class Gaussian mixture's means,
    ascending (started at the 10th, 50th and 90th percentiles)."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    start = np.percentile(x, [10, 50, 90]).reshape(-1, 1)
    return np.sort(GaussianMixture(3, means_init=start, random_state=seed).fit(x).means_.ravel())


def tissue_fractions(image: np.ndarray, mask: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """CSF/GM/WM fractions of a T1 image inside ``mask`` (see the module's docstring), zero
    outside, and ``brain`` (the mask). All float32, the image's shape."""
    image = np.asarray(image, dtype=np.float64)
    inside = np.asarray(mask) > 0
    if image.shape != inside.shape:
        raise ValueError(f"image {image.shape} and mask {inside.shape} differ in shape")
    values = image[inside]
    if values.size < 100 or not np.isfinite(values).all():
        raise ValueError("tissue_fractions needs >= 100 finite brain voxels")
    csf_i, gm_i, wm_i = tissue_means(values, seed)
    wm = np.clip((values - gm_i) / (wm_i - gm_i), 0.0, 1.0)
    csf = np.clip((gm_i - values) / (gm_i - csf_i), 0.0, 1.0)
    out = {}
    for tissue, part in (("csf", csf), ("gm", 1.0 - wm - csf), ("wm", wm)):
        full = np.zeros(image.shape, dtype=np.float32)
        full[inside] = part
        out[tissue] = full
    out["brain"] = inside.astype(np.float32)
    return out


def healthy_scans(root: Path) -> list[str]:
    """Subject names of a prepared data root's healthy T1 scans (Data/Train/ixi), sorted."""
    folder = Path(root) / "Data" / "Train" / layout.HEALTHY_FOLDER / "t1"
    names = sorted(p.name[: -len("_t1.nii.gz")] for p in folder.glob("*_t1.nii.gz"))
    if len(names) < 3:
        raise FileNotFoundError(
            f"--anatomy-from {root}: needs a prepared data root with >= 3 healthy T1 scans "
            f"in {folder} (python -m benchmark data prepare --cohort ixi ...); found {len(names)}")
    return names


def _files(root: Path, name: str) -> dict[str, Path]:
    rel = layout.volume_paths(name, ("t1",))
    return {k: Path(root) / "Data" / v.lstrip("/") for k, v in rel.items()}


def fingerprint(root: Path) -> dict:
    """What determines the anatomies: the method and every scan's sha256 (for manifests)."""
    files = {}
    for name in healthy_scans(root):
        for key, path in _files(root, name).items():
            files[f"{name}/{key}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"method": METHOD, "files": files}


@functools.lru_cache(maxsize=64)
def individual_template(root: str, name: str) -> Template:
    """One prepared scan's tissue maps as a :class:`Template` (world = the scan's affine)."""
    import nibabel as nib

    paths = _files(Path(root), name)
    img = nib.load(paths["t1"])
    mask = np.asarray(nib.load(paths["mask"]).dataobj)
    maps = tissue_fractions(np.asarray(img.dataobj), mask, seed=METHOD["seed"])
    return Template(gm=maps["gm"], wm=maps["wm"], csf=maps["csf"], brain=maps["brain"],
                    world_to_voxel=np.linalg.inv(img.affine))


def assign(root: Path, n_pool: int, n_other: int, salt: int) -> tuple[list[str], list[str]]:
    """Scan names for ``n_pool`` IXI pool subjects (training anatomies, cycled) and
    ``n_other`` test subjects of one cohort (test anatomies, cycled from an offset
    ``salt`` so that cohorts do not all start on the same scan)."""
    names = healthy_scans(root)
    cut = max(1, round(len(names) * METHOD["train_share"]))
    train, test = names[:cut], names[cut:]
    pool = [train[i % len(train)] for i in range(n_pool)]
    other = [test[(salt + i) % len(test)] for i in range(n_other)]
    return pool, other
