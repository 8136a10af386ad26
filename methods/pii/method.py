"""PII: Poisson image interpolation, self-supervised (Tan et al., MICCAI 2021)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .network import WideResNetAE
from .poisson import pii_batch

__all__ = ["PII"]


@register_method("pii")
class PII(AnomalyMethod):
    family = "self-supervised"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: train 1.15x, inference 1.25x
    channels_last = frozenset({"train", "infer"})
    paper = "Tan et al., MICCAI 2021"
    # UPD: 10,000 steps at batch 32 = 320k slices ~ 860 epochs of 372 slices
    epochs = {"paper": 860, "reference": 30, "quick": 15, "smoke": 1}
    profiles = {"smoke": {"k": 1, "base": 4}}

    def __init__(self, *, lr: float = 1e-3, k: int = 4, base: int = 16, dropout: float = 0.0,
                 alpha_range: tuple[float, float] = (0.05, 0.95)) -> None:
        """lr: Adam (UPD 1e-3, wd 0). k, base: widening factor and first width of the
        Wide-ResNet AE (UPD depth 16, k 4). alpha_range: U(a, b) of the interpolation factor."""
        super().__init__()
        self.save_hyperparameters()
        self.net = WideResNetAE(k, base, dropout)

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Blend a patch of another slice of the batch into each slice; BCE on the factor."""
        x = batch["image"]
        src = x.roll(1, dims=0)  # "another random training slice": the batch is shuffled
        # validation blends the same patches every epoch, so val/loss compares checkpoints
        seed = int(torch.randint(2 ** 31, (1,))) if self.training else 0
        gen = torch.Generator().manual_seed(seed)
        synth = pii_batch(x, src, gen, tuple(self.hparams.alpha_range))
        logits = self.net(synth.image)
        return {"loss": F.binary_cross_entropy_with_logits(logits, synth.label)}

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        fg = (x > x.flatten(1).amin(1).view(-1, 1, 1, 1)).to(x.dtype)  # UPD: x > min
        amap = torch.sigmoid(self.net(x)) * fg
        return AnomalyOutput(anomaly_map=amap, score=amap.flatten(1).amax(1))
