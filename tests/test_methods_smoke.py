"""Every registered method gets the same smoke test: build, one training step through the
harness's Trainer, an anomaly map of the input's shape that is finite."""
from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from benchmark.method import FAMILIES, AnomalyMethod, AnomalyOutput
from benchmark.registry import get_method, list_methods

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


def _one_step(method: AnomalyMethod) -> None:
    ds = _Random(method.sampling)
    loader = DataLoader(ds, batch_size=2)
    method.fit_statistics(DataLoader(ds, batch_size=2))
    if not method.requires_training:
        return
    for stage in method.stages():
        method.stage = stage
        trainer = L.Trainer(fast_dev_run=1, accelerator="cpu", logger=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            enable_checkpointing=False)
        trainer.fit(method, train_dataloaders=loader, val_dataloaders=loader)


@pytest.mark.parametrize("name", list_methods())
def test_method_smoke(name):
    cls = get_method(name)
    assert cls.family in FAMILIES and cls.paper, f"{name}: family and paper must be set"
    assert {"paper", "quick", "smoke"} <= set(cls.epochs), f"{name}: epochs per profile"
    torch.manual_seed(0)
    method = cls.from_profile("smoke")
    _one_step(method)
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
