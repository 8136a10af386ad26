"""pDDPM: patched DDPM (Behrendt et al., MIDL 2023 / PMLR 227, 2024). See README.md.

Training noises one random box of a fixed non-overlapping grid (2x2 boxes of 48 px on a
96 px slice); the rest of the slice stays clean as context and the loss is on the box.
Testing noises each box in turn at t_test with the same noise map and assembles the
box predictions into one reconstruction.
"""
from __future__ import annotations

import torch
from torch import Tensor

from benchmark.diffusion.method import UNET_PROFILES, DiffusionMethod, NoiseType
from benchmark.diffusion.patches import box_masks, grid_boxes
from benchmark.diffusion.schedules import ScheduleName, from_model_range, to_model_range
from benchmark.registry import register_method

__all__ = ["PDDPM"]


@register_method("pddpm")
class PDDPM(DiffusionMethod):
    family = "diffusion"
    # README "Performance" (perf.bench_diffusion --profile paper, 2-core CPU, t=500)
    reference_cost = {"paper": (0.2, 303.0)}
    paper = "Behrendt et al., MIDL 2023, PMLR 227:1019-1032 (2024)"
    epochs = {"paper": 1600, "reference": 40, "quick": 16, "smoke": 1}
    profiles = UNET_PROFILES
    precision = "32-true"  # the reference trains pDDPM in fp32

    def __init__(
        self,
        *,
        lr: float = 1e-4,
        patch_size: int = 48,
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

    def _boxes(self, x: Tensor) -> list[tuple[int, int, int, int]]:
        return grid_boxes(x.shape[-2], x.shape[-1], self.hparams.patch_size)

    def training_region(self, x: Tensor) -> Tensor:
        """One uniformly random grid box per slice: (N, 1, H, W), 1 inside the box."""
        boxes = self._boxes(x)
        which = torch.randint(0, len(boxes), (x.shape[0],), device=x.device)
        return box_masks(boxes, which, x.shape[-2], x.shape[-1])

    def reconstruct(self, x: Tensor, t: int, cond: Tensor | None) -> Tensor:
        """One pass per grid box (same noise for all boxes, as the reference), each box's
        prediction pasted into its place: x (N,1,H,W) in [0,1] -> x_rec in [0,1] units."""
        x0 = to_model_range(x)
        index = self.schedule.index(t - 1, x.shape[0])
        x_t = self.schedule.q_sample(x0, index, self.sample_noise(x.shape))
        rec = torch.zeros_like(x0)
        boxes = self._boxes(x)
        for k in range(len(boxes)):
            which = torch.full((x.shape[0],), k, device=x.device, dtype=torch.long)
            box = box_masks(boxes, which, x.shape[-2], x.shape[-1])
            pred = self.denoise(box * x_t + (1 - box) * x0, index, cond)
            rec = rec + box * pred  # boxes tile the slice exactly once
        return from_model_range(rec)
