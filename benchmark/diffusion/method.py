"""What DDPM, pDDPM and cDDPM share as anomaly-detection methods (Behrendt et al. 2025).

Training (paper Sec. 3.1, 4.4): images [0, 1] -> [-1, 1]; t ~ Uniform{1..T}; x_t from
q(x_t | x_0) with simplex noise; the UNet predicts x_0 directly; loss |x_0 - x_0^rec|.
Testing: ONE network call from x_t at a fixed t_test (default 500), or the average of the
reconstructions at t_test in (250, 500, 750) with fresh noise each (the paper's ENS);
anomaly map |x - x_rec|. A method subclass changes only what differs: the region that is
noised (pDDPM's box) and the condition vector (cDDPM's encoder).

Subclasses are registered in methods/<name>/method.py; this base is not a method itself.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from benchmark.diffusion.schedules import DiffusionSchedule, from_model_range, to_model_range
from benchmark.diffusion.simplex import simplex_noise
from benchmark.diffusion.unet import DiffusionUNet
from benchmark.method import AnomalyMethod, AnomalyOutput

NoiseType = Literal["simplex", "gaussian"]
NOISE_TYPES = ("simplex", "gaussian")

# Profile overrides shared by the three methods: the paper's UNet layout with fewer channels
# and res blocks, so CPU runs stay short ("smoke": one step in seconds; "quick": a whole
# run of pDDPM + cDDPM on both sequences in minutes on 2 CPU cores - pDDPM's test costs 4
# UNet passes per slice, cDDPM's ENS 3, over ~60 test volumes of 50 slices per sequence).
# quick (and reference, which falls back to it) also trains with 4x the paper's learning
# rate: on the quick data's validation curves cDDPM reached in 10 epochs at lr 4e-4 the
# validation AUPRC it reached in 30 at 1e-4 (docs/convergence.md); paper keeps 1e-4.
UNET_PROFILES = {
    # smoke: one more level, so the attention works on 12x12 tokens, not 24x24 (27 % less
    # CPU per pass at 8 channels)
    "smoke": {"base_channels": 8, "norm_groups": 8, "num_res_blocks": 1, "head_channels": 8,
              "channel_mult": (1, 2, 2, 2)},
    "quick": {"base_channels": 16, "norm_groups": 16, "num_res_blocks": 1, "head_channels": 16,
              "lr": 4e-4},
}


class DiffusionMethod(AnomalyMethod):
    """Shared hooks; the typed keyword arguments of subclasses are the configuration.

    Hyperparameters read from ``self.hparams`` (subclasses declare them in ``__init__``):
    lr, schedule, timesteps, noise, noise_shared, test_t, test_ensemble, ensemble, and
    the UNet's base_channels, channel_mult, num_res_blocks, head_channels, norm_groups.
    """

    family = "diffusion"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: inference 1.1-1.4x
    # in channels-last; training is slower in it (PyTorch's GroupNorm backward)
    channels_last = frozenset({"infer"})

    def _build_diffusion(self, cond_dim: int | None) -> None:
        hp = self.hparams
        if hp.noise not in NOISE_TYPES:
            raise ValueError(f"noise={hp.noise!r}; allowed: {', '.join(NOISE_TYPES)}")
        self.schedule = DiffusionSchedule(hp.schedule, hp.timesteps)
        for t in (hp.test_t, *hp.test_ensemble):
            if not 1 <= int(t) <= hp.timesteps:
                raise ValueError(f"test_t / test_ensemble values must be in 1..{hp.timesteps}, got {t}")
        self.unet = DiffusionUNet(
            base_channels=hp.base_channels,
            channel_mult=tuple(hp.channel_mult),
            num_res_blocks=hp.num_res_blocks,
            head_channels=hp.head_channels,
            norm_groups=hp.norm_groups,
            cond_dim=cond_dim,
        )

    # ------------------------------------------------------------------ pieces to override
    def condition(self, x: Tensor) -> Tensor | None:
        """Condition vector c for the UNet from the clean slice x: (N, 1, H, W) in [0, 1]."""
        return None

    def training_region(self, x: Tensor) -> Tensor | None:
        """(N, 1, H, W) mask of the pixels that are noised and scored, or None for all."""
        return None

    # ------------------------------------------------------------------ shared machinery
    def sample_noise(self, shape: torch.Size) -> Tensor:
        """Noise for q_sample on the model's device: simplex (fresh map per slice unless
        noise_shared) or Gaussian."""
        if self.hparams.noise == "gaussian":
            return torch.randn(shape, device=self.device)
        return simplex_noise(tuple(shape), shared=self.hparams.noise_shared, device=self.device)

    def denoise(self, x_t: Tensor, t: Tensor, cond: Tensor | None) -> Tensor:
        """x_t: (N, 1, H, W) in [-1, 1] units, t: (N,) 0-based -> x_0 prediction, same units."""
        return self.unet(x_t, t, cond)

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        x = batch["image"]
        x0 = to_model_range(x)
        t = self.schedule.sample_timesteps(x.shape[0])
        x_t = self.schedule.q_sample(x0, t, self.sample_noise(x.shape))
        region = self.training_region(x)
        if region is not None:
            x_t = region * x_t + (1 - region) * x0  # clean context outside the region
        error = (self.denoise(x_t, t, self.condition(x)) - x0).abs()  # L_rec, paper Eq. 6
        if region is None:
            return {"loss": error.mean()}
        return {"loss": (error * region).sum() / region.sum().clamp_min(1)}

    def reconstruct(self, x: Tensor, t: int, cond: Tensor | None) -> Tensor:
        """One-step reconstruction from the paper's t (1-based): x (N,1,H,W) in [0,1] ->
        x_0^rec in [0, 1] units (unclamped)."""
        x0 = to_model_range(x)
        index = self.schedule.index(t - 1, x.shape[0])
        x_t = self.schedule.q_sample(x0, index, self.sample_noise(x.shape))
        return from_model_range(self.denoise(x_t, index, cond))

    def test_timesteps(self) -> tuple[int, ...]:
        hp = self.hparams
        return tuple(int(t) for t in hp.test_ensemble) if hp.ensemble else (int(hp.test_t),)

    @torch.no_grad()
    def anomaly(self, x: Tensor) -> AnomalyOutput:
        """x: (N, 1, H, W) in [0, 1] -> map |x - x_rec| (x_rec averaged over the test t's)."""
        cond = self.condition(x)
        steps = self.test_timesteps()
        rec = sum(self.reconstruct(x, t, cond) for t in steps) / len(steps)
        # The residual uses the raw prediction (as the reference); the returned image is clamped.
        return AnomalyOutput(anomaly_map=(x - rec).abs(), reconstruction=rec.clamp(0, 1))

    def result_tags(self) -> dict:
        hp = self.hparams
        return {"ens": bool(hp.ensemble), "test_t": "+".join(map(str, self.test_timesteps()))}
