"""Dense-bottleneck VAE of Baur et al. (MedIA 2021), plain torch.

Same conv encoder/decoder as the AE (``methods.ae.network``); the dense bottleneck gives a
mean and a *log standard deviation* (the reference's ``models/variational_autoencoder.py``
parameterises log sigma, not log variance), each followed by dropout as in the reference.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from methods.ae.network import ConvDecoder, ConvEncoder


def kl_standard_normal(mu: Tensor, log_sigma: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, summed over latent dims.

    mu, log_sigma: (N, d) -> (N,);  0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)
    (Kingma & Welling 2014, Appendix B).
    """
    return 0.5 * (mu.pow(2) + torch.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(dim=1)


class DenseVAE(nn.Module):
    """x: (N, 1, H, W) in [0, 1] -> (x_hat, mu, log_sigma), x_hat linear output."""

    def __init__(self, image_size: int = 96, z_dim: int = 128, intermediate_resolution: int = 8,
                 base_filters: int = 32, max_filters: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        args = (image_size, intermediate_resolution, base_filters, max_filters)
        self.encoder = ConvEncoder(*args)
        self.decoder = ConvDecoder(*args)
        self.bottom = self.encoder.out_shape
        flat = math.prod(self.bottom)
        self.to_mu = nn.Linear(flat, z_dim)
        self.to_log_sigma = nn.Linear(flat, z_dim)
        self.from_latent = nn.Linear(z_dim, flat)
        self.dropout = nn.Dropout(dropout)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (N, 1, H, W) -> mu, log_sigma: (N, z_dim)."""
        h = self.encoder(x).flatten(1)
        return self.dropout(self.to_mu(h)), self.dropout(self.to_log_sigma(h))

    def decode(self, z: Tensor) -> Tensor:
        """z: (N, z_dim) -> x_hat: (N, 1, H, W)."""
        return self.decoder(self.dropout(self.from_latent(z)).view(-1, *self.bottom))

    def forward(self, x: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """sample=False decodes z = mu (deterministic maps at test time)."""
        mu, log_sigma = self.encode(x)
        z = mu + torch.exp(log_sigma) * torch.randn_like(mu) if sample else mu
        return self.decode(z), mu, log_sigma
