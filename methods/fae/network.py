"""Structural feature autoencoder (Meissen et al., BrainLes 2022), plain torch.

Features: frozen ResNet-18 stages layer0 (64 ch, /4), layer1 (64, /4), layer2 (128, /8),
each resized bilinearly (align_corners=True) to one feature-map size and concatenated
-> (N, 256, s, s). A conv autoencoder reconstructs them; loss and map are SSIM-based.

96 x 96 fix: the reference resizes to H/4 = 24, but its AE halves the size four times
(24 -> 12 -> 6 -> 3 -> 2, k5 s2 p2 rounds up) and its decoder doubles it four times
(2 -> 32), so reconstruction (32) and target (24) differ. :func:`feature_map_size` rounds
H/4 up to a multiple of 2**depth (16), i.e. the features are resized to 32 x 32 at 96 px;
at the reference's 128 px this is exactly H/4 = 32, the reference itself.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def feature_map_size(image_size: int, depth: int) -> int:
    """Smallest multiple of 2**depth that is >= image_size / 4 (24 -> 32, 32 -> 32)."""
    unit = 2 ** depth
    return unit * math.ceil(image_size / 4 / unit)


def concat_features(feats: list[Tensor], size: int) -> Tensor:
    """[(N, C_k, h_k, w_k)] -> (N, sum C_k, size, size), bilinear with align_corners=True."""
    return torch.cat([F.interpolate(f, size=(size, size), mode="bilinear", align_corners=True)
                      for f in feats], dim=1)


class FeatureAE(nn.Module):
    """Reference ``FeatureAutoencoder`` (hidden dims 100/150/200/300, BN, dropout 0.1).

    Encoder: per hidden dim [Conv k5 s2 p2 no-bias, BN, LeakyReLU, Dropout2d], then a
    Conv k5 s1 p2 (no norm, no activation). Decoder: per hidden dim in reverse
    [ConvTranspose k6 s2 p2, BN, LeakyReLU, Dropout2d] back to C channels, then 1x1 conv.
    x: (N, C, s, s) with s divisible by 2**len(hidden_dims) -> (N, C, s, s).
    """

    def __init__(self, in_channels: int, hidden_dims: tuple[int, ...] = (100, 150, 200, 300),
                 dropout: float = 0.1):
        super().__init__()
        enc, cin = [], in_channels
        for h in hidden_dims:
            enc += [nn.Conv2d(cin, h, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(h),
                    nn.LeakyReLU(), nn.Dropout2d(dropout)]
            cin = h
        enc.append(nn.Conv2d(cin, cin, 5, stride=1, padding=2, bias=False))
        dims = (in_channels, *hidden_dims)
        dec = []
        for i in range(len(hidden_dims), 0, -1):
            dec += [nn.ConvTranspose2d(dims[i], dims[i - 1], 6, stride=2, padding=2, bias=False),
                    nn.BatchNorm2d(dims[i - 1]), nn.LeakyReLU(), nn.Dropout2d(dropout)]
        dec.append(nn.Conv2d(in_channels, in_channels, 1, bias=False))
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.depth = len(hidden_dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 2 ** self.depth or x.shape[-2] % 2 ** self.depth:
            raise ValueError(f"feature map {tuple(x.shape[-2:])} must be divisible by "
                             f"{2 ** self.depth} (see feature_map_size)")
        return self.decoder(self.encoder(x))


def ssim_map(a: Tensor, b: Tensor, window: int = 5, sigma: float = 1.5,
             c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> Tensor:
    """Per-channel SSIM (Wang et al. 2004, Eq. 13) with a Gaussian window, zero padding.

    a, b: (N, C, H, W) -> (N, C, H, W). Constants as FAE's ``pytorch_ssim`` (data range 1).
    """
    c = a.shape[1]
    g = torch.exp(-(torch.arange(window, dtype=a.dtype, device=a.device) - window // 2) ** 2
                  / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, kernel, padding=window // 2, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / \
        ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
