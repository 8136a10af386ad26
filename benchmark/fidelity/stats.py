"""Physical statistics of a lesion in a brain MR volume, measured the same way on real and
synthetic data (docs/fidelity.md).

Everything is computed from (image, brain mask, lesion mask, voxel size, sequence) alone,
so a synthetic volume gets no help from knowing its generator: the tissues are found by a
3-class Gaussian mixture on the brain's non-lesion intensities, ordered by the sequence's
tissue contrast; the ventricles are the large CSF components deep inside the brain.

Statistics of one volume (:func:`lesion_statistics`):
    volume_ml, n_components, largest_share  size: total lesion volume, connected components
        (26-connectivity) of at least ``min_component_ml``, the largest one's share
    intensity_percentile   median lesion intensity as a percentile of the non-lesion brain
    water_share            (mean lesion - mean WM) / (mean CSF - mean WM): where the lesion
        sits between white matter (0) and CSF (1); unchanged by any affine intensity
        normalisation (the synthetic generator's own parameter: lesions.py)
    ratio_wm, ratio_gm     mean lesion intensity / mean WM (GM) intensity (in the intensities
        given: normalise first for a comparison across data sets)
    cnr_wm, cnr_gm         (mean lesion - mean WM (GM)) / std of WM (GM) intensities
    cv                     within-lesion std / mean (texture)
    gradient_ratio         mean gradient magnitude inside the lesion / inside WM
    dist_ventricles_mm     median distance of lesion voxels to the ventricles
    dist_surface_mm        median distance of lesion voxels to the brain's surface (cortex)
    wm_share, gm_share     shares of lesion voxels whose surroundings are WM / GM
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Tissue order by mean intensity, darkest first, per sequence (spin-echo T2: water bright;
# T1: water dark; FLAIR: free water suppressed, grey matter slightly above white).
TISSUE_ORDER = {
    "t1": ("csf", "gm", "wm"),
    "t1c": ("csf", "gm", "wm"),
    "t2": ("wm", "gm", "csf"),
    "flair": ("csf", "wm", "gm"),
}
SEQUENCES = tuple(TISSUE_ORDER)


@dataclass(frozen=True)
class Tissues:
    """Hard tissue classes of the non-lesion brain voxels: (H, W, D) bool each."""

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray


def _check(image: np.ndarray, brain: np.ndarray, lesion: np.ndarray | None) -> None:
    if image.ndim != 3:
        raise ValueError(f"image must be 3-D, got shape {image.shape}")
    for name, m in (("brain", brain), ("lesion", lesion)):
        if m is not None and m.shape != image.shape:
            raise ValueError(f"{name} mask {m.shape} does not match the image {image.shape}")
    if not brain.any():
        raise ValueError("the brain mask is empty")
    if not np.isfinite(image[brain]).all():
        raise ValueError("the image has NaN/inf voxels inside the brain")


def tissue_classes(image: np.ndarray, brain: np.ndarray, sequence: str,
                   exclude: np.ndarray | None = None, seed: int = 0,
                   max_samples: int = 50_000) -> Tissues:
    """CSF/GM/WM by a 3-component Gaussian mixture on the brain's intensities (without
    ``exclude``, e.g. the lesion), components named by the sequence's tissue order."""
    from sklearn.mixture import GaussianMixture

    if sequence not in TISSUE_ORDER:
        raise ValueError(f"unknown sequence {sequence!r}; allowed: {', '.join(TISSUE_ORDER)}")
    region = brain if exclude is None else brain & ~exclude
    values = image[region].astype(np.float64)
    rng = np.random.default_rng(seed)
    fit_on = values if values.size <= max_samples else rng.choice(values, max_samples, False)
    gmm = GaussianMixture(3, random_state=seed, n_init=2).fit(fit_on[:, None])
    order = np.argsort(gmm.means_.ravel())  # darkest first
    labels = np.full(image.shape, -1, dtype=np.int8)
    labels[region] = np.argsort(order)[gmm.predict(values[:, None])]
    names = TISSUE_ORDER[sequence]
    return Tissues(**{name: labels == rank for rank, name in enumerate(names)})


def ventricles(tissues: Tissues, brain: np.ndarray, spacing_mm: float,
               min_depth_mm: float = 12.0, min_volume_ml: float = 0.5) -> np.ndarray:
    """The lateral ventricles, approximately: CSF components (26-connected) that reach at
    least ``min_depth_mm`` inside the brain and hold at least ``min_volume_ml``; sulcal
    CSF lies near the surface. (H, W, D) bool (may be empty)."""
    depth = ndimage.distance_transform_edt(brain) * spacing_mm
    labels, n = ndimage.label(tissues.csf, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.zeros(brain.shape, bool)
    voxel_ml = spacing_mm ** 3 / 1000.0
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    deepest = ndimage.maximum(depth, labels, index=np.arange(1, n + 1))
    keep = np.flatnonzero((sizes * voxel_ml >= min_volume_ml) & (deepest >= min_depth_mm)) + 1
    return np.isin(labels, keep)


def components(lesion: np.ndarray, spacing_mm: float, min_component_ml: float = 0.0
               ) -> np.ndarray:
    """Volumes (mL) of the lesion's 26-connected components of at least min_component_ml."""
    labels, n = ndimage.label(lesion, structure=np.ones((3, 3, 3)))
    if n == 0:
        return np.zeros(0)
    sizes = np.bincount(labels.ravel())[1:] * spacing_mm ** 3 / 1000.0
    return np.sort(sizes[sizes >= min_component_ml])[::-1]


def lesion_statistics(image: np.ndarray, brain: np.ndarray, lesion: np.ndarray,
                      spacing_mm: float, sequence: str, min_component_ml: float = 0.0,
                      tissues: Tissues | None = None) -> dict[str, float]:
    """The statistics of the module docstring for one volume. image: (H, W, D) float,
    brain/lesion: (H, W, D) bool on an isotropic grid of ``spacing_mm``."""
    image = np.asarray(image, dtype=np.float64)
    brain, lesion = np.asarray(brain, bool), np.asarray(lesion, bool)
    _check(image, brain, lesion)
    lesion = lesion & brain
    comps = components(lesion, spacing_mm, min_component_ml)
    out = {"volume_ml": float(lesion.sum() * spacing_mm ** 3 / 1000.0),
           "n_components": int(comps.size),
           "largest_share": float(comps[0] / comps.sum()) if comps.size else float("nan")}
    if not lesion.any():
        return out
    if tissues is None:
        tissues = tissue_classes(image, brain, sequence, exclude=lesion)
    les = image[lesion]
    healthy = np.sort(image[brain & ~lesion])
    out["intensity_percentile"] = float(
        100.0 * np.searchsorted(healthy, np.median(les)) / max(healthy.size, 1))
    wm_mean, csf_mean = image[tissues.wm].mean(), image[tissues.csf].mean()
    out["water_share"] = float((les.mean() - wm_mean) / (csf_mean - wm_mean))
    for name in ("wm", "gm"):
        tissue = image[getattr(tissues, name)]
        out[f"ratio_{name}"] = float(les.mean() / tissue.mean())
        out[f"cnr_{name}"] = float((les.mean() - tissue.mean()) / max(tissue.std(), 1e-12))
    out["cv"] = float(les.std() / abs(les.mean())) if les.mean() else float("nan")
    grad = np.sqrt(sum(g ** 2 for g in np.gradient(image, spacing_mm)))
    out["gradient_ratio"] = float(grad[lesion].mean() / max(grad[tissues.wm].mean(), 1e-12))
    vent = ventricles(tissues, brain, spacing_mm)
    if vent.any():
        out["dist_ventricles_mm"] = float(np.median(
            ndimage.distance_transform_edt(~vent)[lesion]) * spacing_mm)
    else:
        out["dist_ventricles_mm"] = float("nan")
    surface = ndimage.distance_transform_edt(brain) * spacing_mm
    out["dist_surface_mm"] = float(np.median(surface[lesion]))
    # the tissue a lesion sits in: the majority class in a 2-voxel shell around it
    shell = ndimage.binary_dilation(lesion, iterations=2) & ~lesion & brain
    n_shell = max(int(shell.sum()), 1)
    out["wm_share"] = float((shell & tissues.wm).sum() / n_shell)
    out["gm_share"] = float((shell & tissues.gm).sum() / n_shell)
    return out


def tissue_statistics(image: np.ndarray, brain: np.ndarray, sequence: str) -> dict[str, float]:
    """Healthy contrast of a volume: where GM sits between WM (0) and CSF (1), the GM/WM
    and CSF/WM intensity ratios, the GM-WM contrast-to-noise ratio and the CSF share of
    the brain (a volume without lesion)."""
    image = np.asarray(image, dtype=np.float64)
    brain = np.asarray(brain, bool)
    _check(image, brain, None)
    t = tissue_classes(image, brain, sequence)
    wm, gm, csf = image[t.wm], image[t.gm], image[t.csf]
    # how busy the healthy anatomy is: the mean gradient magnitude inside the brain (eroded
    # by 2 voxels, away from the skull-stripping edge), relative to the GM-WM step
    inner = ndimage.binary_erosion(brain, iterations=2)
    grad = np.sqrt(sum(g ** 2 for g in np.gradient(image)))
    step = abs(gm.mean() - wm.mean())
    return {"gm_position": float((gm.mean() - wm.mean()) / (csf.mean() - wm.mean())),
            "gm_wm_ratio": float(gm.mean() / wm.mean()),
            "csf_wm_ratio": float(csf.mean() / wm.mean()),
            "cnr_gm_wm": float((gm.mean() - wm.mean()) / max(wm.std(), 1e-12)),
            "csf_share": float(t.csf.sum() / brain.sum()),
            "edge_density": float(grad[inner].mean() / max(step, 1e-12)) if inner.any()
            else float("nan"),
            "wm_cv": float(wm.std() / abs(wm.mean()))}
