"""RD, FAE, EDC, PII and thresh: known-answer checks of their maths and short training runs.

Images are small (32 x 32) generated "brains" with smooth texture; lesions are bright
discs at known places. Backbones are the random-init smoke ones (nothing is downloaded).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from benchmark.registry import get_method, list_methods
from methods.edc.network import edc_anomaly_map, edc_loss
from methods.fae.network import FeatureAE, feature_map_size, ssim_map
from methods.pii.poisson import mixed_guidance, pii_batch, poisson_blend, solve_dirichlet_poisson
from methods.rd.network import gaussian_blur, rd_anomaly_map, rd_loss

pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM:RuntimeWarning")


def brains(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 1, size, size) elliptic 'brains' in [0, 1] with a random smooth texture."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size),
                            indexing="ij")
    out = []
    for _ in range(n):
        a, b = 0.75 + 0.1 * torch.rand(2, generator=gen)
        f1, f2, ph = 2 + 2 * torch.rand(3, generator=gen)
        tex = 0.5 + 0.2 * torch.cos(f1 * xx + ph) * torch.cos(f2 * yy)
        tex = tex + 0.03 * torch.randn(size, size, generator=gen)
        out.append(tex.clamp(0, 1) * ((xx / a) ** 2 + (yy / b) ** 2 < 1))
    return torch.stack(out)[:, None]


def plant_lesions(x: torch.Tensor, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Brighten (x1.6) a disc of radius 3-5 px inside each brain; returns (image, seg)."""
    gen = torch.Generator().manual_seed(seed)
    size = x.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    y, seg = x.clone(), torch.zeros_like(x, dtype=torch.bool)
    for i in range(len(x)):
        cy, cx = torch.randint(10, size - 10, (2,), generator=gen)
        r = 3 + 2 * torch.rand(1, generator=gen)
        seg[i, 0] = ((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2) & (x[i, 0] > 0)
        y[i, 0][seg[i, 0]] = (y[i, 0][seg[i, 0]] * 1.6).clamp(max=1)
    return y, seg


def train(method, data: torch.Tensor, steps: int, batch: int = 16) -> list[float]:
    torch.manual_seed(0)
    opt = method.configure_optimizers()
    losses = []
    for _ in range(steps):
        x = data[torch.randint(len(data), (batch,))]
        loss = method.training_losses({"image": x, "mask": (x > 0).float()})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def auprc(method, n_test: int = 8) -> tuple[float, float]:
    test, seg = plant_lesions(brains(n_test, seed=7))
    method.eval()
    with torch.no_grad():
        amap = method.anomaly(test).anomaly_map
    assert amap.shape == test.shape and torch.isfinite(amap).all()
    return average_precision_score(seg.flatten().numpy(), amap.flatten().numpy()), \
        seg.float().mean().item()


# ------------------------------------------------------------------------- RD
def test_rd_map_is_zero_when_student_equals_teacher():
    feats = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4), torch.randn(2, 32, 2, 2)]
    amap = rd_anomaly_map(feats, [f.clone() for f in feats], (32, 32))
    assert amap.shape == (2, 1, 32, 32)
    assert amap.abs().max() < 1e-5
    assert rd_loss(feats, feats).abs() < 1e-5


def test_rd_map_and_loss_known_values():
    t = [torch.ones(1, 2, 4, 4)]
    s = torch.ones(1, 2, 4, 4)
    s[0, 1] = -1  # orthogonal to the teacher at every pixel: 1 - cos = 1
    s[..., :2, :] = 1  # ... except the top half, identical: 0
    amap = rd_anomaly_map(t, [s], (4, 4))
    assert torch.allclose(amap[0, 0, :2], torch.zeros(2, 4), atol=1e-6)
    assert torch.allclose(amap[0, 0, 2:], torch.ones(2, 4), atol=1e-6)
    # loss: cosine of the flattened maps = (16 + 0) / 32 = 0.5
    assert torch.isclose(rd_loss(t, [s]), torch.tensor(0.5))
    # Gaussian blur keeps a constant map constant
    assert torch.allclose(gaussian_blur(torch.ones(1, 1, 40, 40), 4.0), torch.ones(1, 1, 40, 40))


# ------------------------------------------------------------------------- FAE
def test_fae_shape_fix_at_96():
    assert feature_map_size(96, 4) == 32 and feature_map_size(128, 4) == 32
    ae = FeatureAE(256)  # the reference widths
    f = torch.randn(1, 256, feature_map_size(96, 4), feature_map_size(96, 4))
    assert ae.eval()(f).shape == f.shape
    with pytest.raises(ValueError, match="divisible by 16"):
        ae(torch.randn(1, 256, 24, 24))  # the reference's H/4 at 96 px


def test_ssim_known_values():
    a = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim_map(a, a), torch.ones_like(a), atol=1e-5)
    # constant images: SSIM = (2 mu_a mu_b + c1) / (mu_a^2 + mu_b^2 + c1) away from the border
    s = ssim_map(torch.full((1, 1, 9, 9), 0.2), torch.full((1, 1, 9, 9), 0.6))
    assert torch.isclose(s[0, 0, 4, 4], torch.tensor((2 * 0.12 + 1e-4) / (0.4 + 1e-4)))


# ------------------------------------------------------------------------- EDC
def test_edc_two_learning_rates_and_stop_gradient():
    m = get_method("edc").from_profile("smoke")
    opt = m.configure_optimizers()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == [1e-5, 5e-5]
    enc_ids = {id(p) for p in m.encoder.parameters()}
    enc_group = next(g for g in opt.param_groups if g["lr"] == 1e-5)
    assert {id(p) for p in enc_group["params"]} == enc_ids
    assert all(b.momentum == 0.01 for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))
    e = [torch.randn(2, 4, 4, 4, requires_grad=True)]
    d = [torch.randn(2, 4, 4, 4, requires_grad=True)]
    edc_loss(e, d).backward()
    assert e[0].grad is None and d[0].grad is not None  # sg(e_k)
    assert edc_anomaly_map(e, e, (8, 8)).abs().max() < 1e-5


# ------------------------------------------------------------------------- PII
def test_poisson_solution_satisfies_the_discrete_equation():
    gen = torch.Generator().manual_seed(0)
    dst, src = torch.rand(2, 24, 24, generator=gen, dtype=torch.float64)
    box, alpha = (4, 15, 6, 20), 0.3
    f = poisson_blend(dst, src, box, alpha)
    t, b, l, r = box
    assert torch.equal(f[:t], dst[:t]) and torch.equal(f[:, r:], dst[:, r:])
    lap = 4 * f - f.roll(1, 0) - f.roll(-1, 0) - f.roll(1, 1) - f.roll(-1, 1)
    residual = (lap - mixed_guidance(dst, src, alpha))[t:b, l:r]
    assert residual.abs().max() < 1e-10
    # alpha -> 1 with the source dominating: the patch becomes src up to a constant offset
    g = poisson_blend(dst * 0, src, box, 1.0)
    assert (g[t:b, l:r] - src[t:b, l:r]).std() < (src[t:b, l:r]).std()


def test_dst_solver_against_dense_solve():
    rhs = torch.randn(5, 7, dtype=torch.float64)
    n = rhs.numel()
    idx = torch.arange(n).view(5, 7)
    A = 4 * torch.eye(n, dtype=torch.float64)
    for a, b in ((idx[1:], idx[:-1]), (idx[:, 1:], idx[:, :-1])):
        A[a.flatten(), b.flatten()] = -1
        A[b.flatten(), a.flatten()] = -1
    expected = torch.linalg.solve(A, rhs.flatten()).view(5, 7)
    assert torch.allclose(solve_dirichlet_poisson(rhs), expected, atol=1e-12)


def test_pii_labels_are_as_constructed():
    dst, src = brains(6, seed=3), brains(6, seed=4)
    out = pii_batch(dst, src, torch.Generator().manual_seed(0))
    for i, (t, b, l, r) in enumerate(out.boxes):
        alpha = out.alphas[i].item()
        assert 0.05 <= alpha <= 0.95 and 1 <= t < b <= 31 and 1 <= l < r <= 31
        expected = torch.zeros(32, 32)
        inside = (dst[i, 0] != src[i, 0])[t:b, l:r] & (dst[i, 0] > 0)[t:b, l:r]
        expected[t:b, l:r] = alpha * inside
        assert torch.allclose(out.label[i, 0], expected)
        outside = torch.ones(32, 32, dtype=torch.bool)
        outside[t:b, l:r] = False
        assert torch.equal(out.image[i, 0][outside], dst[i, 0][outside])
        assert out.image[i].min() >= dst[i].min() and out.image[i].max() <= dst[i].max()


def test_pii_learns_to_find_planted_lesions():
    torch.manual_seed(0)  # AUPRC 0.14-0.15 over seeds 0-3 (prevalence 0.048)
    m = get_method("pii").from_profile("smoke", {"k": 2, "base": 4, "lr": 5e-3})
    losses = train(m, brains(64), steps=120)
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
    ap, prevalence = auprc(m)
    assert ap > 2 * prevalence, (ap, prevalence)


# ------------------------------------------------------------------------- thresh
def test_thresh_statistics_come_only_from_training_brain_voxels():
    m = get_method("thresh").from_profile("smoke")
    x = torch.zeros(2, 1, 8, 8)
    x[:, :, :4] = 0.25
    x[:, :, 4:] = 0.75
    mask = torch.ones_like(x)
    mask[:, :, :, 0] = 0
    x[:, :, :, 0] = 1.0  # outside the mask: must not count
    m.fit_statistics([{"image": x, "mask": mask}])
    assert int(m.n_voxels) == 2 * 8 * 7
    cdf_before = m.cdf.clone()
    probe = torch.tensor([0.1, 0.5, 0.9]).view(1, 1, 1, 3)
    amap = m.eval().anomaly(probe).anomaly_map.flatten()
    # half the healthy voxels are <= 0.25, all are <= 0.75
    assert torch.allclose(amap, torch.tensor([0.0, 0.5, 1.0]), atol=1e-6)
    m.anomaly(torch.rand(3, 1, 8, 8))
    assert torch.equal(m.cdf, cdf_before)  # test data changes nothing


def test_thresh_volume_mode_matches_skimage_equalize_hist():
    exposure = pytest.importorskip("skimage.exposure")
    vol = brains(4, seed=5)
    m = get_method("thresh").from_profile("smoke", {"equalize": "volume"})
    ours = m.eval().predict_volume(vol).anomaly_map.numpy()
    ref = exposure.equalize_hist(vol.numpy().astype(np.float64), nbins=256,
                                 mask=vol.numpy() > 0) * (vol.numpy() > 0)
    assert np.abs(ours - ref).max() < 1e-4


def test_thresh_finds_hyperintense_lesions_and_rejects_bad_choices():
    m = get_method("thresh").from_profile("smoke")
    healthy = brains(16)
    m.fit_statistics([{"image": healthy, "mask": (healthy > 0).float()}])
    ap, prevalence = auprc(m)
    assert ap > 3 * prevalence, (ap, prevalence)
    with pytest.raises(ValueError, match="train, volume, none"):
        get_method("thresh")(equalize="clahe")


# ------------------------------------------------------------------------- RD / FAE / EDC
@pytest.mark.parametrize("name", list_methods("feature"))
def test_feature_methods_train_and_tag_random_weights(name):
    torch.manual_seed(0)
    m = get_method(name).from_profile("smoke")
    losses = train(m, brains(32), steps=25, batch=8)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), losses
    # smoke backbones never have ImageNet weights: a method with a backbone says so
    assert m.result_tags().get("pretrained", False) is False
    auprc(m, n_test=4)  # random backbones: only shape and finiteness of the map are checked
