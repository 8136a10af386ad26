"""AE: dense-bottleneck autoencoder; anomaly map = |x - x_rec| (Baur et al. 2021)."""
from __future__ import annotations

from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .network import DenseAutoencoder

__all__ = ["AE"]


@register_method("ae")
class AE(AnomalyMethod):
    family = "reconstruction"
    paper = "Baur et al., MedIA 69:101952 (2021)"
    epochs = {"paper": 1600, "quick": 30, "smoke": 1}
    profiles = {"smoke": {"channels": (8, 16, 16, 16), "latent_dim": 16}}

    def __init__(self, *, lr: float = 1e-4, image_size: int = 96,
                 channels: tuple[int, ...] = (32, 64, 128, 256), latent_dim: int = 512) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = DenseAutoencoder(image_size, tuple(channels), latent_dim)

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["image"]
        return {"loss": (self.net(x) - x).abs().mean()}

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        rec = self.net(x)
        return AnomalyOutput(anomaly_map=(x - rec).abs(), reconstruction=rec)
