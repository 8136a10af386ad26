"""Intensity thresholding (Meissen et al. 2022): the input intensity is the anomaly map.

No training: the only statistics (used to make the map comparable across volumes) come
from the healthy training set through ``fit_statistics``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

__all__ = ["IntensityThreshold"]


@register_method("thresh")
class IntensityThreshold(AnomalyMethod):
    family = "statistical"
    paper = "Meissen et al., BrainLes@MICCAI 2021 (arXiv 2109.06023)"
    requires_training = False
    epochs = {"paper": 0, "quick": 0, "smoke": 0}

    def __init__(self, *, polarity: str = "hyper") -> None:
        """polarity: "hyper" (lesions brighter than tissue, T2/FLAIR) or "hypo" (darker)."""
        super().__init__()
        if polarity not in ("hyper", "hypo"):
            raise ValueError(f"polarity={polarity!r}; allowed: hyper, hypo")
        self.save_hyperparameters()
        # Mean and std of healthy brain intensities, from the training set only.
        self.register_buffer("healthy_mean", torch.tensor(0.0))
        self.register_buffer("healthy_std", torch.tensor(1.0))

    def fit_statistics(self, loader) -> None:
        total = torch.zeros((), dtype=torch.float64)
        total_sq = torch.zeros((), dtype=torch.float64)
        count = 0
        for batch in loader:
            values = batch["image"][batch["mask"] > 0].double()
            total += values.sum()
            total_sq += (values**2).sum()
            count += values.numel()
        if count == 0:
            raise ValueError("thresh: the training data has no brain voxels (empty masks)")
        mean = total / count
        self.healthy_mean.fill_(mean.item())
        self.healthy_std.fill_(max(((total_sq / count) - mean**2).sqrt().item(), 1e-6))

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        z = (x - self.healthy_mean) / self.healthy_std
        return AnomalyOutput(anomaly_map=z if self.hparams.polarity == "hyper" else -z)
