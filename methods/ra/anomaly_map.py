"""RA's and PHANES' anomaly maps: CLAHE residuals weighted by a perceptual saliency map.

Reference (ci-ber/RA ``projects/23_ra_midl/DownstreamEvaluator.py``; ci-ber/PHANES
``model_zoo/phanes.py::AnomalyMap``): CLAHE is skimage's ``equalize_adapthist`` with default
arguments, the saliency is LPIPS (SqueezeNet, spatial=True) smoothed by a Gaussian of
sigma 2 (scipy ``gaussian_filter``).

LPIPS needs the ``lpips`` package, torchvision and a weight download. Where they cannot be
loaded (offline machines, this project's CPU environment) the ``saliency`` setting decides:
"lpips" raises, "ssim" always uses 1 - SSIM (local Gaussian SSIM, Wang et al. 2004) as the
structural-dissimilarity saliency, "lpips_or_ssim" uses LPIPS where it loads and SSIM
otherwise. Which one ran is reported through the method's ``result_tags()``.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import Tensor

from benchmark.backbones import weights_wanted

SaliencyKind = Literal["lpips", "ssim", "lpips_or_ssim"]
SALIENCY_KINDS = ("lpips", "ssim", "lpips_or_ssim")


def clahe(x: Tensor) -> Tensor:
    """Contrast-limited adaptive histogram equalisation per slice. x: (N, 1, H, W) in [0, 1]."""
    from skimage.exposure import equalize_adapthist  # optional heavy import, used here only

    arr = x.detach().float().cpu().numpy()
    out = np.stack([equalize_adapthist(a) for a in arr])  # a: (1, H, W) as the reference
    return torch.from_numpy(out).to(x)


def gaussian_smooth(x: Tensor, sigma: float = 2.0) -> Tensor:
    """scipy Gaussian filter over H and W of each slice (as the reference). x: (N, 1, H, W)."""
    arr = x.detach().float().cpu().numpy()
    return torch.from_numpy(gaussian_filter(arr, sigma=(0, 0, sigma, sigma))).to(x)


def ssim_dissimilarity(a: Tensor, b: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """1 - local SSIM map (Wang et al. 2004, Eq. 13, data range 1). a, b: (N, 1, H, W) -> same."""
    coords = torch.arange(window, dtype=a.dtype, device=a.device) - window // 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).view(1, 1, window, window)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.pad(t, [window // 2] * 4, mode="reflect"), kernel)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return 1 - ssim


def _load_lpips() -> tuple[object | None, str]:
    """LPIPS(SqueezeNet, spatial) or (None, reason). Imports lazily: torchvision may be broken."""
    try:
        import lpips

        model = lpips.LPIPS(pretrained=True, net="squeeze", spatial=True, verbose=False)
        return model.eval(), ""
    except Exception as exc:  # noqa: BLE001 - ImportError, a torchvision mismatch, a failed download
        return None, f"{type(exc).__name__}: {exc}"


class Saliency:
    """Perceptual saliency S(a, b): (N, 1, H, W) pair in [0, 1] -> (N, 1, H, W), smoothed.

    Kept outside the nn.Module tree on purpose: LPIPS is frozen and must not enter the
    method's checkpoint or optimisers.
    """

    def __init__(self, kind: SaliencyKind = "lpips", smoothing_sigma: float = 2.0) -> None:
        if kind not in SALIENCY_KINDS:
            raise ValueError(f"saliency={kind!r}; allowed: {', '.join(SALIENCY_KINDS)}")
        self.sigma = smoothing_sigma
        self.lpips = None
        if kind != "ssim" and weights_wanted():  # not when only the shapes are wanted
            self.lpips, reason = _load_lpips()
            if self.lpips is None and kind == "lpips":
                raise RuntimeError(
                    "saliency='lpips' needs the lpips package, torchvision and the SqueezeNet "
                    f"weights ({reason}); install the 'vision' extra, or set "
                    "saliency='lpips_or_ssim' / 'ssim' to use the SSIM-based map (tagged in "
                    "the results)"
                )
        self.used: Literal["lpips", "ssim"] = "lpips" if self.lpips is not None else "ssim"

    @torch.no_grad()
    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        if self.lpips is not None:
            model = self.lpips.to(a.device)
            # normalize=True maps [0, 1] to [-1, 1]; one channel broadcasts in LPIPS' scaling
            # layer exactly as in the reference, which also feeds 1-channel tensors.
            raw = model(a.float(), b.float(), normalize=True)
            raw = F.interpolate(raw, size=a.shape[-2:], mode="bilinear", align_corners=False) \
                if raw.shape[-2:] != a.shape[-2:] else raw
        else:
            raw = ssim_dissimilarity(a.float(), b.float())
        return gaussian_smooth(raw, self.sigma).to(a)


def ra_anomaly_map(x: Tensor, x_hat: Tensor, saliency: Saliency, equalize: bool = True
                   ) -> Tensor:
    """RA map: |CLAHE(x_hat) - CLAHE(x)| * S(x, x_hat) * S(CLAHE x_hat, CLAHE x).

    x, x_hat: (N, 1, H, W); both clamped to [0, 1] first, as the reference does.
    equalize=False leaves CLAHE out: |x_hat - x| * S(x, x_hat) (not the paper's map; CLAHE
    flattens bright T2 lesions, see methods/ra/README.md).
    """
    x, x_hat = x.clamp(0, 1), x_hat.clamp(0, 1)
    if not equalize:
        return (x_hat - x).abs() * saliency(x, x_hat)
    cx, cx_hat = clahe(x), clahe(x_hat)
    s = saliency(x, x_hat) * saliency(cx_hat, cx)
    return (cx_hat - cx).abs() * s


def phanes_coarse_map(x: Tensor, x_hat: Tensor, saliency: Saliency, equalize: bool = True
                      ) -> Tensor:
    """PHANES' likelihood of anomaly from the coarse VAE reconstruction (reference
    ``AnomalyMap.compute_residual`` x ``get_saliency``):
    min(|CLAHE x_hat - CLAHE x| / p95(residual), 1) * S(x_hat, x), p95 per slice.
    x, x_hat: (N, 1, H, W) in [0, 1] -> (N, 1, H, W). equalize=False: the residual of the
    images themselves, |x_hat - x| (not the paper's).
    """
    eq = clahe if equalize else (lambda t: t)
    residual = (eq(x_hat.clamp(0, 1)) - eq(x.clamp(0, 1))).abs()
    p95 = torch.quantile(residual.flatten(1), 0.95, dim=1).view(-1, 1, 1, 1)
    residual = (residual / (p95 + 1e-8)).clamp(max=1)
    return residual * saliency(x_hat.clamp(0, 1), x.clamp(0, 1))
