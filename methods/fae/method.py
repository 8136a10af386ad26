"""FAE: structural feature autoencoder (Meissen et al., BrainLes@MICCAI 2022)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.backbones import Arch, FeatureExtractor, InputNorm
from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .network import FeatureAE, concat_features, feature_map_size, ssim_map

__all__ = ["FAE"]

_RANDOM_OK = {"allow_random_init": True}  # see methods/rd/method.py


@register_method("fae")
class FAE(AnomalyMethod):
    family = "feature"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: inference 1.3x; training is not faster
    channels_last = frozenset({"infer"})
    paper = "Meissen et al., BrainLes@MICCAI 2022"
    # reference: 10,000 steps at batch 32 = 320k slices ~ 860 epochs of 372 slices
    epochs = {"paper": 860, "reference": 40, "quick": 10, "smoke": 1}
    profiles = {"smoke": {"arch": "tiny_basic", "hidden_dims": (8, 8, 8, 8), **_RANDOM_OK},
                "quick": dict(_RANDOM_OK)}

    def __init__(self, *, lr: float = 2e-4, arch: Arch = "resnet18",
                 stages: tuple[str, ...] = ("layer0", "layer1", "layer2"),
                 hidden_dims: tuple[int, ...] = (100, 150, 200, 300), dropout: float = 0.1,
                 input_norm: InputNorm = "imagenet", weights_path: str | None = None,
                 allow_random_init: bool = False) -> None:
        """lr: Adam (reference 2e-4, wd 0). stages: frozen ResNet stages whose features are
        reconstructed. hidden_dims, dropout: the feature AE (reference values)."""
        super().__init__()
        self.save_hyperparameters()
        self.extractor = FeatureExtractor(arch, tuple(stages), frozen=True,
                                          input_norm=input_norm, weights_path=weights_path,
                                          allow_random_init=allow_random_init)
        self.ae = FeatureAE(sum(self.extractor.channels), tuple(hidden_dims), dropout)

    def _features(self, x: Tensor) -> Tensor:
        """x: (N, 1, H, W) -> (N, C, s, s) with s = feature_map_size(H) (32 at 96 px)."""
        return concat_features(self.extractor(x), feature_map_size(x.shape[-1], self.ae.depth))

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        feats = self._features(batch["image"])
        return {"loss": -ssim_map(self.ae(feats), feats).mean()}

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        feats = self._features(x)
        # 1 - SSIM instead of the reference's -SSIM: same ranking, non-negative map
        small = 1 - ssim_map(self.ae(feats), feats).mean(1, keepdim=True)
        amap = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return AnomalyOutput(anomaly_map=amap, score=_top10_mean(amap, x))

    def result_tags(self) -> dict[str, Any]:
        return {"pretrained": self.extractor.pretrained, "backbone": self.hparams.arch}


def _top10_mean(amap: Tensor, x: Tensor) -> Tensor:
    """FAE's slice score: mean of the map values above the 90th percentile inside x > 0."""
    scores = []
    for m, xi in zip(amap, x):
        roi = m[xi > 0]
        if roi.numel() == 0:
            scores.append(m.new_zeros(()))
            continue
        top = roi[roi > roi.quantile(0.9)]
        scores.append(top.mean() if top.numel() else roi.max())
    return torch.stack(scores)
