"""Soft-IntroVAE backbone of RA (Bercea et al., MIDL 2023), plain torch.

Checked against ci-ber/RA ``model_zoo/ra.py`` (itself from Daniel & Tamar's Soft-IntroVAE):
encoder = conv 5x5 (no bias), BN, LeakyReLU(0.2), AvgPool2; then per further channel width a
residual block + AvgPool2; then one residual block; flatten; linear -> (mu, logvar).
The outputs of the five AvgPool2 layers are the multi-scale "embeddings" that RA's reversed
embedding loss compares. Decoder = linear + ReLU to a (C, W/32, W/32) map, then per width
(reversed) a residual block + nearest upsampling x2, a residual block, conv 5x5 -> 1, sigmoid.
At 96 px the bottom map is 3x3 (the reference's 128 px gives 4x4).
"""
from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """conv3x3-BN-LReLU(0.2)-conv3x3-BN, + identity (1x1 conv when widths differ), LReLU(0.2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.expand(x))


class Encoder(nn.Module):
    """x: (N, 1, H, W) -> mu, logvar: (N, z_dim), embeddings: list of 5 (N, C_k, H/2^k, W/2^k)."""

    def __init__(self, image_size: int = 96, z_dim: int = 128,
                 channels: tuple[int, ...] = (64, 128, 256, 512, 512)) -> None:
        super().__init__()
        factor = 2 ** len(channels)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by {factor} "
                             f"(2**len(channels))")
        self.image_size = image_size
        self.stem = nn.Sequential(nn.Conv2d(1, channels[0], 5, 1, 2, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList(
            ResidualBlock(a, b) for a, b in itertools.pairwise(channels)
        )
        self.pool = nn.AvgPool2d(2)
        self.last = ResidualBlock(channels[-1], channels[-1])
        self.bottom = (channels[-1], image_size // factor, image_size // factor)
        self.fc = nn.Linear(channels[-1] * (image_size // factor) ** 2, 2 * z_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"network built for image_size={self.image_size}, got slices of "
                             f"{tuple(x.shape[-2:])}; set the method's image_size hyperparameter")
        h = self.pool(self.stem(x))
        embeddings = [h]
        for block in self.blocks:
            h = self.pool(block(h))
            embeddings.append(h)
        mu, logvar = self.fc(self.last(h).flatten(1)).chunk(2, dim=1)
        return mu, logvar, embeddings


class Decoder(nn.Module):
    """z: (N, z_dim) -> x_hat: (N, 1, H, W) in (0, 1) (sigmoid)."""

    def __init__(self, image_size: int = 96, z_dim: int = 128,
                 channels: tuple[int, ...] = (64, 128, 256, 512, 512)) -> None:
        super().__init__()
        factor = 2 ** len(channels)
        self.bottom = (channels[-1], image_size // factor, image_size // factor)
        self.fc = nn.Sequential(nn.Linear(z_dim, channels[-1] * (image_size // factor) ** 2),
                                nn.ReLU())
        layers: list[nn.Module] = []
        cin = channels[-1]
        for c in reversed(channels):
            layers += [ResidualBlock(cin, c), nn.Upsample(scale_factor=2, mode="nearest")]
            cin = c
        layers += [ResidualBlock(cin, cin), nn.Conv2d(cin, 1, 5, 1, 2), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(self.fc(z).view(-1, *self.bottom))


def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class SoftIntroVAE(nn.Module):
    """Encoder + decoder pair; the two have separate optimisers in RA's introspective game."""

    def __init__(self, image_size: int = 96, z_dim: int = 128,
                 channels: tuple[int, ...] = (64, 128, 256, 512, 512)) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.encoder = Encoder(image_size, z_dim, tuple(channels))
        self.decoder = Decoder(image_size, z_dim, tuple(channels))

    def forward(self, x: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """x: (N, 1, H, W) -> (x_hat, mu, logvar); deterministic decodes z = mu."""
        mu, logvar, _ = self.encoder(x)
        z = mu if deterministic else reparameterize(mu, logvar)
        return self.decoder(z), mu, logvar

    def sample(self, n: int) -> Tensor:
        """n images decoded from z ~ N(0, I): (n, 1, H, W)."""
        return self.decoder(torch.randn(n, self.z_dim, device=self.decoder.fc[0].weight.device))
