"""Denoising UNet and coarse noise of Kascenas et al. (MIDL 2022), plain torch.

Checked against AntanasKascenas/DenoisingAE (``src/unet.py``, ``src/ws_conv.py``,
``src/denoising.py``): UNet of ``depth`` levels with ``2**(wf+i)`` channels; block =
2 x [reflection pad 1, weight-standardised 3x3 conv, Swish, GroupNorm]; average-pool down,
transposed-conv (k2 s2) up with skip concatenation; 1x1 conv to a linear output.
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def middle_divisor(channels: int) -> int:
    """GroupNorm groups as the reference picks them: the middle one of C's sorted divisors."""
    divisors = sorted({d for i in range(1, math.isqrt(channels) + 1) if channels % i == 0
                       for d in (i, channels // i)})
    return divisors[len(divisors) // 2]


class WSConv2d(nn.Conv2d):
    """Conv2d with weight standardisation (Qiao et al. 2019): per output filter,
    w <- (w - mean(w)) / (std(w) + 1e-5), std unbiased as in the reference."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        w = w / (w.flatten(1).std(dim=1).view(-1, 1, 1, 1) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(1), WSConv2d(cin, cout, 3), nn.SiLU(),  # SiLU == Swish
        nn.GroupNorm(middle_divisor(cout), cout),
        nn.ReflectionPad2d(1), WSConv2d(cout, cout, 3), nn.SiLU(),
        nn.GroupNorm(middle_divisor(cout), cout),
    )


class UNet(nn.Module):
    """x: (N, C, H, W) -> (N, C, H, W), linear output; H, W divisible by 2**(depth-1)."""

    def __init__(self, in_channels: int = 1, depth: int = 4, wf: int = 6) -> None:
        super().__init__()
        widths = [2 ** (wf + i) for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(conv_block(cin, w))
            cin = w
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(cin, w, kernel_size=2, stride=2))
            self.up_conv.append(conv_block(2 * w, w))
            cin = w
        self.last = nn.Conv2d(cin, in_channels, kernel_size=1)
        self.factor = 2 ** (depth - 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"slice size {tuple(x.shape[-2:])} must be divisible by "
                             f"{self.factor} (2**(depth-1))")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.avg_pool2d(x, 2)
        for up, block in zip(self.up, self.up_conv):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.last(x)


def coarse_noise(x: Tensor, noise_res: int = 12, noise_std: float = 0.2,
                 generator: torch.Generator | None = None) -> Tensor:
    """Low-resolution Gaussian noise, upsampled, randomly rolled, restricted to the foreground.

    x: (N, C, H, W) -> noise n: (N, C, H, W). n ~ N(0, noise_std^2) on a noise_res x noise_res
    grid, bilinearly upsampled (align_corners=True, as ``F.upsample_bilinear`` in the
    reference) to the slice size, rolled by one random (dy, dx) for the batch (the
    reference rolls the whole batch together), zero where x.sum(C) <= 0.01. The reference
    hard-codes 128 px for the upsampled size and the roll range; here both are the slice size.
    """
    n, c, h, w = x.shape
    grid = torch.randn(n, c, noise_res, noise_res, generator=generator,
                       device="cpu").to(x) * noise_std
    noise = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
    if generator is None:
        shifts = (random.randrange(h), random.randrange(w))
    else:
        shifts = tuple(int(v) for v in torch.randint(0, max(h, w), (2,), generator=generator))
    noise = torch.roll(noise, shifts=shifts, dims=(-2, -1))
    foreground = x.sum(dim=1, keepdim=True) > 0.01
    return noise * foreground
