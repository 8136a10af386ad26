"""cDDPM: DDPM conditioned on an encoding of the clean input (Behrendt et al., CBM 2025).

c = F_enc(x_0) (a ResNet-50 on the clean slice), concatenated with the time embedding and
projected per residual block to FiLM scale and shift (paper Sec. 3.2). Optionally F_enc is
first pre-trained by masked image modelling (SparK, Sec. 3.3) as a separate stage of the
same run; its weights then initialise the encoder, which is fine-tuned with the UNet.
See README.md for every choice between the paper and the authors' code.
"""
from __future__ import annotations

import torch
from torch import Tensor

from benchmark.diffusion.method import UNET_PROFILES, DiffusionMethod, NoiseType
from benchmark.diffusion.schedules import ScheduleName
from benchmark.method import per_profile
from benchmark.registry import register_method

from .network import SparKPretrainer, build_encoder

__all__ = ["CDDPM"]

_SMOKE = {"encoder": "resnet10", "encoder_width": 0.25, "decoder_width": 32, "cond_dim": 16}
# quick and smoke: one test noise level instead of the ensemble's three (inference is a
# third of the cost; the main command's budget goes to training); reference keeps ENS
_QUICK = {"encoder": "resnet18", "encoder_width": 0.5, "decoder_width": 128}


@register_method("cddpm")
class CDDPM(DiffusionMethod):
    family = "diffusion"
    # README "Performance" (perf.bench_diffusion --profile paper, 2-core CPU, t=500)
    reference_cost = {"paper": (0.2, 79.0)}
    paper = "Behrendt et al., Computers in Biology and Medicine 186:109660 (2025)"
    epochs = {"paper": 1200, "reference": 40, "quick": 16, "smoke": 1}
    pretrain_epochs = {"paper": 1200, "reference": 10, "quick": 3, "smoke": 1}
    profiles = {
        "smoke": {**UNET_PROFILES["smoke"], **_SMOKE, "ensemble": False},
        "quick": {**UNET_PROFILES["quick"], **_QUICK, "ensemble": False},
        "reference": {**UNET_PROFILES["quick"], **_QUICK},
    }
    precision = "16-mixed"  # the reference trains cDDPM with fp16 AMP (DDPM/pDDPM in fp32)

    def __init__(
        self,
        *,
        lr: float = 1e-4,
        cond_dim: int = 128,
        encoder: str = "resnet50",
        encoder_width: float = 1.0,
        encoder_drop_path: float = 0.05,
        encoder_zero_init_last: bool = True,
        encoder_shortcut_bias: bool = False,
        pretrain: bool = True,
        mask_ratio: float = 0.65,
        pretrain_lr: float = 1e-4,
        pretrain_weight_decay: float = 0.05,
        decoder_width: int = 512,
        schedule: ScheduleName = "cosine",
        timesteps: int = 1000,
        noise: NoiseType = "simplex",
        noise_shared: bool = False,
        test_t: int = 500,
        test_ensemble: tuple = (250, 500, 750),
        ensemble: bool = True,
        base_channels: int = 128,
        channel_mult: tuple = (1, 2, 2),
        num_res_blocks: int = 3,
        head_channels: int = 64,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = build_encoder(encoder, cond_dim, encoder_width, encoder_drop_path,
                                     encoder_zero_init_last, encoder_shortcut_bias)
        self._build_diffusion(cond_dim=cond_dim)
        # The pre-training head exists only when the run pre-trains, so checkpoints of
        # runs without SSL carry no unused decoder.
        self.spark = (
            SparKPretrainer(self.encoder, mask_ratio, decoder_width=decoder_width)
            if pretrain else None
        )

    def stages(self) -> list[str]:
        return ["pretrain", "main"] if self.hparams.pretrain else ["main"]

    def stage_epochs(self, stage: str, profile: str) -> int:
        if stage == "pretrain":
            return int(per_profile(self.pretrain_epochs, profile, "CDDPM.pretrain_epochs"))
        return super().stage_epochs(stage, profile)

    def setup(self, stage: str) -> None:
        """Freeze what the current training stage does not use, before Lightning wraps the
        model (DDP refuses trainable parameters that receive no gradient)."""
        pretraining = self.stage == "pretrain"
        self.unet.requires_grad_(not pretraining)
        self.encoder.fc.requires_grad_(not pretraining)  # SparK reads the stages, not fc
        if self.spark is not None:
            self.spark.requires_grad_(pretraining)

    def condition(self, x: Tensor) -> Tensor:
        """c = F_enc(x_0): (N, cond_dim) from the clean slice x (N, 1, H, W) in [0, 1]."""
        return self.encoder(x)

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.stage == "pretrain":
            loss, _, _ = self.spark(self.encoder, batch["image"])
            return {"loss": loss}
        return super().training_losses(batch)

    def configure_optimizers(self):
        if self.stage == "pretrain":  # SparK's optimiser, as the authors configure it
            params = list(self.encoder.parameters()) + list(self.spark.parameters())
            return torch.optim.AdamW(
                params, lr=self.hparams.pretrain_lr,
                weight_decay=self.hparams.pretrain_weight_decay, betas=(0.9, 0.95),
            )
        params = list(self.encoder.parameters()) + list(self.unet.parameters())
        return torch.optim.Adam(params, lr=self.hparams.lr)

    def result_tags(self) -> dict:
        return {**super().result_tags(), "ssl": bool(self.hparams.pretrain),
                "cond_dim": int(self.hparams.cond_dim)}
