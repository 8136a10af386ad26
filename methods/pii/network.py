"""Wide-ResNet encoder-decoder predicting the per-pixel interpolation factor (PII, UPD port).

UPD's ``WideResNetAE`` with depth 16 (one block per stage) and widening k = 4:
conv3x3 (-> 16) | down stages 16 -> 4k*16 (s1) -> 32k (s2) -> 64k (s2) -> 64k (s2) |
up stages 64k -> 16k -> 16 -> 1 (each x2, nearest) | sigmoid.
x: (N, 1, H, W), H and W divisible by 8 -> (N, 1, H, W) in (0, 1).
The reference repeats the grey channel to 3 before the first conv; a conv over three
identical channels equals a conv over one with the summed kernel, so one input channel
is used (same function class, fewer no-op weights).
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn


class WideBlock(nn.Module):
    """Pre-activation wide residual block (Zagoruyko & Komodakis 2016), down or up.

    down: BN-ReLU-conv3x3(stride) -> BN-ReLU-dropout-conv3x3; up: the first conv is
    followed by nearest x``stride`` upsampling. Shortcut: identity, or 1x1 conv (+
    upsampling / with stride) when the width or size changes (AvgPool if only size).
    """

    def __init__(self, cin: int, cout: int, stride: int,
                 direction: Literal["down", "up"], dropout: float = 0.0):
        super().__init__()
        if direction not in ("down", "up"):
            raise ValueError(f"unknown direction={direction!r}; allowed: 'down', 'up'")
        down = direction == "down"
        self.bn1, self.relu = nn.BatchNorm2d(cin), nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride if down else 1, 1, bias=False)
        self.up = nn.Upsample(scale_factor=stride) if not down and stride > 1 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(cout)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.preact_shortcut = cin != cout  # the reference feeds BN-ReLU(x) to the 1x1 conv
        if cin != cout:
            skip = [nn.Conv2d(cin, cout, 1, stride if down else 1, bias=False)]
            skip += [nn.Upsample(scale_factor=stride)] if not down and stride > 1 else []
        elif stride > 1:
            skip = [nn.AvgPool2d(stride) if down else nn.Upsample(scale_factor=stride)]
        else:
            skip = []
        self.skip = nn.Sequential(*skip)

    def forward(self, x: Tensor) -> Tensor:
        act = self.relu(self.bn1(x))
        out = self.up(self.conv1(act))
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + self.skip(act if self.preact_shortcut else x)


class WideResNetAE(nn.Module):
    """Encoder (/8) - decoder (x8) of wide residual blocks, sigmoid output."""

    def __init__(self, k: int = 4, base: int = 16, dropout: float = 0.0):
        super().__init__()
        w = [base, base * k, 2 * base * k, 4 * base * k]
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w[0], 3, 1, 1, bias=False),
            WideBlock(w[0], w[1], 1, "down", dropout),
            WideBlock(w[1], w[2], 2, "down", dropout),
            WideBlock(w[2], w[3], 2, "down", dropout),
            WideBlock(w[3], w[3], 2, "down", dropout),
        )
        self.decoder = nn.Sequential(
            WideBlock(w[3], w[1], 2, "up", dropout),
            WideBlock(w[1], w[0], 2, "up", dropout),
            WideBlock(w[0], 1, 2, "up", dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits: (N, 1, H, W) -> (N, 1, H, W); apply sigmoid for the factor."""
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"PII needs H, W divisible by 8, got {tuple(x.shape[-2:])}")
        return self.decoder(self.encoder(x))
