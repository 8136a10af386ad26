"""EDC: encoder-decoder contrast (Guo et al., IEEE TMI 2023)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from benchmark.backbones import Arch, FeatureExtractor, InputNorm, width_factor
from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .network import EDCDecoder, edc_anomaly_map, edc_loss, set_bn_momentum

__all__ = ["EDC"]

_RANDOM_OK = {"allow_random_init": True}  # see methods/rd/method.py


@register_method("edc")
class EDC(AnomalyMethod):
    family = "feature"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: train 1.07x, inference 1.3x
    channels_last = frozenset({"train", "infer"})
    paper = "Guo et al., IEEE TMI 2023"
    # edc_br35h.py: 4,000 iterations at batch 32 = 128k slices ~ 344 epochs of 372 slices
    epochs = {"paper": 344, "reference": 20, "quick": 3, "smoke": 1}
    profiles = {"smoke": {"arch": "tiny_bottleneck", "decoder_blocks": (1, 1, 1), **_RANDOM_OK},
                "quick": dict(_RANDOM_OK)}

    def __init__(self, *, lr_encoder: float = 1e-5, lr_decoder: float = 5e-5,
                 weight_decay: float = 1e-4, grad_clip: float = 1.0, bn_momentum: float = 0.01,
                 arch: Arch = "resnet50", decoder_blocks: tuple[int, int, int] = (6, 4, 3),
                 input_norm: InputNorm = "imagenet", weights_path: str | None = None,
                 allow_random_init: bool = False) -> None:
        """lr_encoder / lr_decoder: AdamW learning rates of the two parameter groups
        (cDDPM paper Sec. 4.4: 1e-5 / 5e-5; EDC's brain-MRI script: 5e-5 / 5e-4).
        grad_clip: max gradient norm (EDC: 1.0). bn_momentum: of every BatchNorm (EDC: 0.01)."""
        super().__init__()
        self.save_hyperparameters()
        self.encoder = FeatureExtractor(arch, ("layer1", "layer2", "layer3", "layer4"),
                                        frozen=False, input_norm=input_norm,
                                        weights_path=weights_path,
                                        allow_random_init=allow_random_init)
        self.decoder = EDCDecoder(tuple(self.encoder.channels), width_factor(arch),
                                  tuple(decoder_blocks))
        set_bn_momentum(self, bn_momentum)

    def _features(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        e1, e2, e3, e4 = self.encoder(x)
        return [e1, e2, e3], self.decoder(e4)

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        encoder, decoder = self._features(batch["image"])
        return {"loss": edc_loss(encoder, decoder)}

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        encoder, decoder = self._features(x)
        amap = edc_anomaly_map(encoder, decoder, x.shape[-2:])
        return AnomalyOutput(anomaly_map=amap, score=amap.flatten(1).amax(1))

    def configure_optimizers(self) -> Any:
        groups = [{"params": list(self.encoder.parameters()), "lr": self.hparams.lr_encoder},
                  {"params": list(self.decoder.parameters()), "lr": self.hparams.lr_decoder}]
        return torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None,
                                    gradient_clip_algorithm=None) -> None:
        """EDC clips the global gradient norm at 1.0 whatever the Trainer is told."""
        self.clip_gradients(optimizer, gradient_clip_val=self.hparams.grad_clip,
                            gradient_clip_algorithm="norm")

    def result_tags(self) -> dict[str, Any]:
        return {"pretrained": self.encoder.pretrained, "backbone": self.hparams.arch}
