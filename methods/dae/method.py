"""DAE: denoising UNet trained to remove coarse noise (Kascenas et al., MIDL 2022)."""
from __future__ import annotations

import torch
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .network import UNet, coarse_noise

__all__ = ["DAE"]


@register_method("dae")
class DAE(AnomalyMethod):
    """Train: f(x + n) -> x with coarse noise n inside the foreground. Test: map = |x - f(x)|."""

    family = "reconstruction"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: train 1.2x, inference 1.3x
    channels_last = frozenset({"train", "infer"})
    paper = "Kascenas et al., MIDL 2022 (PMLR 172)"
    epochs = {"paper": 1600, "reference": 150, "quick": 6, "smoke": 1}
    profiles = {
        "smoke": {"depth": 2, "wf": 2},
        "quick": {"wf": 3, "lr": 1e-3},
    }

    def __init__(self, *, lr: float = 1e-4, weight_decay: float = 1e-5, depth: int = 4,
                 wf: int = 6, noise_res: int = 12, noise_std: float = 0.2,
                 grad_clip: float = 0.5, cosine_t_max: int = 100) -> None:
        """noise_res: side of the coarse noise grid. The reference draws 16x16 noise for
        128 px slices (8-px cells); 12x12 keeps 8-px cells at 96 px (see README).
        grad_clip: max gradient norm (reference 0.5; 0 disables).
        cosine_t_max: CosineAnnealingLR period in epochs (reference 100, stepped per epoch).
        """
        super().__init__()
        self.save_hyperparameters()
        self.net = UNet(in_channels=1, depth=depth, wf=wf)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, amsgrad=True,
                               weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.cosine_t_max)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        # The reference clips the gradient norm at 0.5 in every step; the method owns it so
        # the harness needs no method-specific trainer flag.
        if self.hparams.grad_clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip,
                                gradient_clip_algorithm="norm")

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["image"]
        noisy = x + coarse_noise(x, self.hparams.noise_res, self.hparams.noise_std)
        foreground = (x.sum(dim=1, keepdim=True) > 0.01).float()
        # Masked MSE averaged over all pixels, as the reference's loss_f.
        loss = ((self.net(noisy) - x).pow(2) * foreground).mean()
        return {"loss": loss}

    @torch.no_grad()
    def anomaly(self, x: Tensor) -> AnomalyOutput:
        rec = self.net(x)
        return AnomalyOutput(anomaly_map=(x - rec).abs(), reconstruction=rec.clamp(0, 1))
