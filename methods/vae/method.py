"""VAE: dense-bottleneck variational autoencoder (Baur et al. 2021), beta_VAE = 0.001."""
from __future__ import annotations

import torch
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method
from methods.ae.method import RESIDUALS, Residual, l1_sum_loss, residual_map

from .network import DenseVAE, kl_standard_normal

__all__ = ["VAE"]


@register_method("vae")
class VAE(AnomalyMethod):
    """x: (N, 1, H, W) in [0, 1] -> q(z|x) -> x_hat; loss = sum-L1 + beta * KL (Baur Eq. 2)."""

    family = "reconstruction"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: train 1.2x, inference 1.3x
    channels_last = frozenset({"train", "infer"})
    paper = "Baur et al., MedIA 69:101952 (2021)"
    epochs = {"paper": 1600, "reference": 150, "quick": 10, "smoke": 1}
    profiles = {
        "smoke": {"latent_dim": 8, "base_filters": 4, "max_filters": 8},
        "quick": {"base_filters": 16, "max_filters": 64, "lr": 1e-3},
    }

    def __init__(self, *, lr: float = 1e-4, beta1: float = 0.5, beta: float = 0.001,
                 image_size: int = 96, latent_dim: int = 128, intermediate_resolution: int = 8,
                 base_filters: int = 32, max_filters: int = 128, dropout: float = 0.1,
                 residual: Residual = "abs", sample_at_test: bool = False) -> None:
        """beta: KL weight, 0.001 as the cDDPM paper states (Baur's code: 1).
        sample_at_test: decode a sampled z at test time as Baur's TF graph does; the default
        decodes z = mu so maps are deterministic."""
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"residual={residual!r}; allowed: {', '.join(RESIDUALS)}")
        self.save_hyperparameters()
        self.net = DenseVAE(image_size, latent_dim, intermediate_resolution, base_filters,
                            max_filters, dropout)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr,
                                betas=(self.hparams.beta1, 0.999))

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["image"]
        x_hat, mu, log_sigma = self.net(x, sample=True)
        rec = l1_sum_loss(x, x_hat)
        kl = kl_standard_normal(mu, log_sigma).mean()
        return {"loss": rec + self.hparams.beta * kl, "rec": rec, "kl": kl}

    @torch.no_grad()
    def anomaly(self, x: Tensor) -> AnomalyOutput:
        rec = self.net(x, sample=self.hparams.sample_at_test)[0].clamp(0, 1)
        return AnomalyOutput(anomaly_map=residual_map(x, rec, self.hparams.residual),
                             reconstruction=rec)
