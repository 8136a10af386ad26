"""Every registered method gets the same smoke test: build, train through the real harness
(benchmark.train.fit: every stage, best-checkpoint reload), an anomaly map of the input's
shape that is finite."""
from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from benchmark.checkpoint import load_method
from benchmark.method import FAMILIES, AnomalyMethod, AnomalyOutput
from benchmark.profiles import get_profile
from benchmark.registry import get_method, list_methods
from benchmark.rundir import RunDir
from benchmark.train import TrainerOptions, fit

SIZE, DEPTH = 96, 16


class _Random(Dataset):
    """Smooth random 'slices' (or volumes) in [0, 1] with a brain mask."""

    def __init__(self, sampling: str, n: int = 4) -> None:
        g = torch.Generator().manual_seed(0)
        shape = (n, 1, SIZE, SIZE) if sampling == "slice" else (n, 1, SIZE, SIZE, DEPTH)
        self.images = torch.rand(shape, generator=g).clamp(0, 1)
        self.masks = torch.ones(shape)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


class _Data(L.LightningDataModule):
    """What the harness asks of a data module, over a few random slices or volumes."""

    def __init__(self, sampling: str) -> None:
        super().__init__()
        self.ds = _Random(sampling)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.ds, batch_size=2, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.ds, batch_size=2)

    statistics_dataloader = val_dataloader


def _fit(method: AnomalyMethod, out) -> None:
    """benchmark.train.fit on the smoke profile: each stage's best checkpoint is written
    and loaded before the next stage and before evaluation."""
    part = RunDir(out).part(method.name, "t2", 0)
    result = fit(method, _Data(method.sampling), part, get_profile("smoke"),
                 TrainerOptions(accelerator="cpu", devices=1, epochs=1, progress=False))
    assert result.checkpoint.is_file()
    if method.requires_training:
        assert [p.name for p in sorted(part.path.glob("best-*.ckpt"))] == sorted(
            f"best-{s}.ckpt" for s in method.stages())
    # the method holds exactly the weights of the checkpoint it will be evaluated with
    saved = load_method(result.checkpoint).state_dict()
    for key, value in method.state_dict().items():
        assert torch.equal(value.cpu(), saved[key].cpu()), key


@pytest.mark.parametrize("name", list_methods())
def test_method_smoke(name, tmp_path):
    cls = get_method(name)
    assert cls.family in FAMILIES and cls.paper, f"{name}: family and paper must be set"
    assert {"paper", "quick", "smoke"} <= set(cls.epochs), f"{name}: epochs per profile"
    torch.manual_seed(0)
    method = cls.from_profile("smoke")
    _fit(method, tmp_path)
    method.eval()
    n = DEPTH if method.sampling == "volume" else 3
    x = torch.rand(n, 1, SIZE, SIZE)
    with torch.no_grad():
        out = method.predict_volume(x)
    assert isinstance(out, AnomalyOutput)
    assert out.anomaly_map.shape == x.shape
    assert torch.isfinite(out.anomaly_map).all()
    if out.reconstruction is not None:
        assert torch.isfinite(out.reconstruction).all()
