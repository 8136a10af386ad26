"""Thresh: intensity thresholding (Meissen et al., BrainLes@MICCAI 2021, arXiv 2109.06023).

FLAIR/T2 lesions are hyperintense, so the (histogram-equalised) intensity itself is the
anomaly map; a global threshold, chosen by the harness on validation data, segments them.
The reference (FeliMe/brain_sas_baseline ``histogram_equalization``) equalises each test
volume with skimage ``equalize_hist(nbins=256, mask=img > 0)`` and resets the background
to 0. Here the equalising histogram is by default the healthy TRAINING set's (pooled over
all brain voxels, :meth:`fit_statistics`), so every volume goes through the same mapping
and no statistic is taken from test data; ``equalize="volume"`` is the reference's
per-volume variant.
"""
from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

__all__ = ["IntensityThreshold", "apply_cdf", "equalize_cdf"]

Equalize = Literal["train", "volume", "none"]
Polarity = Literal["hyper", "hypo"]


def equalize_cdf(values: Tensor, nbins: int = 256) -> tuple[Tensor, Tensor]:
    """Histogram of ``values`` (1-D) on ``nbins`` equal bins spanning [min, max] of values.

    Returns (bin_centres, cdf) as skimage ``exposure.cumulative_distribution`` does for
    float images: cdf[k] = fraction of values in bins 0..k.
    """
    values = values.double()
    if values.numel() == 0:
        values = torch.zeros(1, dtype=torch.float64)
    lo, hi = float(values.min()), float(values.max())
    hi = hi if hi > lo else lo + 1e-6
    hist = torch.histc(values, bins=nbins, min=lo, max=hi)
    cdf = hist.cumsum(0) / hist.sum()
    centres = lo + (torch.arange(nbins, dtype=torch.float64) + 0.5) * (hi - lo) / nbins
    return centres.float(), cdf.float()


def apply_cdf(x: Tensor, centres: Tensor, cdf: Tensor) -> Tensor:
    """Piecewise-linear interpolation of cdf at x (numpy ``interp``, as skimage does)."""
    xf = x.reshape(-1).clamp(centres[0], centres[-1])
    idx = torch.searchsorted(centres, xf).clamp(1, len(centres) - 1)
    x0, x1 = centres[idx - 1], centres[idx]
    w = (xf - x0) / (x1 - x0)
    return (cdf[idx - 1] * (1 - w) + cdf[idx] * w).reshape(x.shape)


@register_method("thresh")
class IntensityThreshold(AnomalyMethod):
    family = "statistical"
    paper = "Meissen et al., BrainLes@MICCAI 2021 (arXiv 2109.06023)"
    requires_training = False
    epochs = {"paper": 0, "reference": 0, "quick": 0, "smoke": 0}

    def __init__(self, *, equalize: Equalize = "train", polarity: Polarity = "hyper",
                 nbins: int = 256) -> None:
        """equalize: "train" (CDF of the healthy training brain voxels), "volume" (each
        test volume by its own brain histogram, the reference) or "none" (raw intensity).
        polarity: "hyper" (lesions brighter, T2/FLAIR) or "hypo" (darker: map = 1 - value).
        nbins: histogram bins (reference 256)."""
        super().__init__()
        if equalize not in get_args(Equalize):
            raise ValueError(f"equalize={equalize!r}; allowed: {', '.join(get_args(Equalize))}")
        if polarity not in get_args(Polarity):
            raise ValueError(f"polarity={polarity!r}; allowed: {', '.join(get_args(Polarity))}")
        self.save_hyperparameters()
        # identity mapping until fit_statistics has seen the healthy training set
        self.register_buffer("bin_centres", (torch.arange(nbins) + 0.5) / nbins)
        self.register_buffer("cdf", (torch.arange(nbins) + 0.5) / nbins)
        self.register_buffer("n_voxels", torch.tensor(0, dtype=torch.long))

    def fit_statistics(self, loader: Any) -> None:
        """Pool the brain voxels (batch["mask"] > 0) of the healthy training batches."""
        hist = torch.zeros(self.hparams.nbins, dtype=torch.float64)
        for batch in loader:
            values = batch["image"][batch["mask"] > 0].double().clamp(0, 1)
            hist += torch.histc(values, bins=self.hparams.nbins, min=0.0, max=1.0)
        if hist.sum() == 0:
            raise ValueError("thresh: the training data has no brain voxels (empty masks)")
        self.cdf.copy_((hist.cumsum(0) / hist.sum()).float())
        self.n_voxels.fill_(int(hist.sum()))

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        """x: (N, 1, H, W) in [0, 1], all slices of one volume for equalize="volume"."""
        brain = x > 0  # the reference's mask: non-zero voxels
        mode = self.hparams.equalize
        if mode == "train":
            eq = apply_cdf(x, self.bin_centres.to(x), self.cdf.to(x))
        elif mode == "volume":
            centres, cdf = equalize_cdf(x[brain], self.hparams.nbins)
            eq = apply_cdf(x, centres.to(x), cdf.to(x))
        else:
            eq = x
        amap = eq if self.hparams.polarity == "hyper" else 1 - eq
        return AnomalyOutput(anomaly_map=amap * brain)

    @torch.no_grad()
    def predict_volume(self, x: Tensor, batch_size: int = 50) -> AnomalyOutput:
        """The whole volume at once: per-volume equalisation needs every slice together."""
        return self.anomaly(x)

    def result_tags(self) -> dict[str, Any]:
        return {"equalize": self.hparams.equalize}
