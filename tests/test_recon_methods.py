"""Reconstruction baselines (AE, VAE, SVAE, DAE, RA, PHANES): shapes, pinned loss math,
DAE's coarse noise, PHANES' mask thresholds, RA's manual optimisation, and a short
convergence test per method on generated slices with a planted lesion of known location.

Run with OMP_NUM_THREADS=1; every test works on 32x32 slices and tiny networks.
"""
from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion
from sklearn.metrics import average_precision_score
from torch.utils.data import DataLoader, Dataset

from benchmark.registry import get_method, list_methods
from methods.ae.network import DenseAutoencoder
from methods.dae.network import UNet, coarse_noise, middle_divisor
from methods.phanes.network import (
    Discriminator,
    InpaintGenerator,
    binarize_anomaly_mask,
    random_ellipse_masks,
)
from methods.ra.losses import SoftIntroWeights, decoder_objective, embedding_loss, kl_divergence
from methods.ra.network import SoftIntroVAE
from methods.svae.network import SliceVAE
from methods.vae.network import DenseVAE, kl_standard_normal

S = 32  # slice size of the fast tests

# Small networks at 32 px per method (hyperparameter overrides of the "smoke" profile).
TINY = {
    "ae": {"image_size": S, "latent_dim": 16, "base_filters": 8, "max_filters": 16, "lr": 3e-3},
    "vae": {"image_size": S, "latent_dim": 16, "base_filters": 8, "max_filters": 16, "lr": 3e-3},
    "svae": {"image_size": S, "latent_dim": 16, "base_filters": 8, "max_filters": 16, "lr": 3e-3,
             "d_model": 16, "max_slices": 8},
    "dae": {"depth": 3, "wf": 3, "noise_res": 4, "lr": 3e-3},
    "ra": {"image_size": S, "latent_dim": 16, "channels": (8, 8, 16, 16, 16), "lr": 2e-3,
           "saliency": "ssim"},
    "phanes": {"image_size": S, "latent_dim": 16, "channels": (8, 8, 16, 16, 16), "lr": 2e-3,
               "saliency": "ssim", "vgg_loss": "off", "synthetic_masks": 2,
               "gen_rates": (1, 2, 4)},
}


# ---------------------------------------------------------------------------- data
def brain_slices(n: int, seed: int, lesion: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """n (1, S, S) 'brain' slices in [0, 1]: an ellipse with smooth texture and a bright
    CSF-like rim (so, as in T2 MRI, healthy tissue reaches the top of the intensity range);
    with lesion=True a bright disc (radius 3 px) at a random place inside.
    Returns (images, lesion masks), both (n, 1, S, S)."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S] / (S - 1) * 2 - 1
    images, segs = [], []
    for _ in range(n):
        a, b = g.uniform(0.75, 0.9, 2)
        r = np.sqrt((yy / a) ** 2 + (xx / b) ** 2)
        brain = r < 1
        phase = g.uniform(0, 2 * math.pi)
        img = (0.45 + 0.15 * np.cos(3 * yy + phase) * np.cos(2 * xx)) * brain
        img = np.where(brain & (r > 0.85), 1.0, img)
        seg = np.zeros_like(brain)
        if lesion:
            cy, cx = g.uniform(-0.4, 0.4, 2)
            seg = ((yy - cy) ** 2 + (xx - cx) ** 2 < (3 / S * 2) ** 2) & brain
            img = np.where(seg, 0.95, img)
        images.append(img)
        segs.append(seg)
    as_t = lambda a: torch.tensor(np.stack(a)[:, None], dtype=torch.float32)
    return as_t(images), as_t(segs)


class _Slices(Dataset):
    def __init__(self, x: torch.Tensor, volume: bool) -> None:
        self.x, self.volume = x, volume

    def __len__(self) -> int:
        return len(self.x) // 8 if self.volume else len(self.x)

    def __getitem__(self, i: int) -> dict:
        if self.volume:  # 8 consecutive slices as one (1, S, S, 8) volume
            v = self.x[8 * i: 8 * i + 8, 0].permute(1, 2, 0)[None]
            return {"image": v, "mask": (v > 0).float()}
        return {"image": self.x[i], "mask": (self.x[i] > 0).float()}


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("size", [96, S])
def test_dense_networks_keep_shape(size: int) -> None:
    x = torch.rand(2, 1, size, size)
    assert DenseAutoencoder(size, 16, base_filters=4, max_filters=8)(x).shape == x.shape
    x_hat, mu, log_sigma = DenseVAE(size, 16, base_filters=4, max_filters=8)(x)
    assert x_hat.shape == x.shape and mu.shape == log_sigma.shape == (2, 16)
    seq = torch.rand(2, 5, 1, size, size)
    s_hat, s_mu, _ = SliceVAE(size, 16, d_model=16, base_filters=4, max_filters=8)(seq)
    assert s_hat.shape == seq.shape and s_mu.shape == (2, 5, 16)


def test_baur_bottleneck_at_96_follows_reference_formula() -> None:
    # int(log2(96) - log2(8)) = 3 stride-2 blocks -> 12x12 map with 128/8 = 16 channels.
    net = DenseAutoencoder(96)
    assert net.bottom == (16, 12, 12)
    assert net.to_latent.in_features == 2304 and net.to_latent.out_features == 128


@pytest.mark.parametrize("size", [96, S])
def test_unet_soft_intro_and_inpainting_shapes(size: int) -> None:
    x = torch.rand(2, 1, size, size)
    assert UNet(1, depth=4, wf=2)(x).shape == x.shape
    vae = SoftIntroVAE(size, 8, (4, 4, 8, 8, 8))
    x_hat, mu, _ = vae(x)
    assert x_hat.shape == x.shape and mu.shape == (2, 8)
    assert [e.shape[-1] for e in vae.encoder(x)[2]] == [size // 2**k for k in range(1, 6)]
    rates = (1, 2, 4, 8) if size >= 48 else (1, 2, 4)  # dilation < the H/4 feature map
    assert InpaintGenerator(4, 1, rates)(x, (x > 0.5).float()).shape == x.shape
    assert Discriminator(4)(x).shape[:2] == (2, 1)


def test_networks_reject_wrong_slice_size() -> None:
    with pytest.raises(ValueError, match="image_size"):
        DenseAutoencoder(96, 16, base_filters=4, max_filters=8)(torch.rand(1, 1, 64, 64))


# ---------------------------------------------------------------------------- loss math
def test_vae_kl_on_a_hand_computed_case() -> None:
    # dim 1: mu=1, sigma=1 -> 0.5 * 1; dim 2: mu=0, sigma=2 -> 0.5 * (4 - 2 ln 2 - 1)
    mu = torch.tensor([[1.0, 0.0]])
    log_sigma = torch.tensor([[0.0, math.log(2.0)]])
    expected = 0.5 + 0.5 * (3 - 2 * math.log(2))
    assert kl_standard_normal(mu, log_sigma).item() == pytest.approx(expected, rel=1e-6)
    # RA parameterises log variance: the same distribution gives the same KL.
    assert kl_divergence(mu, 2 * log_sigma).item() == pytest.approx(expected, rel=1e-6)
    assert kl_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_vae_loss_weights_kl_by_beta() -> None:
    m = get_method("vae").from_profile("smoke", {**TINY["vae"], "dropout": 0.0})
    torch.manual_seed(0)
    terms = m.training_losses({"image": torch.rand(2, 1, S, S)})
    assert terms["loss"].item() == pytest.approx(
        (terms["rec"] + 0.001 * terms["kl"]).item(), rel=1e-6)


def test_soft_intro_decoder_objective_pinned() -> None:
    w = SoftIntroWeights(beta_rec=16.0, beta_kl=1.0, gamma_r=0.5)
    one = torch.ones(2)
    # s * (16 * 3 + 0.5 * (1 + 2) + 0.5 * 0.5 * 16 * (4 + 5)), s = 0.01
    got = decoder_objective(w, 0.01, 3 * one, 1 * one, 2 * one, 4 * one, 5 * one)
    assert got.item() == pytest.approx(0.01 * (48 + 1.5 + 36))


def test_embedding_loss_zero_for_identical_and_positive_otherwise() -> None:
    a = [torch.rand(2, 3, 4, 4), torch.rand(2, 5, 2, 2)]
    assert embedding_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert embedding_loss(a, [-t for t in a]).item() > 2.0  # cosine -1 on both scales


def test_group_norm_groups_match_reference_rule() -> None:
    assert [middle_divisor(c) for c in (8, 16, 64, 128, 512)] == [4, 4, 8, 16, 32]


# ---------------------------------------------------------------------------- DAE noise
def test_coarse_noise_is_low_resolution_and_confined_to_foreground() -> None:
    x = torch.zeros(64, 1, 96, 96)
    x[:, :, 8:88, 8:88] = 0.5
    noise = coarse_noise(x, noise_res=12, noise_std=0.2, generator=torch.Generator().manual_seed(0))
    assert noise[:, :, :8].abs().max() == 0 and noise[:, :, :, 88:].abs().max() == 0
    inner = noise[:, 0, 8:88, 8:88]

    def corr(shift: int) -> float:
        a, b = inner[:, :, :-shift].flatten(), inner[:, :, shift:].flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    # 12x12 grid over 96 px: ~8-px cells, so neighbours are almost identical and the
    # correlation is gone two cells apart (white noise would give ~0 at shift 1).
    assert corr(1) > 0.95
    assert 0.1 < corr(8) < 0.45  # one cell (95/11 = 8.6 px): linear interpolation's tail
    assert abs(corr(18)) < 0.1
    # bilinear interpolation of N(0, 0.2^2) keeps the std between 0.2 * 4/9 and 0.2
    assert 0.09 < float(inner.std()) < 0.2
    # nearly all power below the grid's Nyquist frequency (6 cycles per 96 px)
    power = torch.fft.rfft2(noise[:, 0]).abs().pow(2).mean(0)
    fy = torch.fft.fftfreq(96).abs()[:, None] * 96
    fx = torch.fft.rfftfreq(96)[None, :] * 96
    high = power[(fy > 12) | (fx > 12)].sum() / power.sum()
    assert float(high) < 0.05  # white noise: ~0.93


# ---------------------------------------------------------------------------- PHANES masks
def test_phanes_mask_binarises_at_the_given_threshold() -> None:
    amap = torch.zeros(1, 1, S, S)
    amap[0, 0, 10:15, 10:15] = 0.12  # between the test (0.10) and training (0.15) thresholds
    amap[0, 0, 20:23, 20:23] = 0.5
    test_mask = binarize_anomaly_mask(amap, 0.10)
    train_mask = binarize_anomaly_mask(amap, 0.15)
    assert test_mask[0, 0, 10:15, 10:15].all() and test_mask[0, 0, 20:23, 20:23].all()
    assert train_mask[0, 0, 10:15, 10:15].sum() == 0 and train_mask[0, 0, 20:23, 20:23].all()
    # the blur dilates by one pixel, not more
    assert train_mask[0, 0, 19, 21] == 1 and train_mask[0, 0, 17, 21] == 0
    assert set(test_mask.unique().tolist()) <= {0.0, 1.0}


def test_phanes_uses_015_in_training_and_010_at_test(monkeypatch) -> None:
    import methods.phanes.method as pm

    seen: list[float | None] = []

    def spy(amap, threshold):
        seen.append(threshold)
        return torch.zeros_like(amap)

    monkeypatch.setattr(pm, "binarize_anomaly_mask", spy)
    m = get_method("phanes").from_profile("smoke", {"saliency": "ssim", "vgg_loss": "off"})
    assert (m.hparams.mask_threshold_train, m.hparams.mask_threshold_test) == (0.15, 0.10)
    m.training_losses({"image": torch.rand(2, 1, 96, 96)})
    m.eval()
    m.anomaly(torch.rand(2, 1, 96, 96))
    assert seen == [0.15, 0.10]


def _disc_brain(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    brain = (yy - 48) ** 2 + (xx - 48) ** 2 < 35**2
    return (0.4 + 0.2 * torch.rand(n, 1, 96, 96)) * brain, brain


def test_phanes_percentile_mask_finds_a_lesion_the_coarse_image_lacks() -> None:
    torch.manual_seed(0)
    healthy, _ = _disc_brain(1)
    x = healthy.clone()
    x[..., 30:40, 50:60] = 1.0  # a bright 10 x 10 lesion the pseudo-healthy image does not have
    m = get_method("phanes").from_profile("quick", {"saliency": "ssim", "vgg_loss": "off"})
    mask = m.likely_anomalies(x, healthy, m.hparams.mask_threshold_test)
    assert mask[..., 32:38, 52:58].all()  # the lesion's core is masked
    assert mask.mean() < 0.08  # and not much else: top 5 % of the slice, dilated


def test_phanes_cpu_profiles_mask_part_of_a_slice_not_all_of_it() -> None:
    """The board's PHANES (quick networks, SSIM saliency) masked 99.96 % of every healthy
    brain at the paper's 0.10, so its generator only ever saw empty brains and learned a
    constant. The CPU profiles threshold at the per-slice 95th percentile instead."""
    torch.manual_seed(0)
    x, _ = _disc_brain()
    m = get_method("phanes").from_profile("quick", {"saliency": "ssim", "vgg_loss": "off"})
    assert m.hparams.mask_threshold_train < 0 and m.hparams.mask_threshold_test < 0
    m.eval()
    with torch.no_grad():
        coarse = m.vae(x, deterministic=True)[0]  # untrained: a poor reconstruction
    for threshold in (m.hparams.mask_threshold_train, m.hparams.mask_threshold_test):
        assert m.likely_anomalies(x, coarse, threshold).mean() < 0.2
    assert m.likely_anomalies(x, coarse, 0.10).mean() > 0.9  # the paper's, on the SSIM map


def test_ra_and_phanes_maps_without_clahe_are_the_plain_residual() -> None:
    """clahe=False (an option; the paper's maps equalise): RA's map is |x_hat - x| * S, 0
    wherever the reconstruction is exact, and both methods say so in their result tags."""
    from methods.ra.anomaly_map import Saliency, phanes_coarse_map, ra_anomaly_map

    torch.manual_seed(0)
    healthy, _ = _disc_brain(1)
    x = healthy.clone()
    x[..., 30:40, 50:60] = 0.9
    saliency = Saliency("ssim")
    plain = ra_anomaly_map(x, healthy, saliency, equalize=False)
    torch.testing.assert_close(plain, (x - healthy).abs() * saliency(x, healthy))
    outside = torch.ones_like(x, dtype=torch.bool)
    outside[..., 30:40, 50:60] = False
    assert plain[outside].abs().max() == 0 and plain[~outside].min() > 0
    coarse = phanes_coarse_map(x, healthy, saliency, equalize=False)
    assert coarse[outside].abs().max() == 0 and coarse[~outside].min() > 0
    for name in ("ra", "phanes"):
        cls = get_method(name)
        off = cls.from_profile("smoke", {"saliency": "ssim", "clahe": False, **(
            {"vgg_loss": "off"} if name == "phanes" else {})})
        on = cls.from_profile("smoke", {"saliency": "ssim", **(
            {"vgg_loss": "off"} if name == "phanes" else {})})
        assert off.result_tags()["clahe"] is False and "clahe" not in on.result_tags()


def test_ellipse_masks_stay_in_the_central_range() -> None:
    masks = random_ellipse_masks(4, 96, count=10, generator=np.random.default_rng(0))
    assert masks.shape == (4, 1, 96, 96) and masks.sum() > 0
    assert masks[..., :8, :].sum() == 0 and masks[..., 88:, :].sum() == 0


# ---------------------------------------------------------------------------- RA game
def _fit(method, x: torch.Tensor, steps: int, batch_size: int = 16) -> list[float]:
    """Train through Lightning (manual or automatic optimisation) for ``steps`` steps;
    returns the logged train/loss per epoch."""
    volume = method.sampling == "volume"
    loader = DataLoader(_Slices(x, volume), batch_size=2 if volume else batch_size,
                        shuffle=True)
    history: list[float] = []

    class Record(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            history.append(float(trainer.callback_metrics["train/loss"]))

    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Record()])
    trainer.fit(method, train_dataloaders=loader)
    return history


def test_ra_manual_step_updates_encoder_and_decoder() -> None:
    torch.manual_seed(0)
    m = get_method("ra").from_profile("smoke", TINY["ra"])
    assert m.automatic_optimization is False
    before = {k: v.clone() for k, v in m.state_dict().items()}
    _fit(m, brain_slices(4, seed=1)[0], steps=1, batch_size=4)
    changed = {k.split(".")[1] for k, v in m.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])
               and "running" not in k}
    assert changed == {"encoder", "decoder"}
    # validation still goes through training_losses: a differentiable reconstruction MSE
    terms = m.training_losses({"image": brain_slices(2, seed=2)[0]})
    assert {"loss", "loss_e", "loss_d", "kl", "emb"} <= set(terms) and terms["loss"].requires_grad


# ---------------------------------------------------------------------------- convergence
# optimiser steps (RA: 2 per batch, PHANES: 4 per batch)
STEPS = {"ae": 60, "vae": 60, "svae": 40, "dae": 40, "ra": 40, "phanes": 48}
BATCH = {"ra": 8}  # RA costs six passes per batch


@pytest.mark.parametrize("name", list_methods("reconstruction"))
def test_training_loss_falls_and_map_finds_the_lesion(name: str) -> None:
    """Every reconstruction method of the registry (a new one gets the defaults)."""
    torch.manual_seed(0)
    L.seed_everything(0, verbose=False)
    m = get_method(name).from_profile("smoke", TINY.get(name, {}))
    history = _fit(m, brain_slices(64, seed=0)[0], steps=STEPS.get(name, 60),
                   batch_size=BATCH.get(name, 16))
    assert history[-1] < 0.8 * history[0], history
    m.eval()
    x, seg = brain_slices(8, seed=99, lesion=True)
    amap = m.predict_volume(x).anomaly_map
    assert amap.shape == x.shape and torch.isfinite(amap).all()
    # score inside the eroded brain, as the benchmark's post-processing does (the rim is
    # a reconstruction error of every method, not a lesion)
    brain = torch.from_numpy(binary_erosion((x > 0).numpy(), structure=np.ones((1, 1, 5, 5))))
    labels, scores = seg[brain].numpy(), amap[brain].numpy()
    prevalence = labels.mean()
    auprc = average_precision_score(labels, scores)
    assert auprc > max(3 * prevalence, 0.2), (auprc, prevalence)


# ---------------------------------------------------------------------------- offline fallbacks
def _lpips_loads() -> bool:
    from methods.ra.anomaly_map import _load_lpips

    return _load_lpips()[0] is not None


@pytest.mark.skipif(_lpips_loads(), reason="LPIPS is available here: no fallback to test")
def test_lpips_fallback_only_when_allowed_and_tagged() -> None:
    with pytest.raises(RuntimeError, match="lpips_or_ssim"):
        get_method("ra").from_profile("smoke", {"saliency": "lpips"})
    with pytest.raises(RuntimeError, match="vgg19_or_off"):
        get_method("phanes").from_profile("smoke", {"vgg_loss": "vgg19"})
    assert get_method("ra").from_profile("smoke").result_tags() == {
        "lpips": False, "saliency": "ssim"}
    assert get_method("phanes").from_profile("smoke").result_tags() == {
        "lpips": False, "saliency": "ssim", "vgg": False}


def test_ssim_saliency_is_zero_for_identical_slices_and_marks_the_change() -> None:
    from methods.ra.anomaly_map import Saliency

    x = brain_slices(1, seed=3)[0]
    y = x.clone()
    y[..., 12:18, 12:18] = 1.0
    s = Saliency("ssim")
    assert s(x, x).abs().max() < 1e-3
    changed = s(x, y)[0, 0]
    assert changed[12:18, 12:18].mean() > 5 * changed[:, :6].mean()


def test_unknown_closed_choices_name_the_allowed_values() -> None:
    with pytest.raises(ValueError, match="lpips, ssim, lpips_or_ssim"):
        get_method("ra").from_profile("smoke", {"saliency": "alex"})
    with pytest.raises(ValueError, match="abs, positive"):
        get_method("ae").from_profile("smoke", {"residual": "squared"})


def test_dae_clips_the_gradient_norm_every_step(monkeypatch) -> None:
    m = get_method("dae").from_profile("smoke", TINY["dae"])
    calls = []
    original = m.clip_gradients

    def spy(opt, gradient_clip_val=None, gradient_clip_algorithm=None):
        calls.append((gradient_clip_val, gradient_clip_algorithm))
        return original(opt, gradient_clip_val=gradient_clip_val,
                        gradient_clip_algorithm=gradient_clip_algorithm)

    monkeypatch.setattr(m, "clip_gradients", spy)
    _fit(m, brain_slices(16, seed=0)[0], steps=2)
    assert calls == [(0.5, "norm"), (0.5, "norm")]
