"""The diffusion core and the three diffusion methods: pinned numbers and known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import methods  # noqa: F401  (registers the methods)
from benchmark.diffusion.patches import box_masks, grid_boxes
from benchmark.diffusion.schedules import (
    DiffusionSchedule,
    cosine_betas,
    linear_betas,
    one_step_reconstruction,
)
from benchmark.diffusion.simplex import _GRADIENTS, _lattice, _octave, simplex_noise
from benchmark.diffusion.unet import DiffusionUNet, ResBlock, timestep_embedding
from benchmark.registry import get_method, list_methods

TINY = {"base_channels": 8, "norm_groups": 8, "num_res_blocks": 1, "head_channels": 8}


# ---------------------------------------------------------------- schedules
def test_cosine_alpha_bar_pinned_at_paper_t_with_reference_indexing():
    s = DiffusionSchedule("cosine", 1000)
    # The paper's t is stored at index t - 1 (as the authors' code calls t=500 index 499).
    got = [s.alphas_cumprod[t - 1].item() for t in (250, 500, 750)]
    assert got == pytest.approx([0.8470122, 0.4938436, 0.1442721], abs=1e-6)
    assert s.alphas_cumprod[-1].item() == pytest.approx(2.4288e-9, rel=1e-3)  # t = T: pure noise
    assert cosine_betas(1000).max().item() == pytest.approx(0.999)  # clipped


def test_linear_schedule_pinned():
    a = torch.cumprod(1 - linear_betas(1000), 0)
    assert [a[t - 1].item() for t in (250, 500, 750)] == pytest.approx(
        [0.5240854, 0.0785872, 0.0033506], abs=1e-6
    )


def test_cosine_matches_monai_scheduler():
    from monai.networks.schedulers import DDPMScheduler

    monai_ab = DDPMScheduler(1000, schedule="cosine").alphas_cumprod.double()
    ours = torch.cumprod(1 - cosine_betas(1000), 0)
    assert torch.allclose(ours, monai_ab, atol=1e-6)  # same indexing, float32 vs float64


def test_unknown_schedule_and_out_of_range_t_raise():
    with pytest.raises(ValueError, match="cosine, linear"):
        DiffusionSchedule("sigmoid")
    with pytest.raises(ValueError, match="out of range"):
        DiffusionSchedule().q_sample(torch.zeros(1, 1, 2, 2), 1000, torch.zeros(1, 1, 2, 2))


def test_q_sample_statistics():
    s = DiffusionSchedule()
    x0 = torch.full((4000, 1, 4, 4), 0.5)
    gen = torch.Generator().manual_seed(0)
    xt = s.q_sample(x0, 499, torch.randn(x0.shape, generator=gen))
    ab = 0.4938436
    assert xt.mean().item() == pytest.approx(ab**0.5 * 0.5, abs=5e-3)
    assert xt.std().item() == pytest.approx((1 - ab) ** 0.5, abs=5e-3)


def test_sample_timesteps_cover_1_to_T():
    t = DiffusionSchedule(timesteps=10).sample_timesteps(5000, torch.Generator().manual_seed(0))
    assert set(t.tolist()) == set(range(10))  # 0-based indices of t = 1..10


def test_one_step_reconstruction_is_exact_with_an_oracle():
    s = DiffusionSchedule()
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    oracle = lambda x_t, t: s.predict_x0_from_noise(x_t, t, noise)
    rec = one_step_reconstruction(oracle, s, x0, torch.tensor([0, 499, 998]), noise)
    assert torch.allclose(rec, x0, atol=1e-4)


# ---------------------------------------------------------------- simplex noise
def test_simplex_matches_opensimplex_values():
    # Values of K. Spencer's OpenSimplex-2D (the algorithm in the reference's generate_noise.py)
    # for the permutation 255, 254, ..., 0, at (x, y) / f; computed once with that code.
    perm = torch.arange(255, -1, -1)[None]
    grads = torch.tensor(_GRADIENTS, dtype=torch.float32)
    cases = [(3, 5, 7.0, 0.5427241), (10, 2, 4.0, -0.3838029), (17, 31, 16.0, -0.3274392),
             (50, 9, 3.0, -0.2712245), (0, 0, 1.0, 0.0)]
    for x, y, f, expected in cases:
        grid = _octave(perm, _lattice(y + 1, x + 1, f, torch.device("cpu")), grads)
        assert grid[0, -1].item() == pytest.approx(expected, abs=1e-6)


def test_simplex_shape_device_statistics_and_fresh_map_per_slice():
    n = simplex_noise((64, 1, 96, 96), generator=torch.Generator().manual_seed(0), device="cpu")
    assert n.shape == (64, 1, 96, 96) and n.device.type == "cpu" and n.dtype == torch.float32
    assert abs(n.mean().item()) < 0.05
    assert 0.45 < n.std().item() < 0.7  # not rescaled to unit variance, as the reference
    assert not torch.allclose(n[0], n[1])


def test_simplex_is_deterministic_with_a_generator_and_shared_repeats_one_map():
    a = simplex_noise((4, 1, 32, 32), generator=torch.Generator().manual_seed(7))
    b = simplex_noise((4, 1, 32, 32), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    shared = simplex_noise((4, 1, 32, 32), shared=True)
    assert all(torch.equal(shared[0], shared[i]) for i in range(4))
    with pytest.raises(ValueError, match="N, C, H, W"):
        simplex_noise((4, 32, 32))


# ---------------------------------------------------------------- network
def test_timestep_embedding_and_film_shapes():
    e = timestep_embedding(torch.tensor([0, 499]), 128)
    assert e.shape == (2, 128)
    assert torch.equal(e[0, :64], torch.ones(64)) and torch.equal(e[0, 64:], torch.zeros(64))
    net = DiffusionUNet(**TINY, cond_dim=5)
    assert net.emb_dim == 2 * 4 * 8  # [c_t, c] concatenated
    blocks = [m for m in net.modules() if isinstance(m, ResBlock)]
    for b in blocks:  # one (scale, shift) pair per output channel of every res block
        assert b.film[1].in_features == 64 and b.film[1].out_features == 2 * b.norm_out.num_channels


def test_film_applies_scale_and_shift_as_the_paper():
    block = ResBlock(8, 4, 8, groups=8)
    torch.nn.init.normal_(block.conv_out.weight)
    x, emb = torch.randn(2, 8, 6, 6), torch.randn(2, 4)
    scale, shift = block.film(emb)[:, :, None, None].chunk(2, dim=1)
    h = block.norm_out(block.conv_in(torch.nn.functional.silu(block.norm_in(x))))
    expected = x + block.conv_out(torch.nn.functional.silu(h * (1 + scale) + shift))
    assert torch.allclose(block(x, emb), expected, atol=1e-5)


def test_unet_paper_size_matches_reference_parameter_count():
    # Counted on the authors' OpenAI UNet with the cDDPM configuration (dims 128/256/256,
    # 3 res blocks, middle attention only, scale-shift norm, resblock up/down).
    with torch.device("meta"):  # count only, allocate nothing
        assert sum(p.numel() for p in DiffusionUNet().parameters()) == 37_513_857
        assert sum(p.numel() for p in DiffusionUNet(cond_dim=128).parameters()) == 43_871_873


def test_unet_condition_changes_the_output_and_bad_groups_raise():
    torch.manual_seed(0)
    net = DiffusionUNet(**TINY, cond_dim=3)
    for m in net.modules():  # undo the zero init so every branch (and FiLM) matters
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.normal_(m.weight, std=0.1)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 10])
    c = torch.randn(2, 3)
    assert net(x, t, c).shape == (2, 1, 16, 16)
    assert not torch.allclose(net(x, t, c), net(x, t, c + 1))
    with pytest.raises(ValueError, match="norm_groups"):
        DiffusionUNet(base_channels=12, norm_groups=8)
    with pytest.raises(ValueError, match="cond"):
        net(x, t)


# ---------------------------------------------------------------- pDDPM boxes
def test_grid_boxes_tile_the_slice_exactly_once():
    boxes = grid_boxes(96, 96, 48)
    assert boxes == [(0, 48, 0, 48), (0, 48, 48, 96), (48, 96, 0, 48), (48, 96, 48, 96)]
    masks = box_masks(boxes, torch.arange(4), 96, 96)
    assert torch.equal(masks.sum(0), torch.ones(1, 96, 96))
    with pytest.raises(ValueError, match="patch_size=40"):
        grid_boxes(96, 96, 40)


class _Spy(torch.nn.Module):
    """Stands in for the UNet: records inputs, returns the exact x_0 for known noise."""

    def __init__(self, schedule, noise):
        super().__init__()
        self.schedule, self.noise, self.calls = schedule, noise, []

    def forward(self, x_t, t, cond=None):
        self.calls.append((x_t.clone(), t.clone(), cond))
        return self.schedule.predict_x0_from_noise(x_t, t, self.noise)


def _with_spy(name, x, **overrides):
    m = get_method(name).from_profile("smoke", {"noise": "gaussian", **overrides})
    noise = torch.randn_like(x)
    m.sample_noise = lambda shape: noise
    m.unet = _Spy(m.schedule, noise)
    return m.eval(), noise


def test_pddpm_training_noises_only_inside_one_grid_box():
    x = torch.rand(6, 1, 96, 96)
    m, _ = _with_spy("pddpm", x)
    m.training_losses({"image": x, "mask": torch.ones_like(x)})
    x_t = m.unet.calls[0][0]
    changed = (x_t - (x * 2 - 1)).abs() > 1e-6  # clean context is passed through exactly
    grid = box_masks(grid_boxes(96, 96, 48), torch.arange(4), 96, 96).bool()  # (4, 1, H, W)
    for i in range(6):
        inside = [bool((changed[i] & ~grid[b]).sum() == 0) for b in range(4)]
        assert sum(inside) == 1  # every noised pixel lies in one and the same grid box
        assert changed[i].sum() > 0.99 * 48 * 48  # and that box is noised (almost) everywhere


@pytest.mark.parametrize("name", list_methods("diffusion"))
def test_oracle_denoiser_gives_zero_anomaly_map(name):
    x = torch.rand(2, 1, 96, 96)
    # cDDPM as the paper infers it: the ensemble of three noise levels (smoke infers one)
    m, _ = _with_spy(name, x, **({"ensemble": True} if name == "cddpm" else {}))
    out = m.anomaly(x)
    assert out.anomaly_map.shape == x.shape
    assert out.anomaly_map.max().item() < 1e-4
    # the network is called at the method's test noise levels only
    assert {int(c[1][0]) for c in m.unet.calls} == {t - 1 for t in m.test_timesteps()}
    expected_calls = {"ddpm": 1, "pddpm": 4, "cddpm": 3}  # pDDPM: 4 boxes; cDDPM: ENS
    if name in expected_calls:
        assert len(m.unet.calls) == expected_calls[name]


def test_ensemble_flag_and_test_t():
    x = torch.rand(1, 1, 96, 96)
    m, _ = _with_spy("ddpm", x, ensemble=True, test_ensemble=(100, 900))
    m.anomaly(x)
    assert [int(c[1][0]) for c in m.unet.calls] == [99, 899]
    with pytest.raises(ValueError, match="1..1000"):
        get_method("ddpm").from_profile("smoke", {"test_t": 0})
    with pytest.raises(ValueError, match="simplex, gaussian"):
        get_method("ddpm").from_profile("smoke", {"noise": "perlin"})


# ---------------------------------------------------------------- cDDPM
@pytest.mark.parametrize("cond_dim", [128, 512])
def test_cddpm_cond_dim_option(cond_dim):
    m = get_method("cddpm").from_profile("smoke", {"cond_dim": cond_dim, "pretrain": False})
    assert m.condition(torch.rand(2, 1, 96, 96)).shape == (2, cond_dim)
    assert m.unet.cond_embed[0].in_features == cond_dim
    assert m.stages() == ["main"] and m.spark is None


def test_cddpm_pretrain_stage_trains_the_encoder_with_adamw():
    m = get_method("cddpm").from_profile("smoke")
    assert m.stages() == ["pretrain", "main"] and m.stage_epochs("pretrain", "paper") == 1200
    m.stage = "pretrain"
    m.setup("fit")  # the stage's unused parts are frozen (DDP needs every trainable param used)
    assert not any(p.requires_grad for p in m.unet.parameters())
    opt = m.configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.95)
    assert opt.defaults["weight_decay"] == 0.05
    before = m.encoder.conv1.weight.detach().clone()
    loss = m.training_losses({"image": torch.rand(4, 1, 96, 96)})["loss"]
    loss.backward()
    trainable = [p for p in m.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)  # nothing trainable is left unused
    opt.step()
    assert not torch.equal(before, m.encoder.conv1.weight)  # the shared encoder is pre-trained
    m.stage = "main"
    m.setup("fit")
    assert not any(p.requires_grad for p in m.spark.parameters())
    m.zero_grad()
    m.training_losses({"image": torch.rand(2, 1, 96, 96)})["loss"].backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    assert isinstance(m.configure_optimizers(), torch.optim.Adam)


def test_spark_loss_is_on_removed_patches_only():
    m = get_method("cddpm").from_profile("smoke")
    x = torch.rand(3, 1, 96, 96)
    torch.manual_seed(1)
    loss, rec, active = m.spark(m.encoder, x)
    assert active.shape == (3, 1, 3, 3) and active.sum((1, 2, 3)).tolist() == [3, 3, 3]
    removed = (~active).float().repeat_interleave(32, 2).repeat_interleave(32, 3)
    manual = (((rec - x) ** 2) * removed).sum() / removed.sum()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)


# ---------------------------------------------------------------- experiments' pure parts
def test_histogram_divergences_known_answers():
    """The experiment uses the protocol's definitions (benchmark.metrics)."""
    from benchmark.experiments.histograms import divergences

    x = np.repeat([0.1, 0.9], 500)
    same = divergences(x, x)
    assert same["kl"] == pytest.approx(0, abs=1e-12)
    assert same["entropy_difference"] == pytest.approx(0, abs=1e-12)
    other = divergences(x, np.repeat([0.3, 0.7], 500))  # same entropy, disjoint support
    assert other["entropy_difference"] == pytest.approx(0, abs=1e-12)  # the paper's "KLD"
    assert other["kl"] > 5  # a true divergence sees it: log(1001) with 0.5 pseudo-counts


def test_conditioning_crop_keeps_the_left_fraction():
    from benchmark.experiments.conditioning import crop_width

    x = torch.ones(1, 1, 4, 10)
    assert crop_width(x, 50)[..., :5].eq(1).all() and crop_width(x, 50)[..., 5:].eq(0).all()
    assert crop_width(x, 0).eq(0).all() and torch.equal(crop_width(x, 100), x)


def test_cddpm_encoder_is_the_authors_timm_resnet50():
    """Stochastic depth rising linearly to 0.05, zero-initialised last BN per block, no
    bias on the shortcut convolutions (MONAI's default has one: 3,840 parameters)."""
    from monai.networks.layers import DropPath

    from methods.cddpm.network import build_encoder

    enc = build_encoder("resnet50", 128)
    monai_default = build_encoder("resnet50", 128, drop_path=0.0, zero_init_last=False,
                                  shortcut_bias=True)
    n = sum(p.numel() for p in enc.parameters())
    assert sum(p.numel() for p in monai_default.parameters()) - n == 3840
    blocks = [b for layer in (enc.layer1, enc.layer2, enc.layer3, enc.layer4) for b in layer]
    assert len(blocks) == 16 and all(b.bn3.weight.abs().sum() == 0 for b in blocks)
    rates = [b.drop_path.drop_prob if isinstance(getattr(b, "drop_path", None), DropPath)
             else 0.0 for b in blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.05)
    assert rates == pytest.approx([0.05 * i / 15 for i in range(16)])
    assert not any("drop_path" in k for k in enc.state_dict())  # checkpoint keys unchanged
    # stochastic depth acts in training only
    noisy = build_encoder("resnet18", 16, 0.5, drop_path=0.5, zero_init_last=False).eval()
    x = torch.rand(4, 1, 96, 96)
    assert torch.equal(noisy(x), noisy(x))
