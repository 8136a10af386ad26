"""Synthetic lesions for the four unhealthy cohorts, with exact voxel labels.

A lesion is a fraction map f in [0, 1] (how much of a voxel is lesion) and a target
intensity. Lesion tissue is written as a mixture of the subject's own intensities,
``target = I_base + s (I_CSF - I_base)`` with a water share s (base: the voxel's own
healthy intensity, or a GM/WM base for a tumour that replaces tissue), so one description gives
the right sign on both sequences (oedema, necrosis and chronic infarcts are water-rich:
bright on T2, dark on T1). Voxels with f >= 0.5 inside the brain become
``I + w (target - I)`` with w in [0.5, 1]; nothing else is touched, so the label is exactly
the set of altered voxels.

Cohorts (sizes in mm; one voxel is 2 mm):
- tumour (BraTS-like): one mass, radius 8-35 mm, oedema around a solid core with an
  optional necrotic centre, heterogeneous, pushing the surrounding anatomy away;
- ms (MSLUB-like): 2-30 ovoid lesions of 2-12 mm, 75 % periventricular with the long
  axis pointing away from the ventricles (Dawson's fingers), the rest in deep WM;
- stroke (ATLAS-like): one infarct in an arterial territory (MCA, ACA, PCA) or a lacune
  in the deep grey matter, radius 3-45 mm, cortical and subcortical, one hemisphere;
- wmh (WMH-like): a periventricular band of variable width and coverage (caps and
  confluent rims) plus punctate deep lesions; a small water share: subtle on T1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from benchmark.data.synth.anatomy import GRID_ORIGIN_MM, GRID_SHAPE, SPACING_MM, Anatomy

Pathology = Literal["tumour", "ms", "stroke", "wmh"]
PATHOLOGIES = ("tumour", "ms", "stroke", "wmh")


@dataclass
class Lesion:
    """fraction, water_share (and base_wm): (H, W, D) float32 maps."""

    fraction: np.ndarray
    water_share: np.ndarray
    base_wm: np.ndarray | None = None  # WM weight (vs GM) of a replacing lesion's base
    spare_csf: bool = True  # False: the lesion replaces CSF too (tumour)

    def target(self, image: np.ndarray, intensities: dict) -> np.ndarray:
        """Lesion intensity. base_wm None: the voxel's own tissue gains water (MS, stroke,
        WMH), so a lesion always moves towards CSF, also in partial-volume voxels near the
        ventricles; otherwise the lesion replaces the tissue by a WM/GM base (tumour)."""
        if self.base_wm is None:
            base = image
        else:
            base = self.base_wm * intensities["wm"] + (1 - self.base_wm) * intensities["gm"]
        return base + self.water_share * (intensities["csf"] - base)

    def region(self, anatomy: Anatomy) -> np.ndarray:
        """Voxels the lesion may alter: f >= 0.5 inside the brain (outside CSF if spared)."""
        region = (self.fraction >= 0.5) & anatomy.mask
        if self.spare_csf:
            region &= anatomy.csf < 0.5
        return region

    def insert(self, image: np.ndarray, anatomy: Anatomy, intensities: dict) -> np.ndarray:
        """image: (H, W, D) blurred healthy image; returns a copy with the lesion pasted."""
        region = self.region(anatomy)
        weight = 0.5 + 0.5 * np.clip((self.fraction - 0.5) / 0.3, 0.0, 1.0)
        lesioned = image + weight * (self.target(image, intensities) - image)
        return np.where(region, lesioned, image).astype(np.float32)


def _mm_to_voxel(mm) -> np.ndarray:
    return (np.asarray(mm, dtype=float) - GRID_ORIGIN_MM) / SPACING_MM


def _random_rotation(rng: np.random.Generator, axis=None) -> np.ndarray:
    """Columns = lesion axes; the first is `axis` when given (ovoid orientation)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if axis is not None:
        a = np.asarray(axis, dtype=float)
        a = a / max(np.linalg.norm(a), 1e-9)
        q[:, 0] = a
        q, _ = np.linalg.qr(q)
        q[:, 0] *= np.sign(q[:, 0] @ a)
    return q


def blob(rng, out: np.ndarray, centre, radii, irregularity: float = 0.2, axis=None,
         soft: float = 0.25) -> None:
    """Paste an irregular ellipsoid's fraction map into `out` (max), in a bounding box.

    centre: voxel coords; radii: 3 semi-axes in voxels; irregularity: relative std of a
    smooth radial perturbation; soft: edge width in units of the radius.
    """
    radii = np.maximum(np.asarray(radii, dtype=float), 0.6)
    # r_eff >= r exp(-2 irregularity), so nothing lies beyond this extent (no box edges)
    extent = int(np.ceil(radii.max() * (1 + 2 * soft) * np.exp(2 * irregularity) + 1))
    c = np.asarray(centre, dtype=float)
    lo = np.maximum(np.floor(c).astype(int) - extent, 0)
    hi = np.minimum(np.floor(c).astype(int) + extent + 1, GRID_SHAPE)
    if np.any(hi <= lo):
        return
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    rot = _random_rotation(rng, axis)
    grid = np.indices(tuple(hi - lo), dtype=np.float32) + lo.reshape(3, 1, 1, 1) - c.reshape(3, 1, 1, 1)
    local = np.einsum("ji,j...->i...", rot, grid) / radii.reshape(3, 1, 1, 1)
    r = np.sqrt((local**2).sum(0))
    noise = ndimage.gaussian_filter(rng.normal(size=r.shape), max(1.0, radii.min() / 2))
    noise /= max(float(noise.std()), 1e-6)
    r_eff = r * np.exp(-irregularity * np.clip(noise, -2.0, 2.0))
    frac = np.clip(0.5 + (1.0 - r_eff) / (2 * soft), 0.0, 1.0).astype(np.float32)
    np.maximum(out[box], frac, out=out[box])


def _pick_voxel(rng, candidates: np.ndarray, fallback) -> np.ndarray:
    idx = np.flatnonzero(candidates)
    if idx.size == 0:
        return np.asarray(fallback, dtype=float)
    return np.array(np.unravel_index(rng.choice(idx), GRID_SHAPE), dtype=float)


def _empty() -> np.ndarray:
    return np.zeros(GRID_SHAPE, dtype=np.float32)


# --------------------------------------------------------------------------- tumour
def plan_tumour(rng: np.random.Generator, reference: Anatomy) -> tuple[np.ndarray, float]:
    """Centre (voxels) and radius (voxels) of a tumour, chosen before warping (mass effect)."""
    radius = float(np.exp(rng.uniform(np.log(4.0), np.log(17.5))))
    depth = ndimage.distance_transform_edt(reference.mask)
    ok = (reference.gm + reference.wm > 0.8) & (depth > min(radius * 0.7, 12))
    ok[:, :, :10] = False  # gliomas are cerebral: keep the centre above the cerebellum
    return _pick_voxel(rng, ok, np.array(GRID_SHAPE) / 2), radius


def tumour(rng, anatomy: Anatomy, centre, radius: float) -> Lesion:
    frac = _empty()
    blob(rng, frac, centre, radius * rng.uniform(0.8, 1.2, 3), irregularity=0.3)
    return tumour_body(rng, frac, centre, radius)


def tumour_body(rng, frac: np.ndarray, centre, radius: float) -> Lesion:
    """The tumour inside its outline ``frac`` (oedema): a solid core, a necrotic centre in
    70 %, heterogeneous water shares (shared by generator versions 1 and 2)."""
    core, necrosis = _empty(), _empty()
    core_c = np.asarray(centre) + rng.normal(0, radius * 0.15, 3)
    core_r = radius * rng.uniform(0.35, 0.65)
    blob(rng, core, core_c, core_r * rng.uniform(0.8, 1.2, 3), irregularity=0.35)
    if rng.random() < 0.7:
        blob(rng, necrosis, core_c, core_r * rng.uniform(0.3, 0.7, 3), irregularity=0.35)
    share = np.full(GRID_SHAPE, rng.uniform(0.5, 0.8), dtype=np.float32)  # oedema
    share += core * (rng.uniform(0.1, 0.3) - share)  # solid / enhancing tumour
    share += necrosis * (rng.uniform(0.8, 1.0) - share)
    texture = ndimage.gaussian_filter(rng.normal(size=GRID_SHAPE).astype(np.float32), 1.5)
    share = np.clip(share * (1 + 0.09 * texture / max(float(texture.std()), 1e-6)), 0, 1)
    base_wm = np.where(core > 0.5, 0.0, 1.0).astype(np.float32)
    return Lesion(np.maximum(frac, np.maximum(core, necrosis)), share, base_wm, spare_csf=False)


# --------------------------------------------------------------------------- MS
def ms(rng, anatomy: Anatomy) -> Lesion:
    vdist = anatomy.ventricle_distance()
    periventricular = (vdist >= 1) & (vdist <= 5) & (anatomy.wm > 0.6)
    deep = (anatomy.wm > 0.8) & (vdist > 5)
    n = int(np.rint(np.exp(rng.uniform(np.log(2), np.log(30)))))
    scale = float(np.exp(rng.uniform(np.log(0.8), np.log(2.0))))  # voxels
    frac = _empty()
    share = np.zeros(GRID_SHAPE, dtype=np.float32)
    centre_v = np.array(np.nonzero(vdist == 0)).mean(1) if (vdist == 0).any() else np.array(GRID_SHAPE) / 2
    for _ in range(n):
        where = periventricular if rng.random() < 0.75 else deep
        c = _pick_voxel(rng, where, np.array(GRID_SHAPE) / 2)
        axis = c - centre_v
        axis[2] *= 0.3  # Dawson's fingers: mostly in-plane, away from the ventricles
        r = scale * float(np.exp(rng.normal(0, 0.35)))
        one = _empty()
        blob(rng, one, c, (r * rng.uniform(1.3, 2.0), r, r), irregularity=0.15, axis=axis)
        share = np.where(one > frac, rng.uniform(0.4, 0.75), share).astype(np.float32)
        np.maximum(frac, one, out=frac)
    return Lesion(frac, share)


# --------------------------------------------------------------------------- stroke
# Arterial territories as boxes in MNI mm, x given for the left hemisphere side |x|:
# (|x| range, y range, z range, radius range in mm, probability)
TERRITORIES = {
    "MCA": ((28, 58), (-60, 30), (-10, 50), (6, 45), 0.55),
    "ACA": ((4, 20), (-25, 50), (15, 57), (5, 30), 0.15),
    "PCA": ((6, 35), (-100, -62), (-20, 22), (5, 30), 0.15),
    "lacunar": ((12, 28), (-25, 15), (-4, 18), (3, 8), 0.15),
}


def stroke_site(rng, anatomy: Anatomy) -> tuple[np.ndarray, float, tuple, np.ndarray]:
    """An infarct's centre (voxels) in a random territory of a random hemisphere:
    (centre, side (-1 left, +1 right), the territory's radius range in mm, the parenchyma
    mask). Shared by generator versions 1 and 2."""
    names = list(TERRITORIES)
    name = names[rng.choice(len(names), p=[TERRITORIES[n][4] for n in names])]
    xs, ys, zs, rs, _ = TERRITORIES[name]
    side = rng.choice([-1.0, 1.0])
    tissue = anatomy.gm + anatomy.wm > 0.6
    centre = None
    for _ in range(50):
        mm = np.array([side * rng.uniform(*xs), rng.uniform(*ys), rng.uniform(*zs)])
        v = _mm_to_voxel(mm)
        iv = tuple(np.clip(np.rint(v).astype(int), 0, np.array(GRID_SHAPE) - 1))
        if tissue[iv]:
            centre = v
            break
    if centre is None:
        centre = _pick_voxel(rng, tissue, np.array(GRID_SHAPE) / 2)
    return centre, side, rs, tissue


def stroke_lesion(rng, frac: np.ndarray, side: float, tissue: np.ndarray) -> Lesion:
    """Keep the infarct's outline ``frac`` to its hemisphere and the parenchyma, and give it
    a mottled water share (shared by generator versions 1 and 2)."""
    midline = _mm_to_voxel([0, 0, 0])[0]
    hemisphere = (np.arange(GRID_SHAPE[0]) - midline) * side > 0
    frac *= hemisphere[:, None, None]
    frac *= tissue  # infarcts are in parenchyma; sulcal CSF stays CSF
    share = ndimage.gaussian_filter(rng.uniform(0.2, 0.8, GRID_SHAPE).astype(np.float32), 1.0)
    share = np.clip(share + rng.uniform(-0.1, 0.15), 0.25, 0.9).astype(np.float32)
    return Lesion(frac, share)


def stroke(rng, anatomy: Anatomy) -> Lesion:
    centre, side, rs, tissue = stroke_site(rng, anatomy)
    radius = float(np.exp(rng.uniform(np.log(rs[0]), np.log(rs[1])))) / SPACING_MM
    frac = _empty()
    blob(rng, frac, centre, radius * rng.uniform(0.6, 1.3, 3), irregularity=0.45)
    if radius > 6 and rng.random() < 0.4:  # satellite infarct in the same territory
        blob(rng, frac, centre + rng.normal(0, radius, 3), radius * rng.uniform(0.2, 0.4, 3),
             irregularity=0.4)
    return stroke_lesion(rng, frac, side, tissue)


# --------------------------------------------------------------------------- WMH
def wmh(rng, anatomy: Anatomy) -> Lesion:
    vdist = anatomy.ventricle_distance()
    load = float(np.exp(rng.uniform(np.log(0.05), np.log(1.0))))
    width = 0.7 + 3.5 * load  # voxels from the ventricle wall
    band = np.clip(0.5 + (width - vdist), 0.0, 1.0) * (vdist > 0) * (anatomy.wm > 0.4)
    noise = ndimage.gaussian_filter(rng.normal(size=GRID_SHAPE).astype(np.float32), 2.0)
    noise /= max(float(noise.std()), 1e-6)
    cut = np.quantile(noise, 1.0 - (0.25 + 0.6 * load))  # caps at low load, rims at high
    frac = (band * np.clip(0.5 + (noise - cut) * 2.0, 0.0, 1.0)).astype(np.float32)
    deep = (anatomy.wm > 0.8) & (vdist > 4)
    for _ in range(int(rng.integers(0, 3 + int(12 * load)))):
        c = _pick_voxel(rng, deep, np.array(GRID_SHAPE) / 2)
        blob(rng, frac, c, rng.uniform(0.6, 1.6, 3), irregularity=0.2)
    share = np.full(GRID_SHAPE, rng.uniform(0.15, 0.35), dtype=np.float32)
    return Lesion(frac, share)


GENERATORS = {"ms": ms, "stroke": stroke, "wmh": wmh}
