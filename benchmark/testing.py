"""The method contract as one call, for any method's own tests (ours and other packages'):

    from benchmark.testing import check_method

    def test_my_method_keeps_the_contract(tmp_path):
        check_method("mymethod", tmp_path)

:func:`check_method` builds the method at the smoke profile, trains it through the real
harness (``benchmark.train.fit``: every stage, each stage's best checkpoint written and
reloaded), and checks what the benchmark relies on: family and paper set, epochs for every
profile, one ``best-<stage>.ckpt`` per stage, the method holding exactly the weights of the
checkpoint it is evaluated with, and a finite anomaly map of the input's shape from
``predict_volume``. Small random data (96 x 96 slices, or 96 x 96 x 16 volumes for a
``sampling = "volume"`` method); seconds on a CPU. Raises AssertionError naming the method
and what it broke.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from .checkpoint import load_method
from .method import FAMILIES, AnomalyMethod, AnomalyOutput
from .profiles import get_profile
from .registry import get_method
from .rundir import RunDir
from .train import TrainerOptions, fit

SIZE, DEPTH = 96, 16
REQUIRED_PROFILES = ("paper", "quick", "smoke")


class RandomBrains(Dataset):
    """Uniform random 'slices' (n, 1, SIZE, SIZE) or volumes (n, 1, SIZE, SIZE, DEPTH) in
    [0, 1], each with an all-ones brain mask of its shape."""

    def __init__(self, sampling: str, n: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        shape = (n, 1, SIZE, SIZE) if sampling == "slice" else (n, 1, SIZE, SIZE, DEPTH)
        self.images = torch.rand(shape, generator=g).clamp(0, 1)
        self.masks = torch.ones(shape)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


class RandomData(L.LightningDataModule):
    """What the harness asks of a data module (training, validation and the healthy
    statistics loaders), over :class:`RandomBrains`."""

    def __init__(self, sampling: str) -> None:
        super().__init__()
        self.ds = RandomBrains(sampling)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.ds, batch_size=2, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.ds, batch_size=2)

    statistics_dataloader = val_dataloader


def check_declarations(cls: type[AnomalyMethod]) -> None:
    """What ``list``, ``plan`` and the profiles read from the class."""
    assert cls.family in FAMILIES and cls.paper, f"{cls.name}: family and paper must be set"
    missing = set(REQUIRED_PROFILES) - set(cls.epochs)
    assert not missing, f"{cls.name}: epochs for profile(s) {sorted(missing)} not set"


def check_training(method: AnomalyMethod, out: str | Path) -> None:
    """Train ``method`` for one epoch per stage through ``benchmark.train.fit`` into a run
    directory under ``out``; each stage's best checkpoint exists and the method holds its
    weights afterwards."""
    part = RunDir(out).part(method.name, "t2", 0)
    result = fit(method, RandomData(method.sampling), part, get_profile("smoke"),
                 TrainerOptions(accelerator="cpu", devices=1, epochs=1, progress=False))
    assert result.checkpoint.is_file(), f"{method.name}: no checkpoint written"
    if method.requires_training:
        found = sorted(p.name for p in part.path.glob("best-*.ckpt"))
        assert found == sorted(f"best-{s}.ckpt" for s in method.stages()), (
            f"{method.name}: best checkpoints {found}, stages {method.stages()}")
    saved = load_method(result.checkpoint).state_dict()
    for key, value in method.state_dict().items():
        assert torch.equal(value.cpu(), saved[key].cpu()), (
            f"{method.name}: weight {key} differs from the checkpoint it is evaluated with")


def check_inference(method: AnomalyMethod) -> None:
    """``predict_volume`` on a random volume: an AnomalyOutput whose map has the input's
    shape and is finite (and so is the reconstruction, where there is one)."""
    name = method.name or type(method).__name__
    method.eval()
    n = DEPTH if method.sampling == "volume" else 3
    x = torch.rand(n, 1, SIZE, SIZE)
    with torch.no_grad():
        out = method.predict_volume(x)
    assert isinstance(out, AnomalyOutput), f"{name}: predict_volume returned {type(out)}"
    assert out.anomaly_map.shape == x.shape, (
        f"{name}: map of shape {tuple(out.anomaly_map.shape)} for input {tuple(x.shape)}")
    assert torch.isfinite(out.anomaly_map).all(), f"{name}: the map is not finite"
    if out.reconstruction is not None:
        assert torch.isfinite(out.reconstruction).all(), (
            f"{name}: the reconstruction is not finite")


def check_method(name: str | type[AnomalyMethod], out: str | Path, seed: int = 0) -> AnomalyMethod:
    """The whole contract for a registered name (or a method class): declarations, training
    through the harness into ``out``, inference. Returns the trained method."""
    cls = get_method(name) if isinstance(name, str) else name
    check_declarations(cls)
    torch.manual_seed(seed)
    method = cls.from_profile("smoke")
    check_training(method, out)
    check_inference(method)
    return method
