"""benchmark.cpu: the allocator setting, the channels-last layout (same numbers for every
method that declares it) and the machine-wide claim on cores."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import lightning as L
import pytest
import torch

from benchmark.cpu import (
    CpuSlots,
    channels_last,
    channels_last_training_hazards,
    claim_threads,
    is_channels_last,
)
from benchmark.method import AnomalyMethod
from benchmark.registry import get_method, list_methods

CPU = torch.device("cpu")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str, env: dict | None = None, timeout: float = 120) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=False, cwd=REPO,
                         text=True,
                         capture_output=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stderr
    return out.stdout


_FAULTS = """
    import resource, torch
    from benchmark.cpu import tune_allocator
    print(tune_allocator())

    def step():  # two 64 MiB tensors, above glibc's largest dynamic mmap threshold
        x = torch.ones(16 * 2**20)
        y = x + 1
        del x, y

    for _ in range(6):  # the heap grows to its working size first
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tuned_allocator_reuses_large_blocks_instead_of_faulting_them_in_again():
    """The same two 64 MiB tensors ten times: glibc's default mmaps and unmaps each (every
    page faults in again); the tuned allocator reuses them from the heap (no faults once
    the heap has grown to its working size)."""
    tuned, faults = _python(_FAULTS).split()
    default, default_faults = _python(_FAULTS, {"UAD_BENCH_MALLOC": "default"}).split()
    if tuned != "True":
        pytest.skip("this libc has no mallopt")
    assert default == "False"
    pages = 10 * 2 * 64 * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert int(default_faults) >= 0.9 * pages
    # at most a few refaults: on a loaded machine the kernel's reclaim (kdamond here) now
    # and then takes back the idle heap pages between two steps (measured once: 10 % of
    # the pages, one step's worth); the default allocator refaults every step
    assert int(faults) < 0.3 * pages


def test_channels_last_block_restores_the_layout_it_found():
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.Conv2d(4, 4, 3))
    with channels_last(net, True) as convert:
        assert is_channels_last(net)
        x = convert(torch.rand(1, 2, 8, 8))
        assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        with channels_last(net, True):  # e.g. a learning-curve point inside training
            pass
        assert is_channels_last(net)
    assert not is_channels_last(net) and net[0].weight.is_contiguous()
    with channels_last(net, False) as convert:
        x = torch.rand(1, 2, 8, 8)
        assert convert(x) is x and not is_channels_last(net)


def test_a_method_declares_only_known_phases():
    with pytest.raises(ValueError, match="allowed phases: train, infer"):
        type("Bad", (AnomalyMethod,), {"family": "reconstruction",
                                       "channels_last": frozenset({"test"})})


def test_training_stays_nchw_where_onednn_gets_the_weight_gradient_wrong():
    """oneDNN issue 6035: a 1x1 strided conv with < 16 input channels (Conv2d(4, 8, 1, 2)
    aborts the process in channels-last backward here): such a network trains in NCHW."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Conv2d(4, 8, 1, stride=2))
    assert channels_last_training_hazards(net) == ["1"]
    assert channels_last_training_hazards(torch.nn.Conv2d(16, 8, 1, stride=2)) == []
    assert channels_last_training_hazards(torch.nn.Conv2d(4, 8, 3, stride=2)) == []
    method = get_method("pii").from_profile("smoke")  # its 1x1 shortcuts see 4 and 8 channels
    with pytest.warns(UserWarning, match="oneDNN issue 6035"), \
            method.memory_layout("train", CPU):
        assert not is_channels_last(method)
    with method.memory_layout("infer", CPU):  # the forward pass is not affected
        assert is_channels_last(method)


def _declaring(phase: str) -> list[str]:
    return [n for n in list_methods() if phase in get_method(n).channels_last]


@pytest.mark.parametrize("name", _declaring("infer"))
def test_channels_last_inference_gives_the_same_maps(name):
    """Every method that runs inference channels-last: maps and reconstructions equal the
    NCHW ones to float rounding (same seed, so the same noise for the diffusion models)."""
    torch.manual_seed(0)
    method = get_method(name).from_profile("smoke").eval()
    x = torch.rand(6, 1, 96, 96)
    outs = []
    for phases in (frozenset(), frozenset({"infer"})):
        method.channels_last = phases  # the instance's choice, for this comparison only
        torch.manual_seed(1)
        outs.append(method.predict_volume(x))
    assert not is_channels_last(method)  # left as it was found
    ref, cl = outs
    scale = ref.anomaly_map.abs().max().item() or 1.0
    torch.testing.assert_close(cl.anomaly_map, ref.anomaly_map, rtol=0, atol=1e-4 * scale)
    if ref.reconstruction is not None:
        torch.testing.assert_close(cl.reconstruction, ref.reconstruction, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", _declaring("train"))
def test_channels_last_training_gives_the_same_losses_and_gradients(name):
    torch.manual_seed(0)
    method = get_method(name).from_profile("smoke")
    method.stage = method.stages()[-1]
    x = torch.rand(4, 1, 96, 96)
    batch = {"image": x, "mask": torch.ones_like(x)}
    if method.sampling == "volume":
        pytest.skip("trains on volumes")
    results = []
    for layout in (channels_last(method, False), method.memory_layout("train", CPU)):
        method.zero_grad(set_to_none=True)
        with layout:
            L.seed_everything(1, verbose=False)  # torch, numpy and random (DAE's shifts)
            loss = method.training_losses(batch)["loss"]
            loss.backward()
        grads = [p.grad.clone() for p in method.parameters() if p.grad is not None]
        results.append((loss.detach(), torch.cat([g.flatten() for g in grads])))
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-6)
    # an L1 loss's gradient flips sign where the residual is ~0, so a few elements differ by
    # their whole size; the gradient as a whole agrees to float rounding
    cosine = torch.nn.functional.cosine_similarity(g0, g1, dim=0).item()
    assert cosine > 0.9999, f"{name}: gradients differ (cosine {cosine:.6f})"
    assert abs(g1.norm() / g0.norm() - 1).item() < 1e-3


# ---------------------------------------------------------------------------- cores
def test_claim_threads_sets_torch_threads(monkeypatch, tmp_path):
    monkeypatch.setenv("UAD_BENCH_CPU_SLOTS", "on")
    monkeypatch.setenv("UAD_BENCH_CACHE", str(tmp_path))
    before = torch.get_num_threads()
    try:
        with claim_threads(1, torch.device("cpu")) as n:
            assert n == 1 == torch.get_num_threads()
            assert any(tmp_path.rglob("slot-*.json"))
        assert not any(tmp_path.rglob("slot-*.json"))  # released
    finally:
        torch.set_num_threads(before)


_HOLD = """
    import sys, time
    from pathlib import Path
    from benchmark.cpu import CpuSlots
    with CpuSlots(int(sys.argv[1]), directory=Path(sys.argv[2]), total=2).claim():
        print("held", flush=True)
        time.sleep(float(sys.argv[3]))
"""


def test_a_second_process_waits_for_the_cores_and_says_who_holds_them(monkeypatch, tmp_path):
    """Two cores: a holder takes both; a claim for one waits (naming the holder's pid)
    until the holder exits, then gets it. A killed holder would release them the same
    way: the locks are the OS's."""
    monkeypatch.setenv("UAD_BENCH_CPU_SLOTS", "on")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_HOLD), "2", str(tmp_path),
                               "3"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        said: list[str] = []
        start = time.monotonic()
        with CpuSlots(1, directory=tmp_path, total=2, poll_seconds=0.1).claim(said.append) as got:
            waited = time.monotonic() - start
            assert len(got) == 1
            note = json.loads((tmp_path / f"slot-{got[0]}.json").read_text())
            assert note["pid"] == os.getpid()
        assert holder.wait(timeout=30) == 0
        assert waited > 1.0, "the claim did not wait for the holder"
        assert len(said) == 1 and f"pid {holder.pid}" in said[0]
        assert "waiting for 1 of 2 CPU core(s)" in said[0]
    finally:
        holder.kill()


def test_claims_that_fit_do_not_wait(monkeypatch, tmp_path):
    monkeypatch.setenv("UAD_BENCH_CPU_SLOTS", "on")
    said: list[str] = []
    with CpuSlots(1, directory=tmp_path, total=2).claim(said.append) as a, \
            CpuSlots(1, directory=tmp_path, total=2).claim(said.append) as b:
        assert sorted(a + b) == [0, 1]
    assert said == []
    assert CpuSlots(5, directory=tmp_path, total=2).n == 2  # capped at the cores


def test_off_or_inside_slurm_claims_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("UAD_BENCH_CPU_SLOTS", "off")
    with CpuSlots(2, directory=tmp_path, total=2).claim() as got:
        assert got == [] and not any(tmp_path.iterdir())
    monkeypatch.setenv("UAD_BENCH_CPU_SLOTS", "on")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    with CpuSlots(2, directory=tmp_path, total=2).claim() as got:
        assert got == []


def test_a_precision_other_than_the_default_tags_the_rows():
    """--precision bf16-mixed on a CPU (about 1.6x faster training, other numbers) is
    recorded on every row; the default precision adds no tag."""
    from benchmark.train import TrainerOptions, precision_tags

    method = get_method("ddpm").from_profile("smoke")
    cpu = TrainerOptions(accelerator="cpu")
    assert precision_tags(method, cpu) == {}
    assert precision_tags(method, TrainerOptions(accelerator="cpu", precision="32-true")) == {}
    assert precision_tags(method, TrainerOptions(accelerator="cpu", precision="bf16-mixed")) \
        == {"precision": "bf16-mixed"}
