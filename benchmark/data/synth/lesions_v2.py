"""Generator version 2: lesions calibrated to measured real statistics (docs/synthetic.md).

What changes from version 1 (lesions.py), each with the measurement it comes from
(docs/fidelity.md; `python -m benchmark experiment fidelity`):

- MSLUB: the lesion load per subject follows the 20 real MSLUB test patients (median
  16.4 mL, IQR 5.3-31.5 mL, range 0.66-52.6 mL; v1: median 0.94 mL), spread over as many
  visible lesions as theirs (components of more than 7 voxels at 2 mm: median 17, IQR
  9-28) plus tiny ones, with a skewed share of the load per lesion (a few large confluent
  lesions, many small). Contrast: the water share at which lesions of the real patient's
  load (patient07: 1.25 mL) reach its measured T2 contrast-to-noise against white matter
  (3.76; v1's lesions: 7.85), found by tools/calibrate_synthetic.py (U(0.22, 0.38); v1:
  U(0.4, 0.75)).
- Brats21: whole-tumour volume median 80 mL, log-normal sigma 0.6 (v1: median 35 mL):
  the order of the BraTS 2018 sub-region medians (oedema 46.9 + core 10.8 + enhancing 14.6
  mL, third-party, n = 285) and of the real case HG0015 (181 mL). Contrast unchanged (the
  real T2 tumour measured as v1's).
- ATLAS_v2: lesion volume per subject from the 655 ATLAS v2.0 training masks (median 5.29
  mL, IQR 1.17-36.1 mL, log-normal; v1: median 11.2 mL) and their number of components
  (47 % of subjects have one; median 2). Contrast unchanged (no real stroke scan here).
- WMH and every healthy tissue: unchanged (no real WMH scan here; the healthy T1 contrast
  of 20 real IXI scans measured within 8 % of v1's), so v1 and v2 share their IXI data.

The parameters are fixed here, from those measurements, before any method was trained on
version 2; they are recorded in the data set's manifest (:func:`lesion_parameters`).
"""
from __future__ import annotations

import numpy as np

from benchmark.data.synth.anatomy import GRID_SHAPE, SPACING_MM, Anatomy
from benchmark.data.synth.lesions import (
    Lesion,
    _empty,
    _pick_voxel,
    blob,
    stroke_lesion,
    stroke_site,
    tumour_body,
)

VOXEL_ML = SPACING_MM ** 3 / 1000.0

PARAMETERS = {
    "ms": {
        "volume_ml": {"median": 16.4, "sigma": 1.32, "range": (0.5, 55.0)},
        "visible_lesions": {"median": 17, "sigma": 0.75, "range": (3, 45)},
        "load_concentration": 0.5,      # Dirichlet alpha of the lesions' shares of the load
        "tiny_lesions": (10, 40),       # 1-4 voxel lesions per subject (uniform count)
        "water_share": (0.22, 0.38),    # T2 contrast-to-noise vs WM 3.76, as patient07's
        "periventricular": 0.75,        # share of lesions at the ventricles (as v1)
    },
    "tumour": {"volume_ml": {"median": 80.0, "sigma": 0.6, "range": (8.0, 400.0)}},
    "stroke": {"volume_ml": {"median": 5.29, "sigma": 2.54, "range": (0.1, 400.0)},
               "single_component": 0.47, "largest_share": 0.89},
}


def lesion_parameters() -> dict:
    return PARAMETERS


def _lognormal(rng: np.random.Generator, spec: dict, quantile: float | None = None) -> float:
    """A draw from the log-normal ``spec`` (median, sigma, clipped to range), or its value
    at ``quantile`` in (0, 1): subjects given evenly spread quantiles (subjects.py) make a
    cohort of 15 follow the distribution instead of 15 independent draws."""
    from scipy.stats import norm

    z = rng.normal() if quantile is None else float(norm.ppf(quantile))
    value = float(np.exp(np.log(spec["median"]) + spec["sigma"] * z))
    return float(np.clip(value, *spec["range"]))


def _radius_voxels(volume_ml: float, elongation: float = 1.0) -> float:
    """Semi-axis r (voxels) of an ellipsoid (elongation * r, r, r) of the given volume."""
    voxels = volume_ml / VOXEL_ML
    return float((3 * voxels / (4 * np.pi * elongation)) ** (1 / 3))


def sized_blob(rng: np.random.Generator, out: np.ndarray, centre, volume_ml: float,
               axes=(1.0, 1.0, 1.0), irregularity: float = 0.2, axis=None) -> float:
    """Paste an irregular ellipsoid (lesions.blob) of about ``volume_ml`` (voxels with a
    fraction >= 0.5) into ``out`` (max); returns its radius scale (voxels).

    The radial perturbation that makes a blob irregular also changes its volume (by up to
    about exp((3 irregularity)^2 / 2): 2x at 0.45, and differently in every draw), so each
    draw is measured and, while more than 10 % off, redrawn with the radius corrected (at
    most four draws; the closest is kept)."""
    axes = np.asarray(axes, dtype=float)
    r = _radius_voxels(volume_ml, float(np.prod(axes)))
    best, best_r, best_err = None, r, np.inf
    for _ in range(4):
        one = _empty()
        blob(rng, one, centre, r * axes, irregularity=irregularity, axis=axis)
        got = int((one >= 0.5).sum()) * VOXEL_ML
        err = abs(np.log(max(got, VOXEL_ML / 2) / volume_ml))
        if err < best_err:
            best, best_r, best_err = one, r, err
        if err < np.log(1.1) or got == 0:
            break
        r *= (volume_ml / got) ** (1 / 3)
    np.maximum(out, best, out=out)
    return best_r


# --------------------------------------------------------------------------- tumour
def plan_tumour(rng: np.random.Generator, reference: Anatomy, quantile: float | None = None
                ) -> tuple[np.ndarray, float]:
    """As v1, with the radius from a whole-tumour volume drawn from PARAMETERS."""
    from scipy import ndimage

    radius = _radius_voxels(_lognormal(rng, PARAMETERS["tumour"]["volume_ml"], quantile))
    depth = ndimage.distance_transform_edt(reference.mask)
    ok = (reference.gm + reference.wm > 0.8) & (depth > min(radius * 0.7, 12))
    ok[:, :, :10] = False  # gliomas are cerebral: keep the centre above the cerebellum
    return _pick_voxel(rng, ok, np.array(GRID_SHAPE) / 2), radius


def tumour(rng: np.random.Generator, anatomy: Anatomy, centre, radius: float) -> Lesion:
    """As v1 (oedema around a solid core, optional necrosis, heterogeneous), with the
    whole tumour sized to the volume of the plan's radius (a sphere of ``radius``)."""
    frac = _empty()
    sized_blob(rng, frac, centre, 4 / 3 * np.pi * radius ** 3 * VOXEL_ML,
               rng.uniform(0.8, 1.2, 3), irregularity=0.3)
    return tumour_body(rng, frac, centre, radius)


# --------------------------------------------------------------------------- MS
def ms(rng: np.random.Generator, anatomy: Anatomy, quantile: float | None = None) -> Lesion:
    """A subject's MS lesion load spread over visible and tiny ovoid lesions."""
    p = PARAMETERS["ms"]
    vdist = anatomy.ventricle_distance()
    periventricular = (vdist >= 1) & (vdist <= 5) & (anatomy.wm > 0.6)
    deep = (anatomy.wm > 0.8) & (vdist > 5)
    total = _lognormal(rng, p["volume_ml"], quantile)
    # more load, more lesions (real MSLUB: visible lesions grow with the load); rank-matched
    n = int(np.rint(_lognormal(rng, p["visible_lesions"],
                               None if quantile is None else 0.5 + 0.6 * (quantile - 0.5))))
    shares = rng.dirichlet(np.full(n, p["load_concentration"]))
    centre_v = (np.array(np.nonzero(vdist == 0)).mean(1) if (vdist == 0).any()
                else np.array(GRID_SHAPE) / 2)
    frac = _empty()
    share = np.zeros(GRID_SHAPE, dtype=np.float32)
    volumes = [max(total * s, 8 * VOXEL_ML) for s in shares]  # visible: > 7 voxels
    n_tiny = int(rng.integers(*p["tiny_lesions"]))
    volumes += list(rng.uniform(1, 4, n_tiny) * VOXEL_ML)
    for volume in volumes:
        where = periventricular if rng.random() < p["periventricular"] else deep
        c = _pick_voxel(rng, where, np.array(GRID_SHAPE) / 2)
        axis = c - centre_v
        axis[2] *= 0.3  # Dawson's fingers: mostly in-plane, away from the ventricles
        elongation = float(rng.uniform(1.3, 2.0))
        one = _empty()
        r = sized_blob(rng, one, c, volume, (elongation, 1.0, 1.0), irregularity=0.15,
                       axis=axis)
        if r > 3:  # large (confluent) lesions are more irregular
            one[:] = 0
            sized_blob(rng, one, c, volume, (elongation, 1.0, 1.0), irregularity=0.25, axis=axis)
        share = np.where(one > frac, rng.uniform(*p["water_share"]), share).astype(np.float32)
        np.maximum(frac, one, out=frac)
    return Lesion(frac, share)


# --------------------------------------------------------------------------- stroke
def stroke(rng: np.random.Generator, anatomy: Anatomy, quantile: float | None = None) -> Lesion:
    """As v1 (territories, hemisphere, contrast), with the volume and the number of
    components of ATLAS v2.0."""
    p = PARAMETERS["stroke"]
    centre, side, _, tissue = stroke_site(rng, anatomy)
    total = _lognormal(rng, p["volume_ml"], quantile)
    # 47 % of ATLAS subjects have one component; then 2, 3, 4, 5+ in 21, 12, 8, 12 %
    extra = 0 if rng.random() < p["single_component"] else int(rng.geometric(0.45))
    main = total * (p["largest_share"] if extra else 1.0)
    frac = _empty()
    radius = sized_blob(rng, frac, centre, main, rng.uniform(0.75, 1.25, 3), irregularity=0.45)
    for _ in range(extra):  # satellites in the same territory share the rest of the volume
        offset = rng.normal(0, max(radius, 3.0), 3)
        sized_blob(rng, frac, centre + offset, (total - main) / extra,
                   rng.uniform(0.75, 1.25, 3), irregularity=0.4)
    return stroke_lesion(rng, frac, side, tissue)


__all__ = ["PARAMETERS", "lesion_parameters", "ms", "plan_tumour", "stroke", "tumour"]
