"""AE: dense-bottleneck autoencoder; anomaly map = reconstruction residual (Baur et al. 2021)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .network import DenseAutoencoder

__all__ = ["AE", "RESIDUALS", "residual_map"]

Residual = Literal["abs", "positive"]
RESIDUALS = ("abs", "positive")


def residual_map(x: Tensor, x_hat: Tensor, residual: Residual) -> Tensor:
    """x, x_hat: (N, 1, H, W). "abs": |x - x_hat| (Behrendt et al.'s evaluation, all their
    baselines); "positive": max(x - x_hat, 0) (Baur et al.'s keepOnlyPositiveResiduals, for
    hyperintense lesions)."""
    if residual == "abs":
        return (x - x_hat).abs()
    if residual == "positive":
        return (x - x_hat).clamp_min(0)
    raise ValueError(f"residual={residual!r}; allowed: {', '.join(RESIDUALS)}")


def l1_sum_loss(x: Tensor, x_hat: Tensor) -> Tensor:
    """Baur et al.'s reconstruction loss: L1 summed over the pixels of a slice, batch mean."""
    return (x - x_hat).abs().flatten(1).sum(dim=1).mean()


@register_method("ae")
class AE(AnomalyMethod):
    """x: (N, 1, H, W) in [0, 1] -> dense latent (latent_dim) -> x_hat; map = residual."""

    family = "reconstruction"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: train 1.2x, inference 1.9x
    channels_last = frozenset({"train", "infer"})
    paper = "Baur et al., MedIA 69:101952 (2021)"
    # 1600 = the cDDPM paper's training cap (Sec. 4.4); Baur's code: <= 1000 + early stopping.
    epochs = {"paper": 1600, "reference": 150, "quick": 10, "smoke": 1}
    profiles = {
        "smoke": {"latent_dim": 16, "base_filters": 4, "max_filters": 8},
        "quick": {"base_filters": 16, "max_filters": 64, "lr": 1e-3},
    }

    def __init__(self, *, lr: float = 1e-4, beta1: float = 0.5, image_size: int = 96,
                 latent_dim: int = 128, intermediate_resolution: int = 8, base_filters: int = 32,
                 max_filters: int = 128, dropout: float = 0.2,
                 residual: Residual = "abs") -> None:
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"residual={residual!r}; allowed: {', '.join(RESIDUALS)}")
        self.save_hyperparameters()
        self.net = DenseAutoencoder(image_size, latent_dim, intermediate_resolution, base_filters,
                                    max_filters, dropout)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr,
                                betas=(self.hparams.beta1, 0.999))

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["image"]
        return {"loss": l1_sum_loss(x, self.net(x))}

    @torch.no_grad()
    def anomaly(self, x: Tensor) -> AnomalyOutput:
        rec = self.net(x).clamp(0, 1)
        return AnomalyOutput(anomaly_map=residual_map(x, rec, self.hparams.residual),
                             reconstruction=rec)
