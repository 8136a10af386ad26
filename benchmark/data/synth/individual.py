"""Individual anatomy: real healthy brains' tissue maps in place of the warped template.

A diagnostic for issue 27 (does the synthetic board's smooth, population-average anatomy
decide its ranking?), not part of any generator version: the embedded default never
reads real scans. ``python -m benchmark data synth --anatomy-from PREPARED --out ROOT``
renders the same cohorts, sites, lesions and noise as the default, but every subject's
grey/white-matter/CSF fractions come from one real brain instead of from the MNI ICBM152
template (an average of 152 brains, hence smoother than any one brain). The subject's
random warp (affine, smooth displacement, ventricle growth, tumour mass effect) is
applied to the individual maps as to the template.

Where the maps come from: PREPARED is a healthy T1 data root written by
``benchmark data prepare`` (affine registration to the MNI template; the transform of
each scan is kept in ``Data/.prepare/<cohort>/``), whose raw scans each have an
anatomical label map beside them (``<scan>_DLMUSE.nii.gz``, as the shared IXI cohort).
Each label is a tissue by its anatomical definition (``CSF_LABELS``, ``WM_LABELS``,
every other label grey matter). The labels leave most sulcal CSF inside the cortical
labels, so a grey-matter voxel darker than its label's median T1 is a partial volume of
grey matter and CSF, linearly between that median and the lateral ventricles' median
(:func:`tissue_fractions`; a label's median is local, so the scan's slow bias field
matters little). The three maps are carried into template space by the scan's own
transform (linear interpolation), not smoothed: the template's 0.7 mm smoothing is the
anti-aliasing of its 1 mm maps, and these scans are 2 mm already.
Tried first and rejected on physical grounds before anything was trained: a Gaussian
mixture of the T1 values alone (grey matter 30-33 % of the brain against 52 % in the
template and ~55 % by these labels: cortex and deep grey matter read as part white
matter at 2 mm), and the labels alone (no sulci: rendered brains without the dark
sulcal CSF every real T1 shows).

Anatomies are split by scan: the first two thirds (sorted by name) serve the IXI
training/validation pool only, the rest every test subject (IXI test, the lesion cohorts
and their healthy variants), so no test anatomy is seen in training.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from benchmark.data import layout
from benchmark.data.synth.anatomy import Template

# MUSE ROI ids (the Neuromorphometrics labelling DLMUSE uses) by tissue; every other
# label > 0 is grey matter (cortex, cerebellar cortex, deep grey nuclei). Checked against
# the median T1 of each label on IXI012: the CSF labels are the darkest (514-819), the
# white-matter ones 1208-1764, the cortical ones 722-1306.
CSF_LABELS = (1, 4, 11, 46, 49, 50, 51, 52)  # CSF, 3rd/4th/lateral/inferior lateral ventricles
VENTRICLE_LABELS = (51, 52)  # lateral ventricles: the scan's pure-CSF intensity
WM_LABELS = (35, 40, 41, 61, 62, 69, *range(81, 96))  # brainstem, cerebellar and cerebral WM,
# ventral diencephalon, optic chiasm, lobar WM, fornix, internal capsule, corpus callosum
LABEL_SUFFIX = "_DLMUSE.nii.gz"
METHOD = {"tissue": "anatomical labels (MUSE ids); sulcal CSF in grey-matter labels from T1 "
                    "(linear between the label's median and the lateral ventricles')",
          "csf_labels": list(CSF_LABELS), "wm_labels": list(WM_LABELS),
          "to_template": "the scan's prepare transform, linear",
          "train_share": 2 / 3}


def healthy_scans(root: Path) -> list[str]:
    """Subject names of a prepared data root's healthy T1 scans (Data/Train/ixi), sorted."""
    folder = Path(root) / "Data" / "Train" / layout.HEALTHY_FOLDER / "t1"
    names = sorted(p.name[: -len("_t1.nii.gz")] for p in folder.glob("*_t1.nii.gz"))
    if len(names) < 3:
        raise FileNotFoundError(
            f"--anatomy-from {root}: needs a prepared data root with >= 3 healthy T1 scans "
            f"in {folder} (python -m benchmark data prepare --cohort ixi ...); found {len(names)}")
    return names


def scan_files(root: Path, name: str) -> dict[str, Path]:
    """The raw T1, its label map and the prepare transform of one prepared scan (from the
    record ``data prepare`` keeps in Data/.prepare/)."""
    records = list((Path(root) / "Data" / ".prepare").glob(f"*/{name}.json"))
    if not records:
        raise FileNotFoundError(f"--anatomy-from {root}: no prepare record for {name} "
                                "(Data/.prepare/*/<scan>.json); prepare it with this code")
    record = json.loads(records[0].read_text())
    raw = Path(record["inputs"]["t1"])
    labels = raw.with_name(raw.name.replace(".nii.gz", "").replace(".nii", "") + LABEL_SUFFIX)
    transform = records[0].parent / record["transforms"]["t1"]
    for what, path in (("raw T1", raw), ("label map", labels), ("transform", transform)):
        if not path.is_file():
            raise FileNotFoundError(f"--anatomy-from {root}: {name}'s {what} {path} is missing")
    return {"t1": raw, "labels": labels, "transform": transform}


def fingerprint(root: Path) -> dict:
    """What determines the anatomies: the method and the sha256 of every input."""
    files = {}
    for name in healthy_scans(root):
        for key, path in scan_files(root, name).items():
            files[f"{name}/{key}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"method": METHOD, "files": files}


def tissue_maps(labels: np.ndarray) -> dict[str, np.ndarray]:
    """One-hot CSF/GM/WM maps (float32) of a label array; 0 is background."""
    labels = np.asarray(labels).astype(np.int64)
    csf = np.isin(labels, CSF_LABELS)
    wm = np.isin(labels, WM_LABELS)
    gm = (labels > 0) & ~csf & ~wm
    return {k: v.astype(np.float32) for k, v in (("csf", csf), ("gm", gm), ("wm", wm))}


def tissue_fractions(t1: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """CSF/GM/WM fractions (float32) of a T1 scan and its label map (same grid): the
    labels' tissues, with each grey-matter voxel split into GM and CSF by its T1 between
    its label's median (pure GM) and the lateral ventricles' median (pure CSF)."""
    t1 = np.asarray(t1, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if t1.shape != labels.shape:
        raise ValueError(f"T1 {t1.shape} and label map {labels.shape} differ in shape")
    maps = tissue_maps(labels)
    ventricles = np.isin(labels, VENTRICLE_LABELS)
    if not ventricles.any():
        raise ValueError(f"the label map has no lateral ventricles (labels {VENTRICLE_LABELS})")
    pure_csf = float(np.median(t1[ventricles]))
    grey = maps["gm"] > 0
    values = t1[grey]
    uniq, inverse = np.unique(labels[grey], return_inverse=True)
    pure_gm = np.array([np.median(values[inverse == k]) for k in range(len(uniq))])[inverse]
    share = np.clip((pure_gm - values) / np.maximum(pure_gm - pure_csf, 1e-6), 0.0, 1.0)
    maps["csf"][grey] = share.astype(np.float32)
    maps["gm"][grey] = (1.0 - share).astype(np.float32)
    return maps


@functools.lru_cache(maxsize=64)
def individual_template(root: str, name: str) -> Template:
    """One scan's tissue maps in template space (1 mm) as a :class:`Template`."""
    import SimpleITK as sitk

    from benchmark.data.prepare import steps
    from benchmark.data.prepare.subject import template_for

    files = scan_files(Path(root), name)
    native = sitk.ReadImage(str(files["labels"]))
    t1 = sitk.ReadImage(str(files["t1"]))
    transform = sitk.ReadTransform(str(files["transform"]))
    grid = template_for(None).image  # the MNI template grid prepare registered to
    maps = {}
    fractions = tissue_fractions(sitk.GetArrayFromImage(t1), sitk.GetArrayFromImage(native))
    for tissue, onehot in fractions.items():
        image = sitk.GetImageFromArray(onehot)
        image.CopyInformation(native)
        moved = sitk.Resample(image, grid, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        maps[tissue] = np.clip(steps._xyz(moved), 0.0, 1.0).astype(np.float32)
    affine = steps._ras_affine(np.array(grid.GetOrigin()),
                               np.array(grid.GetDirection()).reshape(3, 3),
                               np.array(grid.GetSpacing()))
    brain = np.clip(maps["csf"] + maps["gm"] + maps["wm"], 0.0, 1.0)
    return Template(gm=maps["gm"], wm=maps["wm"], csf=maps["csf"], brain=brain,
                    world_to_voxel=np.linalg.inv(affine))


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
