"""PHANES' inpainting GAN (AOT-GAN, Zeng et al. 2022, 1 channel) and its masks, plain torch.

Checked against ci-ber/PHANES ``model_zoo/aotgan/aotgan.py`` and ``model_zoo/phanes.py``.
The coarse pseudo-healthy VAE is RA's (``methods.ra.network``), trained with RA's losses.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from torch import Tensor, nn
from torch.nn.utils import spectral_norm

from methods.ra.network import SoftIntroVAE  # noqa: F401  (PHANES' stage 1 is RA's backbone)


def gate_norm(g: Tensor) -> Tensor:
    """AOT block gate normalisation: 5 * (2 (g - mean) / std - 1), per sample and channel."""
    mean = g.mean(dim=(2, 3), keepdim=True)
    std = g.std(dim=(2, 3), keepdim=True) + 1e-9
    return 5 * (2 * (g - mean) / std - 1)


class AOTBlock(nn.Module):
    """Aggregated contextual transformation: 4 dilated 3x3 branches (dim -> dim/4 each),
    fused by a 3x3 conv and blended with the input through a learned spatial gate."""

    def __init__(self, dim: int, rates: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.ReflectionPad2d(r), nn.Conv2d(dim, dim // 4, 3, dilation=r),
                          nn.ReLU())
            for r in rates
        )
        self.fuse = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim // 4 * len(rates), dim, 3))
        self.gate = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3))

    def forward(self, x: Tensor) -> Tensor:
        out = self.fuse(torch.cat([b(x) for b in self.branches], dim=1))
        g = torch.sigmoid(gate_norm(self.gate(x)))
        return x * (1 - g) + out * g


class InpaintGenerator(nn.Module):
    """(masked image, mask): (N, 1, H, W) each -> inpainted image (N, 1, H, W) in [-1, 1] (tanh).

    H, W divisible by 4. Encoder 7x7 -> c, 4x4 s2 -> 2c, 4x4 s2 -> 4c; n_blocks AOT blocks;
    decoder 2 x [bilinear x2 + 3x3 conv] and a 3x3 conv to 1 channel.
    """

    def __init__(self, channels: int = 64, n_blocks: int = 8,
                 rates: tuple[int, ...] = (1, 2, 4, 8)) -> None:
        super().__init__()
        c = channels
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(2, c, 7), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.ReLU(),
        )
        # dilation rates must stay below the H/4 feature map (reflection padding)
        self.middle = nn.Sequential(*[AOTBlock(4 * c, tuple(rates)) for _ in range(n_blocks)])
        self.up1 = nn.Conv2d(4 * c, 2 * c, 3, 1, 1)
        self.up2 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.out = nn.Conv2d(c, 1, 3, 1, 1)
        for m in self.modules():  # AOT-GAN's init_weights: normal(0, 0.02), zero bias
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.middle(self.encoder(torch.cat([x, mask], dim=1)))
        for conv in (self.up1, self.up2):
            h = F.relu(conv(F.interpolate(h, scale_factor=2, mode="bilinear",
                                          align_corners=True)))
        return torch.tanh(self.out(h))


class Discriminator(nn.Module):
    """Spectral-norm patch discriminator: (N, 1, H, W) -> (N, 1, h, w) patch scores."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(1, c, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * c, 4 * c, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(4 * c, 8 * c, 4, 1, 1, bias=False)), nn.LeakyReLU(0.2),
            nn.Conv2d(8 * c, 1, 4, 1, 1),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and hasattr(m, "weight_orig"):
                nn.init.normal_(m.weight_orig, 0.0, 0.02)
            elif isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def binarize_anomaly_mask(amap: Tensor, threshold: float | None) -> Tensor:
    """PHANES' mask from its anomaly map (reference ``AnomalyMap.filter_anomaly_mask``).

    amap: (N, 1, H, W) >= 0. Pixels above ``threshold`` (per-slice 95th percentile when None)
    become 1 and all others 0; a Gaussian blur (sigma 1.2) and ``> 0.1`` then dilate the
    regions by about one pixel. Returns a {0, 1} float mask of the same shape.
    The reference leaves sub-threshold values in place before the blur, so large regions
    between 0.1 and the threshold are masked too; zeroing them makes the threshold the one
    the cDDPM paper states (see README).
    """
    arr = amap.detach().float().cpu().numpy()
    binary = np.zeros_like(arr)
    for i in range(arr.shape[0]):
        thr = np.percentile(arr[i], 95) if threshold is None else threshold
        binary[i] = arr[i] > thr
    blurred = gaussian_filter(binary, sigma=(0, 0, 1.2, 1.2))
    return torch.from_numpy((blurred > 0.1).astype(np.float32)).to(amap.device)


def random_ellipse_masks(n: int, size: int, count: int = 10, centre_range: tuple[float, float]
                         = (0.25, 0.75), generator: np.random.Generator | None = None) -> Tensor:
    """Synthetic training holes (reference ``transforms/synthetic.py::GenerateMasks``).

    ``count`` filled ellipses per slice, centres uniform in ``centre_range`` x size (the
    reference's (32, 96) px at 128 px, i.e. 0.25-0.75), half-axes |N(2, 4)| floored at 2 px,
    random angle. Returns (n, 1, size, size) in {0, 1}.
    """
    rng = generator or np.random.default_rng()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    masks = np.zeros((n, 1, size, size), np.float32)
    lo, hi = centre_range[0] * size, centre_range[1] * size
    for i in range(n):
        for _ in range(count):
            cy, cx = rng.uniform(lo, hi, 2)
            a, b = np.maximum(np.abs(rng.normal(2, 4, 2)), 2)
            t = rng.uniform(0, math.pi)
            u = (xx - cx) * math.cos(t) + (yy - cy) * math.sin(t)
            v = -(xx - cx) * math.sin(t) + (yy - cy) * math.cos(t)
            masks[i, 0][(u / a) ** 2 + (v / b) ** 2 <= 1] = 1.0
    return torch.from_numpy(masks)
