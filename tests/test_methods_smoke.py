"""Every registered method gets the same smoke test, the contract a method's own tests can
call too (benchmark.testing.check_method): build, train through the real harness
(benchmark.train.fit: every stage, best-checkpoint reload), an anomaly map of the input's
shape that is finite."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import list_methods
from benchmark.testing import check_inference, check_method


@pytest.mark.parametrize("name", list_methods())
def test_method_smoke(name, tmp_path):
    check_method(name, tmp_path)


class _WrongShape(AnomalyMethod):
    """A method that breaks the contract: its map covers half of each slice."""

    family = "reconstruction"
    paper = "none"
    requires_training = False

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Identity()

    def anomaly(self, x):
        return AnomalyOutput(anomaly_map=x[..., :48])


def test_the_contract_names_a_method_that_breaks_it():
    with pytest.raises(AssertionError, match=r"_WrongShape: map of shape \(3, 1, 96, 48\) for "):
        check_inference(_WrongShape())


def test_the_contract_finds_a_non_finite_map():
    class _NaN(_WrongShape):
        def anomaly(self, x):
            return AnomalyOutput(anomaly_map=torch.full_like(x, float("nan")))

    with pytest.raises(AssertionError, match="not finite"):
        check_inference(_NaN())
