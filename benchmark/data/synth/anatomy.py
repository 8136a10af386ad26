"""Synthetic anatomy: per-subject tissue maps warped from the MNI ICBM152 2009 template.

The template (Fonov et al., NeuroImage 2011; 2009 nonlinear symmetric version) ships inside
the nilearn wheel (``nilearn/datasets/data/``) as a 1 mm T1 image and grey/white-matter
probability maps, 197x233x189 voxels. There is no CSF map and no brain-mask file in the
wheel, so both are derived here: the brain mask the way nilearn's
``load_mni152_brain_mask`` does it (template > 0.2 of its maximum), holes filled, and
CSF = brain - GM - WM (clipped to [0, 1]).

Every subject is the template seen through a random smooth deformation: a small affine,
a coarse random displacement field, an age-dependent ventricle enlargement and, for
tumours, a radial mass effect. Tissue fractions are sampled straight onto the output
grid: 96x96x50 voxels (H, W, D; axial last) of 2 mm, i.e. the 192x192x100 mm box the
real data is cropped to before the loader's 2 mm resampling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

GRID_SHAPE = (96, 96, 50)  # (H, W, D) = (x, y, z) voxels of 2 mm
SPACING_MM = 2.0
# World (MNI) coordinate of voxel (0, 0, 0) of the output grid: the 192x192x100 mm box is
# centred on the brain in x/y (template brain box y = -107..73 mm) and covers z = -41..57 mm,
# i.e. the 100 mm of cerebrum the real data keeps after its central CropOrPad((., ., 100)).
GRID_ORIGIN_MM = np.array([-95.0, -112.0, -41.0])
VENTRICLE_CENTRE_MM = np.array([0.0, -12.0, 14.0])
VENTRICLE_BOX_MM = np.array([[-30.0, -60.0, -8.0], [30.0, 35.0, 35.0]])  # lateral ventricles
TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def grid_affine() -> np.ndarray:
    """4x4 voxel->world (RAS, mm) affine of the output grid, written into every NIfTI."""
    affine = np.diag([SPACING_MM, SPACING_MM, SPACING_MM, 1.0])
    affine[:3, 3] = GRID_ORIGIN_MM
    return affine


@dataclass(frozen=True)
class Template:
    """Template tissue maps at 1 mm, float32 in [0, 1], lightly smoothed against aliasing."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    world_to_voxel: np.ndarray  # 4x4


def template_dir() -> Path:
    """nilearn/datasets/data, found without importing nilearn (which takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the synthetic data needs nilearn: pip install nilearn")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Load the MNI152 2009 maps from the nilearn wheel (no download) and derive CSF/mask."""
    import nibabel as nib

    folder = template_dir()
    missing = [f for f in TEMPLATE_FILES.values() if not (folder / f).exists()]
    if missing:
        raise FileNotFoundError(
            f"MNI ICBM152 2009 template files {missing} not found in {folder}; "
            "the synthetic data needs nilearn>=0.10 installed (pip install nilearn)"
        )
    imgs = {k: nib.load(folder / f) for k, f in TEMPLATE_FILES.items()}
    t1 = np.asarray(imgs["t1"].dataobj, dtype=np.float32)
    gm = np.asarray(imgs["gm"].dataobj, dtype=np.float32) / 255.0
    wm = np.asarray(imgs["wm"].dataobj, dtype=np.float32) / 255.0
    brain = ndimage.binary_fill_holes(t1 > 0.2 * t1.max()).astype(np.float32)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    # sigma 0.7 mm: the 2 mm output samples the 1 mm maps, so remove what would alias
    smooth = functools.partial(ndimage.gaussian_filter, sigma=0.7, mode="constant")
    return Template(
        gm=smooth(gm), wm=smooth(wm), csf=smooth(csf), brain=smooth(brain),
        world_to_voxel=np.linalg.inv(imgs["t1"].affine),
    )


@dataclass
class Anatomy:
    """One subject's tissue fractions on the output grid, each (H, W, D) float32."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray  # soft brain fraction
    mask: np.ndarray  # bool brain mask (brain >= 0.5)

    def ventricle_distance(self) -> np.ndarray:
        """Distance (voxels) to the lateral ventricles, (H, W, D) float32.

        Ventricles = CSF-dominated voxels inside a generous MNI box around the lateral
        ventricles (the warps move anatomy by millimetres only), in components of >= 20
        voxels so that sulcal CSF in the box does not count.
        """
        box = np.zeros(GRID_SHAPE, dtype=bool)
        lo = np.floor((VENTRICLE_BOX_MM[0] - GRID_ORIGIN_MM) / SPACING_MM).astype(int)
        hi = np.ceil((VENTRICLE_BOX_MM[1] - GRID_ORIGIN_MM) / SPACING_MM).astype(int)
        box[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
        labels, n = ndimage.label((self.csf > 0.5) & box)
        sizes = ndimage.sum_labels(np.ones(GRID_SHAPE), labels, index=np.arange(1, n + 1))
        ventricles = np.isin(labels, 1 + np.flatnonzero(sizes >= 20))
        if not ventricles.any():
            ventricles[tuple(np.rint((VENTRICLE_CENTRE_MM - GRID_ORIGIN_MM) / 2).astype(int))] = True
        return ndimage.distance_transform_edt(~ventricles).astype(np.float32)


@dataclass(frozen=True)
class Warp:
    """Parameters of one subject's deformation (all in mm / radians)."""

    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ventricle_growth: float = 0.0  # > 0 enlarges the central CSF (ageing)
    displacement_mm: float = 0.0  # std of the random smooth displacement
    field_seed: int = 0
    mass_centre: tuple[float, float, float] | None = None  # voxel coords, tumour mass effect
    mass_radius: float = 0.0  # voxels
    mass_strength: float = 0.0  # in [0, 0.8): fraction of compression at the centre


def random_warp(rng: np.random.Generator, age: float) -> Warp:
    """Draw a subject's warp: +-4 deg, +-5 % scale, +-3 mm shift, ventricles grow with age."""
    growth = 0.35 * (age - 20.0) / 66.0 + rng.normal(0.0, 0.06)
    return Warp(
        rotation=tuple(np.deg2rad(rng.normal(0.0, 2.0, 3)).tolist()),
        scale=tuple((1.0 + rng.normal(0.0, 0.025, 3)).tolist()),
        shift=tuple(rng.normal(0.0, 1.5, 3).tolist()),
        ventricle_growth=float(np.clip(growth, -0.15, 0.5)),
        displacement_mm=float(rng.uniform(1.5, 3.0)),
        field_seed=int(rng.integers(2**31)),
    )


def _upsample_matrix(n_coarse: int, n_fine: int) -> np.ndarray:
    """(n_fine, n_coarse) Gaussian interpolation weights, rows sum to 1."""
    pos = np.linspace(0.0, n_coarse - 1.0, n_fine)[:, None]
    weights = np.exp(-((pos - np.arange(n_coarse)[None, :]) ** 2) / (2 * 0.6**2))
    return weights / weights.sum(1, keepdims=True)


def smooth_field(rng: np.random.Generator, shape, coarse, channels: int = 1) -> np.ndarray:
    """Smooth random field: unit-normal values on a coarse grid, upsampled separably.

    The separable (tensor-product) upsampling costs one small matrix product per axis,
    ~100x cheaper than spline interpolation of the full grid. Returns (channels, *shape).
    """
    values = rng.normal(size=(channels, *coarse))
    mx, my, mz = (_upsample_matrix(c, s) for c, s in zip(coarse, shape))
    field = np.einsum("ai,bj,ck,nijk->nabc", mx, my, mz, values, optimize=True)
    # renormalise: interpolation shrinks the variance between coarse nodes
    return (field / field.std(axis=(1, 2, 3), keepdims=True)).astype(np.float32)


def _rotation_matrix(angles) -> np.ndarray:
    a, b, c = angles
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _radial_squeeze(points: np.ndarray, centre, radius: float, strength: float) -> np.ndarray:
    """q = c + (p - c) (1 - strength exp(-r^2 / 2 radius^2)); monotone in r for strength < 1.

    Sampling from q magnifies what lies around c: used for ventricle growth (template
    space) and for tumour mass effect (output space), points: (3, ...).
    """
    centre = np.asarray(centre, dtype=np.float32).reshape(3, *([1] * (points.ndim - 1)))
    diff = points - centre
    r2 = (diff**2).sum(0, keepdims=True)
    return centre + diff * (1.0 - strength * np.exp(-r2 / (2.0 * radius**2)))


def warp_anatomy(warp: Warp, template: Template | None = None) -> Anatomy:
    """Sample the template's tissue maps (or ``template``'s: an individual anatomy,
    benchmark.data.synth.individual) through the subject's warp onto the output grid."""
    tpl = template if template is not None else load_template()
    points = np.indices(GRID_SHAPE, dtype=np.float32)
    if warp.mass_centre is not None and warp.mass_strength > 0:
        points = _radial_squeeze(points, warp.mass_centre, warp.mass_radius, warp.mass_strength)
    world = points * SPACING_MM + GRID_ORIGIN_MM.astype(np.float32).reshape(3, 1, 1, 1)
    # inverse affine about the brain centre: output world -> template world
    pivot = VENTRICLE_CENTRE_MM.astype(np.float32).reshape(3, 1, 1, 1)
    inv = (_rotation_matrix(warp.rotation).T / np.asarray(warp.scale)[:, None]).astype(np.float32)
    centred = world - pivot - np.asarray(warp.shift, dtype=np.float32).reshape(3, 1, 1, 1)
    moved = np.einsum("ij,j...->i...", inv, centred) + pivot
    if warp.displacement_mm > 0:
        field_rng = np.random.default_rng(warp.field_seed)
        moved += warp.displacement_mm * smooth_field(field_rng, GRID_SHAPE, (6, 6, 4), 3)
    if warp.ventricle_growth != 0:
        moved = _radial_squeeze(moved, VENTRICLE_CENTRE_MM, 22.0, warp.ventricle_growth)
    vox = np.einsum("ij,j...->i...", tpl.world_to_voxel[:3, :3].astype(np.float32), moved)
    vox += tpl.world_to_voxel[:3, 3].astype(np.float32).reshape(3, 1, 1, 1)
    sample = functools.partial(ndimage.map_coordinates, coordinates=vox, order=1,
                               mode="constant", cval=0.0, output=np.float32)
    brain = sample(tpl.brain)
    return Anatomy(gm=sample(tpl.gm), wm=sample(tpl.wm), csf=sample(tpl.csf), brain=brain,
                   mask=brain >= 0.5)


@functools.lru_cache(maxsize=1)
def reference_anatomy() -> Anatomy:
    """The unwarped template on the output grid (used to place lesions before warping)."""
    return warp_anatomy(Warp())
