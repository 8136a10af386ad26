"""benchmark.backbones: torchvision-compatible ResNets, weight resolution, grayscale input."""
from __future__ import annotations

import urllib.error

import pytest
import torch

from benchmark import backbones
from benchmark.backbones import (
    FeatureExtractor,
    ResNet,
    ReverseBottleneck,
    load_imagenet_weights,
    reverse_stage,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No test may touch the network or a real weights folder."""
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("offline (test)")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.delenv(backbones.WEIGHTS_ENV, raising=False)


# torchvision's published parameter counts and state-dict sizes (params + BN buffers)
@pytest.mark.parametrize("arch, n_params, n_keys", [
    ("resnet18", 11_689_512, 122),
    ("resnet50", 25_557_032, 320),
    ("wide_resnet50_2", 68_883_240, 320),
])
def test_architecture_matches_torchvision(arch, n_params, n_keys):
    net = ResNet(arch)
    state = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == n_params
    assert len(state) == n_keys
    # a few keys and shapes of torchvision's layout
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert "bn1.num_batches_tracked" in state
    if arch == "resnet18":
        assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
        assert state["fc.weight"].shape == (1000, 512)
    else:
        width = 128 if arch == "wide_resnet50_2" else 64
        assert state["layer1.0.conv1.weight"].shape == (width, 64, 1, 1)
        assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
        assert state["layer4.2.conv3.weight"].shape == (2048, 8 * width, 1, 1)
        assert state["fc.weight"].shape == (1000, 2048)


def test_wrn50_stage_shapes_at_96():
    fe = FeatureExtractor("wide_resnet50_2", ("layer1", "layer2", "layer3"), frozen=True,
                          allow_random_init=True, download=False)
    feats = fe(torch.rand(1, 1, 96, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 256, 24, 24), (1, 512, 12, 12),
                                               (1, 1024, 6, 6)]
    assert fe.channels == [256, 512, 1024]


def test_resnet18_layer0_is_stem_with_maxpool():
    net = ResNet("resnet18").eval()
    x = torch.randn(2, 3, 96, 96)
    (l0,) = net.forward_stages(x, ("layer0",))
    assert torch.equal(l0, net.maxpool(net.relu(net.bn1(net.conv1(x)))))
    assert l0.shape == (2, 64, 24, 24)


def _saved_weights(tmp_path, arch="resnet18"):
    """A 'downloaded' state dict: a ResNet with recognisable weights, saved under
    torchvision's file name."""
    src = ResNet(arch)
    with torch.no_grad():
        src.conv1.weight.fill_(0.123)
        src.bn1.running_mean.fill_(0.5)
    path = tmp_path / backbones.weights_filename(arch)
    torch.save(src.state_dict(), path)
    return path, src


@pytest.mark.parametrize("how", ["file", "folder", "env"])
def test_local_weights_load_strictly(tmp_path, monkeypatch, how):
    path, src = _saved_weights(tmp_path)
    net = ResNet("resnet18")
    if how == "env":
        monkeypatch.setenv(backbones.WEIGHTS_ENV, str(tmp_path))
        pretrained = load_imagenet_weights(net)
    else:
        pretrained = load_imagenet_weights(net, path if how == "file" else tmp_path)
    assert pretrained is True
    for key, value in src.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key


def test_download_path_is_used_when_no_local_weights(monkeypatch):
    src = ResNet("resnet18")
    seen = []

    def fake_download(url, **kwargs):
        seen.append((url, kwargs.get("check_hash")))
        return src.state_dict()
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    assert load_imagenet_weights(ResNet("resnet18")) is True
    assert seen == [("https://download.pytorch.org/models/resnet18-f37072fd.pth", True)]


def test_mismatched_state_dict_is_an_error(tmp_path):
    path, _ = _saved_weights(tmp_path)
    state = torch.load(path)
    del state["fc.bias"]
    torch.save(state, path)
    with pytest.raises(RuntimeError, match=r"(?s)do not fit resnet18.*Missing.*fc\.bias"):
        load_imagenet_weights(ResNet("resnet18"), path)


def test_missing_explicit_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights_path"):
        load_imagenet_weights(ResNet("resnet18"), tmp_path / "nope.pth")


def test_offline_without_permission_raises_with_instructions():
    with pytest.raises(RuntimeError) as err:
        load_imagenet_weights(ResNet("resnet18"))
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and backbones.WEIGHTS_ENV in msg
    assert "weights_path" in msg and "allow_random_init=True" in msg


def test_offline_random_init_warns_and_tags():
    with pytest.warns(RuntimeWarning, match="RANDOM"):
        fe = FeatureExtractor("resnet18", ("layer1",), frozen=True, allow_random_init=True)
    assert fe.pretrained is False
    # the flag is state: a reloaded checkpoint keeps how it was trained
    fresh = FeatureExtractor("tiny_basic", ("layer1",), frozen=True, allow_random_init=True)
    state = {k: v for k, v in fe.state_dict().items()}
    state["pretrained_flag"] = torch.tensor(True)
    fe.load_state_dict(state)
    assert fe.pretrained is True and fresh.pretrained is False


def test_grayscale_is_repeated_and_imagenet_normalised():
    fe = FeatureExtractor("tiny_basic", ("layer1",), frozen=True, allow_random_init=True)
    rgb = fe.to_rgb(torch.full((1, 1, 4, 4), 0.5))
    expected = [(0.5 - m) / s for m, s in zip(backbones.IMAGENET_MEAN, backbones.IMAGENET_STD)]
    assert torch.allclose(rgb[0, :, 0, 0], torch.tensor(expected))
    centred = FeatureExtractor("tiny_basic", ("layer1",), frozen=True, allow_random_init=True,
                               input_norm="centered")
    assert torch.allclose(centred.to_rgb(torch.ones(1, 1, 2, 2)), torch.ones(1, 3, 2, 2))
    with pytest.raises(ValueError, match="input_norm"):
        FeatureExtractor("tiny_basic", ("layer1",), frozen=True, allow_random_init=True,
                         input_norm="zscore")


def test_frozen_extractor_stays_in_eval_without_gradients():
    fe = FeatureExtractor("tiny_basic", ("layer1", "layer2"), frozen=True, allow_random_init=True)
    fe.train()
    assert not fe.net.training and not fe.net.bn1.training
    assert all(not p.requires_grad for p in fe.parameters())
    before = fe.net.bn1.running_mean.clone()
    fe(torch.rand(2, 1, 32, 32))
    assert torch.equal(before, fe.net.bn1.running_mean)  # BN statistics untouched
    tuned = FeatureExtractor("tiny_basic", ("layer1",), frozen=False, allow_random_init=True)
    tuned.train()
    assert tuned.net.training and all(p.requires_grad for p in tuned.parameters())


def test_unknown_arch_and_stage_name_the_choices():
    with pytest.raises(ValueError, match="wide_resnet50_2"):
        ResNet("resnet34")
    with pytest.raises(ValueError, match="layer4"):
        FeatureExtractor("tiny_basic", ("layer5",), frozen=True, allow_random_init=True)


@pytest.mark.parametrize("up", ["deconv", "bilinear"])
def test_reverse_stage_doubles_size(up):
    stage = reverse_stage(64, 32, 2, 2, up)
    assert stage(torch.rand(2, 64, 3, 3)).shape == (2, 32, 6, 6)
    assert ReverseBottleneck(32, 8, 8)(torch.rand(1, 32, 5, 5)).shape == (1, 32, 5, 5)
