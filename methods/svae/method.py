"""SVAE: slice VAE with inter-slice attention (Behrendt et al., MIDL 2022), beta_VAE = 0.001.

Trains on whole volumes (``sampling = "volume"``); at test time ``anomaly`` receives the D
slices of one volume in order and reconstructs them jointly.
"""
from __future__ import annotations

import random

import torch
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method
from methods.ae.method import RESIDUALS, Residual, l1_sum_loss, residual_map
from methods.vae.network import kl_standard_normal

from .network import SliceVAE

__all__ = ["SVAE"]


@register_method("svae")
class SVAE(AnomalyMethod):
    """batch["image"]: (B, 1, H, W, D) volumes -> per-slice VAE codes that attend across D."""

    family = "reconstruction"
    paper = "Behrendt et al., MIDL 2022 (short paper)"
    sampling = "volume"
    epochs = {"paper": 1600, "reference": 30, "quick": 2, "smoke": 1}
    profiles = {
        "smoke": {"latent_dim": 8, "d_model": 16, "n_layers": 1, "n_heads": 2,
                  "base_filters": 4, "max_filters": 8},
        "quick": {"base_filters": 8, "max_filters": 32, "d_model": 64, "slices_per_item": 16},
    }

    def __init__(self, *, lr: float = 1e-4, beta1: float = 0.5, beta: float = 0.001,
                 image_size: int = 96, latent_dim: int = 128, d_model: int = 128, n_layers: int = 2,
                 n_heads: int = 4, max_slices: int = 64, intermediate_resolution: int = 8,
                 base_filters: int = 32, max_filters: int = 128, dropout: float = 0.1,
                 slices_per_item: int = 0, residual: Residual = "abs") -> None:
        """beta: KL weight, 0.001 as the cDDPM paper states for SVAE.
        slices_per_item: 0 trains on whole volumes; k > 0 on one random contiguous stack of k
        slices per volume (cheaper; the position embedding keeps absolute slice indices).
        """
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"residual={residual!r}; allowed: {', '.join(RESIDUALS)}")
        if slices_per_item < 0:
            raise ValueError(f"slices_per_item must be >= 0, got {slices_per_item}")
        self.save_hyperparameters()
        self.net = SliceVAE(image_size, latent_dim, d_model, n_layers, n_heads, max_slices,
                            intermediate_resolution, base_filters, max_filters, dropout)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr,
                                betas=(self.hparams.beta1, 0.999))

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["image"]
        if x.ndim != 5:
            raise ValueError(f"svae trains on volumes: batch['image'] must be (B, 1, H, W, D), "
                             f"got {tuple(x.shape)}")
        seq = x.permute(0, 4, 1, 2, 3)  # (B, D, 1, H, W): axial slices as a sequence
        first = 0
        k = self.hparams.slices_per_item
        if 0 < k < seq.shape[1]:
            first = random.randrange(seq.shape[1] - k + 1)
            seq = seq[:, first:first + k]
        x_hat, mu, log_sigma = self.net(seq, sample=True, first_slice=first)
        rec = l1_sum_loss(seq.flatten(0, 1), x_hat.flatten(0, 1))  # per slice, mean over slices
        kl = kl_standard_normal(mu.flatten(0, 1), log_sigma.flatten(0, 1)).mean()
        return {"loss": rec + self.hparams.beta * kl, "rec": rec, "kl": kl}

    @torch.no_grad()
    def anomaly(self, x: Tensor) -> AnomalyOutput:
        """x: (D, 1, H, W), all slices of ONE volume in axial order."""
        rec = self.net(x.unsqueeze(0), sample=False)[0][0].clamp(0, 1)
        return AnomalyOutput(anomaly_map=residual_map(x, rec, self.hparams.residual),
                             reconstruction=rec)
