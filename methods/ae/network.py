"""Dense-bottleneck convolutional autoencoder (Baur et al. 2021), plain torch."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class DenseAutoencoder(nn.Module):
    """x: (N, 1, H, W) in [0, 1] -> reconstruction of the same shape, through a dense latent.

    H and W must be divisible by 2**len(channels).
    """

    def __init__(self, image_size: int = 96, channels: tuple[int, ...] = (32, 64, 128, 256),
                 latent_dim: int = 512) -> None:
        super().__init__()
        factor = 2 ** len(channels)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by {factor}")
        self.bottom = (channels[-1], image_size // factor, image_size // factor)
        flat = channels[-1] * (image_size // factor) ** 2
        widths = (1, *channels)
        self.encoder = nn.Sequential(*[_down(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.to_latent = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)
        rev = tuple(reversed(channels))
        self.decoder = nn.Sequential(
            *[_up(a, b) for a, b in zip(rev[:-1], rev[1:])],
            nn.ConvTranspose2d(rev[-1], 1, 4, 2, 1),
            nn.Sigmoid(),
        )

    def encode(self, x: Tensor) -> Tensor:
        return self.to_latent(self.encoder(x).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(self.from_latent(z).view(-1, *self.bottom))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))
