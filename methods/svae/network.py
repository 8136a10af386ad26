"""SVAE: slice VAE with a transformer over the slice embeddings of a volume, plain torch.

Behrendt et al., "Capturing inter-slice dependencies of 3D brain MRI-scans for unsupervised
anomaly detection", MIDL 2022 (short paper). No reference code is public; this is our
reconstruction of the paper's description (see methods/svae/README.md):

1. a shared 2D conv encoder (Baur et al.'s, as in ``methods.ae``) embeds every slice into a
   ``d_model`` vector;
2. a learned slice-position embedding is added and a transformer encoder lets every slice's
   code attend to all slices of the same volume;
3. per slice, a linear head gives mu and log sigma, z is sampled (reparameterisation);
4. the shared 2D decoder reconstructs every slice.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from methods.ae.network import ConvDecoder, ConvEncoder


class SliceVAE(nn.Module):
    """x: (B, S, 1, H, W) slice sequences in [0, 1] -> (x_hat, mu, log_sigma).

    x_hat: (B, S, 1, H, W) linear output; mu, log_sigma: (B, S, z_dim).
    """

    def __init__(self, image_size: int = 96, z_dim: int = 128, d_model: int = 128,
                 n_layers: int = 2, n_heads: int = 4, max_slices: int = 64,
                 intermediate_resolution: int = 8, base_filters: int = 32,
                 max_filters: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        args = (image_size, intermediate_resolution, base_filters, max_filters)
        self.encoder = ConvEncoder(*args)
        self.decoder = ConvDecoder(*args)
        self.bottom = self.encoder.out_shape
        flat = math.prod(self.bottom)
        self.max_slices = max_slices
        self.to_embedding = nn.Linear(flat, d_model)
        self.slice_position = nn.Parameter(torch.zeros(1, max_slices, d_model))
        nn.init.normal_(self.slice_position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=4 * d_model, dropout=dropout, batch_first=True,
            norm_first=True,
        )
        self.inter_slice = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.to_mu = nn.Linear(d_model, z_dim)
        self.to_log_sigma = nn.Linear(d_model, z_dim)
        self.from_latent = nn.Linear(z_dim, flat)

    def encode(self, x: Tensor, first_slice: int = 0) -> tuple[Tensor, Tensor]:
        """x: (B, S, 1, H, W) -> mu, log_sigma: (B, S, z_dim), each slice seeing its volume.

        first_slice: axial index of x[:, 0] in the volume (for contiguous sub-stacks), so the
        position embedding stays the slice's absolute position.
        """
        b, s = x.shape[:2]
        if first_slice + s > self.max_slices:
            raise ValueError(f"slices {first_slice}..{first_slice + s - 1} exceed "
                             f"max_slices={self.max_slices}")
        h = self.encoder(x.flatten(0, 1)).flatten(1)
        position = self.slice_position[:, first_slice:first_slice + s]
        h = self.to_embedding(h).view(b, s, -1) + position
        h = self.inter_slice(h)
        return self.to_mu(h), self.to_log_sigma(h)

    def decode(self, z: Tensor) -> Tensor:
        """z: (B, S, z_dim) -> x_hat: (B, S, 1, H, W)."""
        b, s = z.shape[:2]
        h = self.from_latent(z.flatten(0, 1)).view(-1, *self.bottom)
        out = self.decoder(h)
        return out.view(b, s, *out.shape[1:])

    def forward(self, x: Tensor, sample: bool = True,
                first_slice: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """sample=False decodes z = mu (deterministic maps at test time)."""
        mu, log_sigma = self.encode(x, first_slice)
        z = mu + torch.exp(log_sigma) * torch.randn_like(mu) if sample else mu
        return self.decode(z), mu, log_sigma
