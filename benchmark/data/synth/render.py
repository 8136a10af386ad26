"""Synthetic MR contrast: scanner sites, tissue intensities, blur, bias field, Rician noise.

An image is rendered from an :class:`~benchmark.data.synth.anatomy.Anatomy` in five
steps; lesions (``lesions``) are pasted between steps 2 and 3 so that the bias
field and the noise - identical draws for a subject with and without its lesion - change
nothing outside the lesion:

1. partial-volume mixture  I = p_GM I_GM + p_WM I_WM + p_CSF I_CSF, with a faint
   multiplicative tissue texture;
2. the scanner's point-spread function (Gaussian blur);
3. (lesion insertion);
4. a smooth multiplicative bias field exp(b), b a low-frequency random field;
5. Rician noise |I + n_1 + i n_2|, n_k ~ N(0, sigma^2), background set to zero (the real
   data is skull-stripped), then scaled to the site's integer range (int16 on disk).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from benchmark.data.layout import SEQUENCES
from benchmark.data.synth.anatomy import GRID_SHAPE, Anatomy, smooth_field

Sequence = Literal["t1", "t2"]
TISSUES = ("csf", "gm", "wm")
# Reference tissue intensities (CSF, GM, WM) relative to the brightest tissue: T1 WM > GM > CSF,
# T2 CSF > GM > WM (typical 1.5-3 T spin-echo / gradient-echo ratios).
BASE_CONTRAST = {"t1": (0.28, 0.66, 1.0), "t2": (1.0, 0.55, 0.40)}


@dataclass(frozen=True)
class Site:
    """One scanner: contrast (per sequence), noise, bias, blur and integer gain."""

    name: str
    contrast: dict  # sequence -> (csf, gm, wm)
    noise: float  # Rician sigma relative to the brightest tissue
    bias: float  # std of the log bias field
    blur: float  # PSF sigma in voxels
    gain: float  # scanner units of the brightest tissue


# The training site (IXI's three hospitals) are mild variations of the reference; the
# test cohorts' sites are further away, as real test sets come from other scanners.
SITE_SHIFTS = {
    # name: (contrast spread, noise, bias, blur)
    "Guys": (0.00, 0.030, 0.08, 0.55),
    "HH": (0.03, 0.025, 0.10, 0.45),
    "IOP": (0.03, 0.035, 0.07, 0.60),
    "BraTS-A": (0.06, 0.030, 0.10, 0.55),
    "BraTS-B": (0.08, 0.040, 0.12, 0.70),
    "Ljubljana": (0.06, 0.035, 0.10, 0.60),
    "ATLAS-A": (0.06, 0.035, 0.12, 0.60),
    "ATLAS-B": (0.08, 0.030, 0.09, 0.70),
    "Utrecht": (0.06, 0.030, 0.10, 0.50),
    "Singapore": (0.07, 0.035, 0.08, 0.60),
    "Amsterdam": (0.08, 0.040, 0.11, 0.65),
}


def get_site(name: str) -> Site:
    """The site's fixed parameters; contrast offsets are drawn once from the name's CRC."""
    if name not in SITE_SHIFTS:
        raise KeyError(f"unknown synthetic site {name!r}; known: {sorted(SITE_SHIFTS)}")
    spread, noise, bias, blur = SITE_SHIFTS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    contrast = {}
    for seq in SEQUENCES:
        base = np.array(BASE_CONTRAST[seq])
        shifted = base * (1.0 + spread * rng.uniform(-1.0, 1.0, 3))
        contrast[seq] = tuple(float(v) for v in shifted / shifted.max())
    gain = float(rng.choice([800.0, 1000.0, 1500.0, 2500.0]))
    return Site(name=name, contrast=contrast, noise=noise, bias=bias, blur=blur, gain=gain)


def subject_intensities(rng: np.random.Generator, site: Site, sequence: Sequence) -> dict:
    """Per-subject tissue intensities: the site's contrast with 4 % jitter, order kept."""
    if sequence not in SEQUENCES:
        raise ValueError(f"unknown sequence {sequence!r}; allowed: {SEQUENCES}")
    values = np.array(site.contrast[sequence]) * (1.0 + rng.normal(0.0, 0.04, 3))
    order = np.argsort(BASE_CONTRAST[sequence])
    values[order] = np.sort(values)  # jitter never flips the tissue order of the sequence
    return dict(zip(TISSUES, (float(v) for v in values)))


def tissue_image(rng: np.random.Generator, anatomy: Anatomy, intensities: dict,
                 blur: float) -> np.ndarray:
    """Steps 1-2: partial-volume mixture with texture, blurred. (H, W, D) float32."""
    image = (anatomy.csf * intensities["csf"] + anatomy.gm * intensities["gm"]
             + anatomy.wm * intensities["wm"])
    texture = ndimage.gaussian_filter(rng.normal(size=GRID_SHAPE).astype(np.float32), 1.0)
    image *= 1.0 + 0.025 * texture / max(float(texture.std()), 1e-6)
    return ndimage.gaussian_filter(image, blur, mode="constant").astype(np.float32)


@dataclass(frozen=True)
class Acquisition:
    """The draws of steps 4-5, fixed per subject so a lesion changes only its own voxels."""

    bias: np.ndarray  # (H, W, D) multiplicative field
    noise_re: np.ndarray
    noise_im: np.ndarray
    gain: float
    sigma: float = 0.0  # the noise's standard deviation (before the gain)

    @classmethod
    def draw(cls, rng: np.random.Generator, site: Site, peak: float) -> Acquisition:
        log_bias = site.bias * smooth_field(rng, GRID_SHAPE, (3, 3, 3))[0]
        sigma = site.noise * peak
        noise = rng.normal(0.0, sigma, (2, *GRID_SHAPE)).astype(np.float32)
        gain = site.gain * float(rng.uniform(0.9, 1.1))
        return cls(bias=np.exp(log_bias), noise_re=noise[0], noise_im=noise[1], gain=gain,
                   sigma=sigma)

    def apply(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Steps 4-5: bias, Rician noise, skull-strip, integer scale. Returns int16."""
        biased = image * self.bias
        noisy = np.sqrt((biased + self.noise_re) ** 2 + self.noise_im**2)
        scaled = np.rint(noisy * self.gain) * mask
        return np.clip(scaled, 0, np.iinfo(np.int16).max).astype(np.int16)

    def expected(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The mean of :meth:`apply` over the noise (float, before rounding): the Rician
        mean of the biased image, sigma sqrt(pi/2) L_1/2(-nu^2 / 2 sigma^2), scaled and
        skull-stripped. What a perfect reconstruction of this acquisition can predict."""
        from scipy import special

        nu = image * self.bias
        if self.sigma <= 0:
            return (nu * self.gain * mask).astype(np.float32)
        x = nu.astype(np.float64) ** 2 / (2 * self.sigma ** 2)
        # L_1/2(-x) e^{-x/2} = (1 + x) I0(x/2) e^{-x/2} + x I1(x/2) e^{-x/2}: the scaled
        # Bessel functions keep it finite at high SNR, where the mean tends to sqrt(nu^2 + sigma^2)
        mean = self.sigma * np.sqrt(np.pi / 2) * ((1 + x) * special.i0e(x / 2)
                                                  + x * special.i1e(x / 2))
        return (mean * self.gain * mask).astype(np.float32)
