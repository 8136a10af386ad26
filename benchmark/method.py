"""The method contract: one base class every anomaly-detection method subclasses.

A method writes only what differs from the others: its modules (``__init__``), its named
loss terms (:meth:`AnomalyMethod.training_losses`) and its anomaly map for a stack of
slices (:meth:`AnomalyMethod.anomaly`); optionally its optimisers, training stages and
statistics of the healthy training set. Data, the trainer, checkpoint choice, evaluation,
timing and result files live in ``benchmark/`` once.

Shapes: a slice batch ``x`` is ``(N, 1, H, W)`` with intensities in ``[0, 1]``; a volume is
``(1, H, W, D)`` with the axial axis last.
"""
from __future__ import annotations

import inspect
import typing
import warnings
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from torch import Tensor

from . import hparams

Family = Literal["reconstruction", "diffusion", "feature", "self-supervised", "statistical"]
FAMILIES: tuple[str, ...] = typing.get_args(Family)
Sampling = Literal["slice", "volume"]


def per_profile(table: dict[str, Any], profile: str, what: str) -> Any:
    """``table[profile]``, else the value of the profile's base profile (e.g. a method
    without ``reference`` epochs uses its ``quick`` ones); KeyError naming ``what``."""
    from .profiles import get_profile

    name = profile
    while name is not None:
        if name in table:
            return table[name]
        name = get_profile(name).base
    raise KeyError(f"{what} has no entry for profile {profile!r} (has: {', '.join(table)})")


@dataclass
class AnomalyOutput:
    """What a method returns for a stack of slices.

    anomaly_map: (N, 1, H, W), higher = more anomalous, the input's H and W.
    reconstruction: (N, 1, H, W) in [0, 1] for methods that reconstruct, else None.
    score: (N,) a per-slice anomaly score where the method has one, else None.
    """

    anomaly_map: Tensor
    reconstruction: Tensor | None = None
    score: Tensor | None = None

    def __post_init__(self) -> None:
        if self.anomaly_map.ndim != 4 or self.anomaly_map.shape[1] != 1:
            raise ValueError(
                f"anomaly_map must be (N, 1, H, W), got {tuple(self.anomaly_map.shape)}"
            )
        if self.reconstruction is not None and self.reconstruction.shape != self.anomaly_map.shape:
            raise ValueError(
                f"reconstruction {tuple(self.reconstruction.shape)} does not match "
                f"anomaly_map {tuple(self.anomaly_map.shape)}"
            )

    @staticmethod
    def concat(parts: list[AnomalyOutput]) -> AnomalyOutput:
        """Concatenate outputs of consecutive chunks along N."""
        merged = {}
        for f in fields(AnomalyOutput):
            values = [getattr(p, f.name) for p in parts]
            merged[f.name] = None if any(v is None for v in values) else torch.cat(values)
        return AnomalyOutput(**merged)


class AnomalyMethod(L.LightningModule):
    """Base class of every method. Subclasses are registered with ``@register_method``.

    Class attributes a subclass sets:
        family: one of FAMILIES.
        paper: short citation of the method's paper.
        sampling: "slice" (training batch["image"] is (B, 1, H, W), one random axial slice
            per volume per item) or "volume" (batch["image"] is (B, 1, H, W, D); anomaly()
            then receives all D slices of ONE volume, in order).
        requires_training: False for methods that only compute statistics (fit_statistics).
        epochs: epochs per profile (per stage), e.g. {"paper": 1600, "quick": 20, "smoke": 1}.
        profiles: hyperparameter overrides per profile, e.g. {"smoke": {"base_channels": 8}}.
        precision: Lightning precision used on a GPU ("32-true", "16-mixed", "bf16-mixed").
        channels_last: the phases ("train", "infer") in which, on a CPU, the harness runs
            the networks in channels-last memory layout (same numbers to float rounding;
            faster where oneDNN convolutions dominate, slower where GroupNorm's backward
            does: measured per method in docs/throughput.md). Off by default: a network
            that calls ``.view`` on a conv output needs ``.reshape`` to allow it.
        reference_cost: measured cost per profile on the reference 2-core CPU,
            {profile: (training slices/s, inference s per 50-slice volume)}; ``benchmark
            plan`` estimates hours from it where no run's timings.csv is given.
    """

    name: ClassVar[str] = ""  # set by @register_method
    family: ClassVar[Family]
    paper: ClassVar[str] = ""
    sampling: ClassVar[Sampling] = "slice"
    requires_training: ClassVar[bool] = True
    epochs: ClassVar[dict[str, int]] = {"paper": 100, "quick": 10, "smoke": 1}
    profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    precision: ClassVar[str] = "32-true"
    channels_last: ClassVar[frozenset[str]] = frozenset()
    reference_cost: ClassVar[dict[str, tuple[float, float]]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.stage: str = "main"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        family = cls.__dict__.get("family")
        if family is not None and family not in FAMILIES:
            raise ValueError(f"{cls.__name__}.family={family!r}; allowed: {', '.join(FAMILIES)}")
        sampling = cls.__dict__.get("sampling")
        if sampling is not None and sampling not in typing.get_args(Sampling):
            raise ValueError(f"{cls.__name__}.sampling={sampling!r}; allowed: slice, volume")
        phases = set(cls.__dict__.get("channels_last", ())) - {"train", "infer"}
        if phases:
            raise ValueError(f"{cls.__name__}.channels_last has {sorted(phases)}; allowed "
                             "phases: train, infer")

    # ------------------------------------------------------------------ hooks to implement
    def training_losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Named loss terms for a batch; ``"loss"`` is the total that is optimised.

        batch["image"]: (B, 1, H, W) in [0, 1] (or (B, 1, H, W, D) for sampling="volume");
        batch["mask"]: the brain mask, same shape.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement training_losses()")

    def anomaly(self, x: Tensor) -> AnomalyOutput:
        """Anomaly map for slices ``x``: (N, 1, H, W) in [0, 1]. Called in eval mode, no grad."""
        raise NotImplementedError(f"{type(self).__name__} must implement anomaly()")

    # ------------------------------------------------------------------ optional hooks
    def stages(self) -> list[str]:
        """Training stages in order; the harness runs one Trainer.fit per stage."""
        return ["main"]

    def stage_epochs(self, stage: str, profile: str) -> int:
        """Epochs for ``stage`` under ``profile`` (default: ``epochs[profile]``)."""
        return int(per_profile(self.epochs, profile, f"{type(self).__name__}.epochs"))

    def fit_statistics(self, loader: Any) -> None:
        """Called once before training with a loader over the healthy training data."""

    def result_tags(self) -> dict[str, Any]:
        """Extra columns recorded on every result row (e.g. {"pretrained": False})."""
        return {}

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.get("lr", 1e-4))

    # ------------------------------------------------------------------ shared machinery
    def log_losses(self, losses: dict[str, Tensor], split: str) -> None:
        """Log every loss term as ``<split>/<name>``; the checkpoint is chosen on val/loss."""
        if "loss" not in losses:
            raise KeyError(f"{type(self).__name__}.training_losses() must return a 'loss' term")
        batch_size = self._batch_size
        for key, value in losses.items():
            self.log(
                f"{split}/{key}", value.detach().float(), prog_bar=(key == "loss"),
                on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True,
            )

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        self._batch_size = batch["image"].shape[0]
        losses = self.training_losses(batch)
        self.log_losses(losses, "train")
        return losses["loss"]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._batch_size = batch["image"].shape[0]
        self.log_losses(self.training_losses(batch), "val")

    _batch_size: int = 1

    def memory_layout(self, phase: str, device: torch.device):
        """Context: the networks in channels-last layout if this method declares it for
        ``phase`` and runs on a CPU; yields the input conversion (benchmark.cpu). Training
        stays NCHW where oneDNN's channels-last weight gradient is wrong for a layer."""
        from .cpu import channels_last, channels_last_training_hazards

        enabled = phase in self.channels_last and device.type == "cpu"
        if enabled and phase == "train":
            hazards = channels_last_training_hazards(self)
            if hazards:
                warnings.warn(f"{self.name or type(self).__name__}: training in NCHW layout, "
                              f"not channels-last: oneDNN computes the weight gradient of "
                              f"{hazards[0]} (1x1, strided, < 16 input channels) wrongly in "
                              "that layout (oneDNN issue 6035)", stacklevel=2)
                enabled = False
        return channels_last(self, enabled)

    @torch.no_grad()
    def predict_volume(self, x: Tensor, batch_size: int = 50) -> AnomalyOutput:
        """Anomaly maps for all slices of one volume, x: (D, 1, H, W), in chunks."""
        with self.memory_layout("infer", x.device) as convert:
            x = convert(x)
            if self.sampling == "volume" or x.shape[0] <= batch_size:
                return self.anomaly(x)
            return AnomalyOutput.concat([self.anomaly(c) for c in x.split(batch_size)])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["uad_method"] = self.name  # lets benchmark.checkpoint rebuild the method
        # plain values only, so that the file loads with torch.load(weights_only=True)
        checkpoint.pop(self.CHECKPOINT_HYPER_PARAMS_TYPE, None)
        if self.CHECKPOINT_HYPER_PARAMS_KEY in checkpoint:
            checkpoint[self.CHECKPOINT_HYPER_PARAMS_KEY] = hparams.plain_hparams(
                checkpoint[self.CHECKPOINT_HYPER_PARAMS_KEY])

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ configuration
    @classmethod
    def hyperparameters(cls) -> dict[str, inspect.Parameter]:
        """The typed keyword arguments of ``__init__``: they ARE the configuration."""
        sig = inspect.signature(cls.__init__)
        return {
            n: p for n, p in sig.parameters.items()
            if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    @classmethod
    def hparam_problems(cls, profile: str, overrides: dict[str, Any] | None = None
                        ) -> tuple[dict[str, Any], list[str]]:
        """(resolved values, every problem found): defaults (the paper's settings) <- the
        method's profile <- user overrides. A problem names the key: an unknown key (with
        the closest known one and the full list), a value of the wrong type, a choice
        that is not allowed."""
        from .profiles import get_profile

        get_profile(profile)  # an unknown profile is an error naming the allowed ones
        known = cls.hyperparameters()
        hints = hparams.annotations(cls)
        resolved: dict[str, Any] = {}
        problems: list[str] = []
        name = cls.name or cls.__name__
        try:
            own = per_profile(cls.profiles, profile, "")
        except KeyError:
            own = {}
        for source, values in (
            (f"{cls.__name__}.profiles[{profile!r}]", own),
            (f"overrides for {name!r}", overrides or {}),
        ):
            for key, value in values.items():
                if key not in known:
                    problems.append(f"unknown hyperparameter {key!r} in {source}"
                                    f"{hparams.did_you_mean(key, known)}; {name} accepts: "
                                    f"{', '.join(sorted(known))}")
                    continue
                param = known[key]
                try:
                    resolved[key] = hparams.coerce(key, value, hparams.expected_type(param, hints),
                                                   param.default)
                except hparams.HparamError as err:
                    problems.append(f"{name}: {err}")
        return resolved, problems

    @classmethod
    def resolve_hparams(cls, profile: str, overrides: dict[str, Any] | None = None) -> dict:
        """Defaults (the paper's settings) <- the method's profile <- user overrides.

        An unknown key is a KeyError naming the key and the method's known keys; a value
        of the wrong type a ValueError naming the key (every problem in one message).
        """
        resolved, problems = cls.hparam_problems(profile, overrides)
        if problems:
            error = KeyError if any(p.startswith("unknown hyperparameter") for p in problems) \
                else ValueError
            raise error("; ".join(problems))
        return resolved

    @classmethod
    def from_profile(cls, profile: str, overrides: dict[str, Any] | None = None) -> AnomalyMethod:
        return cls(**cls.resolve_hparams(profile, overrides))
