"""ImageNet CNN backbones shared by the feature-based methods (RD, FAE, EDC).

Plain-torch ResNet-18/50 and Wide-ResNet-50-2 whose parameter names and shapes are
exactly torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``,
``fc`` ...), so torchvision's V1 ImageNet state dicts load with ``strict=True``. torchvision
itself is not imported: it is not installable next to every torch build, and only the
weights are needed.

Weight resolution (:func:`load_imagenet_weights`), first hit wins:
  1. ``weights_path`` (a ``.pth`` file, or a folder holding torchvision's file name);
  2. ``$UAD_BENCH_WEIGHTS_DIR/<torchvision file name>``;
  3. ``torch.hub.load_state_dict_from_url`` (torchvision's URL, hash checked, cached in
     ``$TORCH_HOME/hub/checkpoints``: the normal path on a machine with internet);
  4. nothing found: ``allow_random_init=True`` warns loudly and keeps random weights,
     otherwise a ``RuntimeError`` says how to provide them.
Every method built on these reports ``pretrained`` in ``result_tags()``.
Inside :func:`shapes_only` (parameter counts: ``python -m benchmark list --params``) no
weights are looked up, downloaded or loaded, and nothing is said about their absence.

Grayscale: :class:`FeatureExtractor` repeats the one MRI channel to three and applies the
ImageNet mean/std (official RD4AD and EDC normalise this way; the UPD port of RD feeds
[0, 1] un-normalised and FAE maps to [-1, 1]: ``input_norm`` selects either).
"""
from __future__ import annotations

import contextvars
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, get_args

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

Arch = Literal["resnet18", "resnet50", "wide_resnet50_2", "tiny_basic", "tiny_bottleneck"]
InputNorm = Literal["imagenet", "centered", "none"]
Stage = Literal["layer0", "layer1", "layer2", "layer3", "layer4"]
WEIGHTS_ENV = "UAD_BENCH_WEIGHTS_DIR"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGE_STRIDE = {"layer0": 4, "layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
_SHAPES_ONLY = contextvars.ContextVar("uad_bench_shapes_only", default=False)


@contextmanager
def shapes_only() -> Iterator[None]:
    """Build networks for their shapes only: pretrained weights (ImageNet backbones, and
    the methods' own pretrained parts that ask :func:`weights_wanted`) are neither looked
    up, downloaded nor loaded. For counting parameters; never for a run."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def weights_wanted() -> bool:
    """False inside :func:`shapes_only`: a network is built for its shape only."""
    return not _SHAPES_ONLY.get()


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with identity shortcut (ResNet-18/34); stride on the first conv."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, width: int | None = None):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, planes, stride), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (x4 channels); stride on the 3x3 conv (torchvision's "V1.5")."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, width: int | None = None):
        super().__init__()
        width = width or planes
        self.conv1, self.bn1 = conv1x1(cin, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride), nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


# arch -> (block, blocks per stage, stem/base planes, bottleneck width factor, torchvision file)
_SPECS: dict[str, tuple[type[nn.Module], tuple[int, ...], int, int, str | None]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2), 64, 1, "resnet18-f37072fd.pth"),
    "resnet50": (Bottleneck, (3, 4, 6, 3), 64, 1, "resnet50-0676ba61.pth"),
    "wide_resnet50_2": (Bottleneck, (3, 4, 6, 3), 64, 2, "wide_resnet50_2-95faca4d.pth"),
    # smoke-test stand-ins: same topology, 8x narrower, one block per stage, never pretrained
    "tiny_basic": (BasicBlock, (1, 1, 1, 1), 8, 1, None),
    "tiny_bottleneck": (Bottleneck, (1, 1, 1, 1), 8, 2, None),
}
TORCHVISION_URL = "https://download.pytorch.org/models/{}"


def _check_arch(arch: str) -> None:
    if arch not in _SPECS:
        raise ValueError(f"unknown backbone arch={arch!r}; allowed: {list(get_args(Arch))}")


class ResNet(nn.Module):
    """torchvision-layout ResNet. ``forward_stages`` returns the named stages.

    layer0 = conv1+bn1+relu+maxpool (/4), layer1 (/4), layer2 (/8), layer3 (/16),
    layer4 (/32); ``avgpool``/``fc`` exist only so ImageNet state dicts load strictly.
    """

    def __init__(self, arch: Arch = "resnet18"):
        super().__init__()
        _check_arch(arch)
        block, blocks, base, wide, _ = _SPECS[arch]
        self.arch = arch
        self.conv1 = nn.Conv2d(3, base, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = base
        self.channels = {"layer0": base}
        for i, n in enumerate(blocks):
            planes, stride = base * 2 ** i, 1 if i == 0 else 2
            layers, cin = _make_stage(block, cin, planes, n, stride, wide)
            self.add_module(f"layer{i + 1}", layers)
            self.channels[f"layer{i + 1}"] = cin
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, 1000)
        _init_weights(self)

    def forward_stages(self, x: Tensor, stages: tuple[str, ...]) -> list[Tensor]:
        """x: (N, 3, H, W) normalised -> one (N, C_s, H/stride_s, W/stride_s) per stage."""
        last = max(int(s[-1]) for s in stages)
        feats = {"layer0": self.maxpool(self.relu(self.bn1(self.conv1(x))))}
        h = feats["layer0"]
        for i in range(1, last + 1):
            h = getattr(self, f"layer{i}")(h)
            feats[f"layer{i}"] = h
        return [feats[s] for s in stages]


def _make_stage(block, cin: int, planes: int, n: int, stride: int, wide: int):
    out = planes * block.expansion
    width = planes * wide if block is Bottleneck else None
    down = None
    if stride != 1 or cin != out:
        down = nn.Sequential(conv1x1(cin, out, stride), nn.BatchNorm2d(out))
    blocks = [block(cin, planes, stride, down, width)]
    blocks += [block(out, planes, 1, None, width) for _ in range(n - 1)]
    return nn.Sequential(*blocks), out


def _init_weights(model: nn.Module) -> None:
    """He init for convs, BN to identity (torchvision's default initialisation)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def weights_filename(arch: Arch) -> str | None:
    """torchvision's file name for ``arch`` (None for the smoke-only tiny archs)."""
    _check_arch(arch)
    return _SPECS[arch][4]


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def find_state_dict(arch: Arch, weights_path: str | os.PathLike | None = None,
                    download: bool = True) -> tuple[dict[str, Tensor] | None, str]:
    """Resolve ImageNet weights for ``arch``; returns (state dict or None, where from)."""
    fname = weights_filename(arch)
    if weights_path is not None:
        path = Path(weights_path)
        if path.is_dir() and fname is not None:
            path = path / fname
        if not path.is_file():
            raise FileNotFoundError(
                f"weights_path={str(weights_path)!r} for {arch}: no such file"
                + (f" (expected {fname} inside the folder)" if fname else ""))
        return _read_state_dict(path), str(path)
    if fname is None:
        return None, "none (smoke-test backbone has no pretrained weights)"
    env_dir = os.environ.get(WEIGHTS_ENV)
    if env_dir and (Path(env_dir) / fname).is_file():
        return _read_state_dict(Path(env_dir) / fname), str(Path(env_dir) / fname)
    if env_dir:
        log.warning("$%s=%s holds no %s; trying the download", WEIGHTS_ENV, env_dir, fname)
    if download:
        url = TORCHVISION_URL.format(fname)
        try:
            state = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=False, check_hash=True)
            return state, url
        except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
            log.info("download of %s failed: %s", url, err)
            return None, f"download failed ({type(err).__name__}: {err})"
    return None, "download disabled"


def load_imagenet_weights(model: ResNet, weights_path: str | os.PathLike | None = None,
                          allow_random_init: bool = False, download: bool = True) -> bool:
    """Load torchvision ImageNet weights into ``model`` (strict keys). Returns ``pretrained``
    (False, silently, inside :func:`shapes_only`)."""
    if not weights_wanted():
        return False
    state, source = find_state_dict(model.arch, weights_path, download)
    if state is not None:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise RuntimeError(f"weights from {source} do not fit {model.arch}: {err}") from err
        log.info("%s: ImageNet weights loaded from %s", model.arch, source)
        return True
    fname = weights_filename(model.arch)
    how = (f"put {fname} (from {TORCHVISION_URL.format(fname)}) into ${WEIGHTS_ENV}, "
           f"or pass the hyperparameter weights_path=<file>") if fname else \
        f"{model.arch} is a smoke-test backbone without pretrained weights"
    if not allow_random_init:
        raise RuntimeError(f"No ImageNet weights for {model.arch}: {source}. To fix: {how}; "
                           "or set allow_random_init=True to run with RANDOM weights "
                           "(result rows are then tagged pretrained=False).")
    msg = (f"\n{'!' * 78}\n!! {model.arch}: NO IMAGENET WEIGHTS ({source}).\n"
           f"!! Continuing with RANDOM initialisation (allow_random_init=True); results are\n"
           f"!! tagged pretrained=False and are NOT comparable to pretrained ones.\n"
           f"!! To use real weights: {how}.\n{'!' * 78}")
    log.warning(msg)
    warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return False


class FeatureExtractor(nn.Module):
    """Grayscale MRI slice -> named ResNet stages.

    x: (N, 1, H, W) in [0, 1] -> list of (N, C_s, H/stride_s, W/stride_s), one per ``stages``.
    ``frozen=True`` (RD teacher, FAE) keeps the network in eval mode with no gradients,
    so its BatchNorm statistics stay the ImageNet ones; ``frozen=False`` (EDC) fine-tunes.
    """

    def __init__(self, arch: Arch, stages: tuple[str, ...], *, frozen: bool,
                 input_norm: InputNorm = "imagenet", weights_path: str | None = None,
                 allow_random_init: bool = False, download: bool = True):
        super().__init__()
        for s in stages:
            if s not in STAGE_STRIDE:
                raise ValueError(f"unknown stage {s!r}; allowed: {list(STAGE_STRIDE)}")
        if input_norm not in get_args(InputNorm):
            raise ValueError(f"unknown input_norm={input_norm!r}; allowed: {get_args(InputNorm)}")
        self.stages, self.frozen, self.input_norm = tuple(stages), frozen, input_norm
        self.net = ResNet(arch)
        pretrained = load_imagenet_weights(self.net, weights_path, allow_random_init, download)
        # a buffer, so a reloaded checkpoint reports how it was trained, not what is on disk now
        self.register_buffer("pretrained_flag", torch.tensor(pretrained))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        if frozen:
            self.net.requires_grad_(False)
            self.net.eval()

    @property
    def pretrained(self) -> bool:
        """True when ImageNet weights were loaded when this extractor was trained."""
        return bool(self.pretrained_flag)

    @property
    def channels(self) -> list[int]:
        return [self.net.channels[s] for s in self.stages]

    def train(self, mode: bool = True) -> FeatureExtractor:
        super().train(mode)
        if self.frozen:  # Lightning calls .train() on the whole module every epoch
            self.net.eval()
        return self

    def to_rgb(self, x: Tensor) -> Tensor:
        """x: (N, 1, H, W) in [0, 1] -> (N, 3, H, W) normalised as ``input_norm`` says."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.input_norm == "imagenet":
            return (x - self.mean) / self.std
        if self.input_norm == "centered":
            return (x - 0.5) * 2
        return x

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.to_rgb(x)
        if self.frozen:
            with torch.no_grad():
                return self.net.forward_stages(x, self.stages)
        return self.net.forward_stages(x, self.stages)


# --- reverse ("de-") ResNet stages: the student decoders of RD and EDC -----------------

Upsampling = Literal["deconv", "bilinear"]


class ReverseBottleneck(nn.Module):
    """Bottleneck that doubles H, W when ``up`` is set (decoder mirror of :class:`Bottleneck`).

    ``up="deconv"`` (RD4AD ``de_resnet``): the 3x3 conv and the shortcut become 2x2
    transposed convs with stride 2. ``up="bilinear"`` (EDC ``resnet_decoder``): x2 bilinear
    upsampling (align_corners=False) before the 3x3 conv and after the 1x1 shortcut conv.
    x: (N, cin, h, w) -> (N, 4 * planes, 2h or h, 2w or w).
    """

    def __init__(self, cin: int, planes: int, width: int, up: Upsampling | None = None):
        super().__init__()
        if up not in (None, *get_args(Upsampling)):
            raise ValueError(f"unknown up={up!r}; allowed: None, {get_args(Upsampling)}")
        out = planes * 4
        self.conv1, self.bn1 = conv1x1(cin, width), nn.BatchNorm2d(width)
        self.upsample = nn.Upsample(scale_factor=2, mode="bilinear") if up == "bilinear" \
            else nn.Identity()
        self.conv2 = nn.ConvTranspose2d(width, width, 2, stride=2, bias=False) \
            if up == "deconv" else conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, out), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        if up == "deconv":
            short = [nn.ConvTranspose2d(cin, out, 2, stride=2, bias=False)]
        elif up == "bilinear":
            short = [conv1x1(cin, out), nn.Upsample(scale_factor=2, mode="bilinear")]
        else:
            short = [conv1x1(cin, out)] if cin != out else []
        self.shortcut = nn.Sequential(*short, nn.BatchNorm2d(out)) if short else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.upsample(self.relu(self.bn1(self.conv1(x))))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def reverse_stage(cin: int, cout: int, n: int, wide: int, up: Upsampling) -> nn.Sequential:
    """n ReverseBottlenecks, the first upsampling x2: (N, cin, h, w) -> (N, cout, 2h, 2w).

    planes = cout / 4 and inner width = wide * planes, as in the encoder stage it mirrors.
    """
    planes = cout // 4
    blocks = [ReverseBottleneck(cin, planes, planes * wide, up)]
    blocks += [ReverseBottleneck(cout, planes, planes * wide) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


def bottleneck_stage(cin: int, cout: int, n: int, wide: int, stride: int) -> nn.Sequential:
    """n encoder Bottlenecks (torchvision layout) mapping (N, cin) -> (N, cout), first strided."""
    return _make_stage(Bottleneck, cin, cout // 4, n, stride, wide)[0]


def width_factor(arch: Arch) -> int:
    """Bottleneck width multiplier of ``arch`` (2 for Wide-ResNet, else 1)."""
    _check_arch(arch)
    return _SPECS[arch][3]
