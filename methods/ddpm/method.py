"""DDPM: simplex-noise DDPM with one-step x_0 reconstruction (Wyatt et al. 2022, as
re-implemented by Behrendt et al. 2025 for UAD in brain MRI). See README.md."""
from __future__ import annotations

from benchmark.diffusion.method import UNET_PROFILES, DiffusionMethod, NoiseType
from benchmark.diffusion.schedules import ScheduleName
from benchmark.registry import register_method

__all__ = ["DDPM"]


@register_method("ddpm")
class DDPM(DiffusionMethod):
    family = "diffusion"
    # README "Performance" (perf.bench_diffusion --profile paper, 2-core CPU, t=500)
    reference_cost = {"paper": (0.2, 75.0)}
    paper = "Wyatt et al., CVPRW 2022 (AnoDDPM); as in Behrendt et al., CBM 186:109660 (2025)"
    epochs = {"paper": 1600, "reference": 40, "quick": 16, "smoke": 1}
    profiles = UNET_PROFILES
    precision = "32-true"  # the reference trains DDPM in fp32

    def __init__(
        self,
        *,
        lr: float = 1e-4,
        schedule: ScheduleName = "cosine",
        timesteps: int = 1000,
        noise: NoiseType = "simplex",
        noise_shared: bool = False,
        test_t: int = 500,
        test_ensemble: tuple = (250, 500, 750),
        ensemble: bool = False,
        base_channels: int = 128,
        channel_mult: tuple = (1, 2, 2),
        num_res_blocks: int = 3,
        head_channels: int = 64,
        norm_groups: int = 32,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._build_diffusion(cond_dim=None)
