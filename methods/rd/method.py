"""RD: reverse distillation from one-class embedding (Deng & Li, CVPR 2022)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from benchmark.backbones import Arch, FeatureExtractor, InputNorm, width_factor
from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import register_method

from .network import OCBE, StudentDecoder, gaussian_blur, rd_anomaly_map, rd_loss

__all__ = ["RD"]

# Without ImageNet weights (no internet, no $UAD_BENCH_WEIGHTS_DIR) smoke and quick runs
# continue with a random teacher, loudly, tagged pretrained=False; "paper" never does.
_RANDOM_OK = {"allow_random_init": True}


@register_method("rd")
class RD(AnomalyMethod):
    family = "feature"
    # CPU memory layout (benchmark.cpu), measured in docs/throughput.md: inference 1.1x; training is not faster
    channels_last = frozenset({"infer"})
    paper = "Deng & Li, CVPR 2022"
    # UPD's MRI port trains 10,000 steps at batch 4 = 40k slices ~ 110 epochs of 372 slices
    epochs = {"paper": 110, "reference": 10, "quick": 3, "smoke": 1}
    profiles = {"smoke": {"arch": "tiny_bottleneck", "decoder_blocks": (1, 1, 1), **_RANDOM_OK},
                "quick": dict(_RANDOM_OK)}

    def __init__(self, *, lr: float = 0.005, betas: tuple[float, float] = (0.5, 0.999),
                 arch: Arch = "wide_resnet50_2", decoder_blocks: tuple[int, int, int] = (3, 4, 6),
                 gaussian_sigma: float = 4.0, input_norm: InputNorm = "imagenet",
                 weights_path: str | None = None, allow_random_init: bool = False) -> None:
        """lr, betas: Adam on OCBE + student (official RD4AD). arch: teacher (a Bottleneck
        ResNet). gaussian_sigma: blur of the test map (official 4; 0 = off)."""
        super().__init__()
        self.save_hyperparameters()
        self.teacher = FeatureExtractor(arch, ("layer1", "layer2", "layer3"), frozen=True,
                                        input_norm=input_norm, weights_path=weights_path,
                                        allow_random_init=allow_random_init)
        channels = tuple(self.teacher.channels)
        self.bottleneck = OCBE(channels, width_factor(arch))
        self.student = StudentDecoder(channels, width_factor(arch), tuple(decoder_blocks))

    def _features(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        teacher = self.teacher(x)
        return teacher, self.student(self.bottleneck(teacher))

    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        teacher, student = self._features(batch["image"])
        return {"loss": rd_loss(teacher, student)}

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        teacher, student = self._features(x)
        amap = gaussian_blur(rd_anomaly_map(teacher, student, x.shape[-2:]),
                             self.hparams.gaussian_sigma)
        return AnomalyOutput(anomaly_map=amap, score=amap.flatten(1).amax(1))

    def configure_optimizers(self) -> Any:
        params = [*self.bottleneck.parameters(), *self.student.parameters()]
        return torch.optim.Adam(params, lr=self.hparams.lr, betas=tuple(self.hparams.betas))

    def result_tags(self) -> dict[str, Any]:
        return {"pretrained": self.teacher.pretrained, "backbone": self.hparams.arch}
