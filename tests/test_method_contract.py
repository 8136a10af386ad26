"""The base class: configuration from typed __init__ arguments, outputs, volume inference."""
from __future__ import annotations

import pytest
import torch

from benchmark.method import AnomalyMethod, AnomalyOutput
from benchmark.registry import get_method


def test_defaults_profile_and_overrides_are_layered():
    ae = get_method("ae")
    assert ae.resolve_hparams("paper") == {}
    smoke = ae.resolve_hparams("smoke")
    assert smoke["latent_dim"] == 16
    merged = ae.resolve_hparams("smoke", {"latent_dim": "32", "lr": "0.01"})
    assert merged["latent_dim"] == 32 and merged["lr"] == 0.01
    assert ae.from_profile("smoke", {"latent_dim": 24}).hparams.latent_dim == 24


def test_unknown_key_names_the_key_and_the_accepted_ones():
    with pytest.raises(KeyError) as err:
        get_method("ae").resolve_hparams("paper", {"latentdim": 3})
    assert "'latentdim'" in str(err.value) and "latent_dim" in str(err.value)


def test_bad_values_and_profiles_are_errors():
    with pytest.raises(ValueError, match="latent_dim"):
        get_method("ae").resolve_hparams("paper", {"latent_dim": "many"})
    with pytest.raises(ValueError, match="unknown profile"):
        get_method("ae").resolve_hparams("fast")
    with pytest.raises(ValueError, match="polarity"):
        get_method("thresh")(polarity="both")


def test_family_is_a_closed_choice():
    with pytest.raises(ValueError, match="family"):
        class Bad(AnomalyMethod):
            family = "magic"


def test_output_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        AnomalyOutput(anomaly_map=torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="does not match"):
        AnomalyOutput(anomaly_map=torch.zeros(2, 1, 8, 8), reconstruction=torch.zeros(2, 1, 4, 4))


def test_predict_volume_chunks_give_the_same_maps():
    torch.manual_seed(0)
    method = get_method("ae").from_profile("smoke").eval()
    x = torch.rand(7, 1, 96, 96)
    whole = method.predict_volume(x, batch_size=7)
    chunked = method.predict_volume(x, batch_size=3)
    assert torch.allclose(whole.anomaly_map, chunked.anomaly_map, atol=1e-6)
    assert chunked.reconstruction.shape == x.shape


def test_thresh_statistics_come_from_the_loader():
    method = get_method("thresh")()
    batch = {"image": torch.tensor([[[[0.2, 0.4], [0.6, 9.0]]]]),
             "mask": torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])}
    method.fit_statistics([batch])
    assert int(method.n_voxels) == 3  # the 9.0 outside the mask is not counted
    # the map is the training CDF: no healthy voxel is above 0.7, none below 0.1
    out = method.anomaly(torch.tensor([[[[0.1, 0.7]]]]))
    assert torch.allclose(out.anomaly_map, torch.tensor([[[[0.0, 1.0]]]]))
