"""benchmark.scoring / benchmark.thresholds on the toy data set with hand-made cached maps."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_run_config

from benchmark import scoring
from benchmark.data.loader import load_volume
from benchmark.data.module import BenchmarkDataModule, DataConfig
from benchmark.postprocess import PostProcess
from benchmark.profiles import get_profile
from benchmark.rundir import RunDir
from benchmark.scoring.domain_shift import (
    contrast_transform,
    infer_contrast_levels,
    score_domain_shift,
)
from benchmark.scoring.reconstruction import score_reconstruction
from benchmark.scoring.segmentation import score_part
from benchmark.thresholds import (
    SOURCES,
    MapSource,
    ProtocolError,
    compute_thresholds,
    parse_sources,
)


@pytest.fixture(scope="module")
def sets(toy_root):
    dm = BenchmarkDataModule(DataConfig(root=toy_root, sequence="t2", fold=0,
                                        max_test_volumes=2, cohorts=["Brats21"]))
    return dm.evaluation_sets()


def _part(root):
    return RunDir(root).part("m", "t2", 0)


def _write_maps(part, sets, make, recon=None, contrast=1.0):
    """Cache maps for every (dataset, split): anomaly = make(volume, rng)."""
    rng = np.random.default_rng(0)
    for dataset, splits in sets.items():
        for split, recs in splits.items():
            vols = [load_volume(r) for r in recs]
            arrays = {"names": np.array([r.name for r in recs]),
                      "anomaly": np.stack([make(v, rng) for v in vols]).astype(np.float32)}
            if recon is not None:
                arrays["reconstruction"] = np.stack([recon(v) for v in vols]).astype(np.float32)
            path = part.maps_path(dataset, split, contrast)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(path, **arrays)


def _perfect(v, rng):
    """The lesion scores 0.5 + small noise, healthy brain voxels score below 0.2."""
    healthy = rng.uniform(0, 0.2, v.image.shape) * v.mask
    return healthy if v.seg is None else np.where(v.seg, 0.5 + 0.01 * rng.random(v.image.shape),
                                                  healthy)


def test_perfect_maps_score_perfectly(tmp_path, sets):
    _write_maps(_part(tmp_path), sets, _perfect)
    opts = scoring.ScoringOptions(postprocess=PostProcess.from_string("none"))
    vol, ds = score_part(_part(tmp_path), sets, {"method": "m", "fold": 0}, opts)
    assert set(vol["threshold_source"]) == set(SOURCES)
    assert np.allclose(vol["auprc"], 1.0) and np.allclose(vol["auroc"], 1.0)
    for src in ("oracle", "val"):  # val: lesions score >= 0.5 on the val split too
        assert (vol.loc[vol.threshold_source == src, "dice"] == 1.0).all(), src
    assert vol.loc[vol.threshold_source == "oracle", "upper_bound"].all()
    assert not vol.loc[vol.threshold_source != "oracle", "upper_bound"].any()
    assert (vol["postprocess"] == "none").all() and (vol["auc_region"] == "brain").all()
    pooled = ds.set_index(["dataset", "threshold_source", "metric"])["value"]
    assert pooled[("Brats21", "oracle", "best_dice_pooled")] == 1.0
    assert pooled[("Brats21", "none", "auprc_pooled")] == pytest.approx(1.0)
    # chance level: lesion voxels / brain voxels of the test volumes (a random map's AUPRC)
    vols = [load_volume(r) for r in sets["Brats21"]["test"]]
    share = sum(int((v.seg & v.mask).sum()) for v in vols) / sum(int(v.mask.sum()) for v in vols)
    assert pooled[("Brats21", "none", "prevalence")] == pytest.approx(share)
    # fpr thresholds come from healthy val maps uniform on [0, 0.2): ~1/5/10 % flagged
    for src, rate in (("fpr1", 0.01), ("fpr5", 0.05), ("fpr10", 0.10)):
        assert pooled[("Brats21", src, "threshold")] == pytest.approx(0.2 * (1 - rate), abs=0.01)
        assert pooled[("IXI", src, "healthy_fpr")] == pytest.approx(rate, abs=0.01)


def test_lesion_detection_per_volume_and_pooled(tmp_path, sets):
    """Perfect maps on the first test volume only: its lesions are all found, the
    second volume's (scored like healthy brain, below the oracle threshold) none."""
    from scipy import ndimage as ndi

    first = sets["Brats21"]["test"][0].name

    def one(v, rng):
        m = _perfect(v, rng)
        return m if v.name == first or v.seg is None else np.where(v.seg, 0.1, m)
    _write_maps(_part(tmp_path), sets, one)
    opts = scoring.ScoringOptions(postprocess=PostProcess.from_string("none"),
                                  threshold_sources=("oracle",))
    vol, ds = score_part(_part(tmp_path), sets, {"method": "m"}, opts)
    vol = vol.set_index("volume")
    # lesions counted independently: components of the label, 26-connectivity
    n = {r.name: ndi.label(load_volume(r).seg, np.ones((3, 3, 3)))[1]
         for r in sets["Brats21"]["test"]}
    assert all(k > 0 for k in n.values())
    assert vol["n_lesions"].to_dict() == n
    assert vol["lesions_detected"].to_dict() == {k: (v if k == first else 0)
                                                 for k, v in n.items()}
    assert vol["detection_rate"].to_dict() == {k: float(k == first) for k in n}
    pooled = ds.set_index(["threshold_source", "metric"])["value"]
    assert pooled[("oracle", "detection_rate_pooled")] == pytest.approx(
        n[first] / sum(n.values()))


def test_site_column_of_the_split_csv_is_kept(tmp_path, toy_root):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(toy_root, root)
    csv = root / "Data" / "splits" / "Brats21_test.csv"
    df = pd.read_csv(csv)
    df.assign(site=["A", "B"] + [""] * (len(df) - 2)).to_csv(csv, index=False)
    sets = BenchmarkDataModule(DataConfig(root=root, sequence="t2", fold=0,
                                          max_test_volumes=2, cohorts=["Brats21"])
                               ).evaluation_sets()
    assert [r.site for r in sets["Brats21"]["test"]] == ["A", "B"]
    assert {r.site for r in sets["IXI"]["test"]} == {None}  # no site column: no site
    _write_maps(_part(tmp_path / "part"), sets, _perfect)
    vol, _ = score_part(_part(tmp_path / "part"), sets, {"method": "m"},
                                scoring.ScoringOptions(threshold_sources=("oracle",)))
    assert vol.set_index("volume")["site"].to_dict() == {
        r.name: s for r, s in zip(sets["Brats21"]["test"], "AB")}


def test_val_threshold_comes_from_val_not_test(tmp_path, sets):
    val_names = {r.name for r in sets["Brats21"]["val"]}

    def shifted(v, rng):  # the val split's lesions score 0.9, the test split's 0.5
        m = _perfect(v, rng)
        return np.where(v.seg, 0.9, m) if v.name in val_names else m
    _write_maps(_part(tmp_path), sets, shifted)
    opts = scoring.ScoringOptions(postprocess=PostProcess.from_string("none"),
                                  threshold_sources=("oracle", "val"))
    vol, _ = score_part(_part(tmp_path), sets, {"method": "m"}, opts)
    assert (vol.loc[vol.threshold_source == "val", "threshold"] == np.float32(0.9)).all()
    assert (vol.loc[vol.threshold_source == "val", "dice"] == 0.0).all()  # nothing >= 0.9
    assert (vol.loc[vol.threshold_source == "oracle", "dice"] == 1.0).all()


def test_only_the_oracle_may_read_test_data():
    requests = []

    def loader(cohort, split):
        requests.append((cohort, split))
    compute_thresholds(tuple(SOURCES), loader, "Brats21", "IXI")
    assert ("Brats21", "test") in requests
    assert [r for r in requests if r[1] == "test"] == [("Brats21", "test")]  # oracle only
    assert ("IXI", "val") in requests and ("Brats21", "val") in requests
    with pytest.raises(ProtocolError, match="only read the val split"):
        MapSource(loader, SOURCES["val"], "Brats21", "IXI").get("test")
    with pytest.raises(ValueError, match="allowed"):
        parse_sources("oracle,test-tuned")


def test_default_postprocessing_and_all_voxel_auc(tmp_path, sets):
    _write_maps(_part(tmp_path), sets, _perfect)
    vol, _ds = score_part(_part(tmp_path), sets, {"method": "m"},
                                 scoring.ScoringOptions(auc_region="all"))
    assert (vol["postprocess"] == "erode3_2d+median5+cc7_26").all()
    assert (vol["auc_region"] == "all").all()
    assert vol["auprc"].between(0, 1).all() and vol["dice"].notna().all()
    with pytest.raises(ValueError, match="auc_region"):
        scoring.ScoringOptions(auc_region="mask")


def test_reconstruction_quality_and_l1_ratio(tmp_path, sets):
    # reconstruction: the input with the lesion replaced by 0 and a 0.01 offset elsewhere
    def recon(v):
        r = np.clip(v.image + 0.01, 0, 1) * v.mask
        return r if v.seg is None else np.where(v.seg, 0.0, r)
    _write_maps(_part(tmp_path), sets, _perfect, recon)
    rec, pooled = score_reconstruction(_part(tmp_path), sets, {"method": "m"},
                                               histograms_path=tmp_path / "h.npz")
    with np.load(tmp_path / "h.npz") as h:  # pooled counts: every brain voxel counted once
        n_brain = sum(int(load_volume(r).mask.sum()) for r in sets["IXI"]["test"])
        assert h["IXI_input"].sum() == h["IXI_reconstruction"].sum() == n_brain
        assert h["edges"].shape == (501,)
    healthy = rec[rec.dataset == "IXI"]
    assert healthy["psnr"].gt(30).all() and healthy["ssim"].gt(0.9).all()
    assert (healthy["lpips_status"] != "ok").all() or healthy["lpips"].notna().all()
    brats = rec[rec.dataset == "Brats21"]
    assert (brats["hist_region"] == "healthy_part").all()
    assert brats["l1_ratio"].gt(10).all()  # lesion error ~ intensity, healthy error <= 0.01
    values = pooled.set_index(["dataset", "metric"])["value"]
    assert {"kl_divergence_pooled", "paper_kld_pooled", "ssim_mean", "psnr_mean"} <= set(
        values["IXI"].index)
    assert values[("Brats21", "l1_ratio_pooled")] > 10


def test_contrast_levels_are_scored_against_unshifted_val_thresholds(tmp_path, sets):
    part = _part(tmp_path)
    _write_maps(part, sets, _perfect)
    _write_maps(part, {d: {"test": s["test"]} for d, s in sets.items()}, _perfect, contrast=0.3)
    assert part.contrast_levels() == [0.3, 1.0]
    opts = scoring.ScoringOptions(postprocess=PostProcess.from_string("none"))
    vol, _ds, rec = scoring.score_all(part, sets, {"method": "m"}, opts)
    assert "contrast" not in vol and rec.empty  # per_*.csv: the part's own maps only
    shift = score_domain_shift(part, sets, {"method": "m"}, opts)
    assert set(shift["contrast"]) == {1.0, 0.3}
    oracle = shift[(shift.metric == "best_dice_pooled")].set_index("contrast")["value"]
    assert oracle[0.3] == oracle[1.0] == 1.0  # the same perfect maps at both levels
    fpr = shift[(shift.metric == "threshold") & (shift.threshold_source == "fpr5")]
    assert fpr["value"].nunique() == 1  # from the unshifted healthy val maps at every level
    x = contrast_transform(2.0)(__import__("torch").tensor([0.5, 1.0]))
    assert x.tolist() == [0.25, 1.0]


def test_evaluate_cli_rescores_from_cached_maps(tmp_path, toy_root, sets):
    from benchmark.cli import main

    run = tmp_path / "run"
    part = RunDir(run).part("m", "t2", 0)
    _write_maps(part, sets, _perfect)
    write_run_config(run, toy_root, profile=get_profile("paper"), cohorts=["Brats21"])
    part.mark_done(part.path / "best-main.ckpt", {"variant": "x"})
    assert main(["evaluate", str(run), "--postprocess", "median3", "--thresholds",
                 "oracle,fpr5", "--auc-region", "all"]) == 0
    df = pd.read_csv(run / "per_volume.csv")
    assert set(df["threshold_source"]) == {"oracle", "fpr5"}
    assert (df["postprocess"] == "median3").all() and (df["auc_region"] == "all").all()
    assert (run / "per_dataset.csv").is_file()
    assert (df["variant"] == "x").all()  # the part's recorded tags are kept
    assert main(["evaluate", str(run), "--postprocess", "median4"]) == 2  # bad tag: clean error


def test_infer_contrast_levels_caches_maps_of_the_shifted_inputs(tmp_path, sets):
    import torch

    from benchmark.method import AnomalyOutput

    class Identity(torch.nn.Module):  # anomaly map = the input it was given
        name = "identity"

        def predict_volume(self, x, batch_size=50):
            return AnomalyOutput(anomaly_map=x.clone(), reconstruction=x.clone())

    small = {"Brats21": {"test": sets["Brats21"]["test"][:1]}}
    part = _part(tmp_path)
    infer_contrast_levels(Identity(), small, part, torch.device("cpu"), levels=(1.0, 2.0))
    assert part.contrast_levels() == [1.0, 2.0]
    with np.load(part.maps_path("Brats21", "test", 2.0), allow_pickle=False) as cached:
        anomaly = cached["anomaly"][0]
    image = load_volume(small["Brats21"]["test"][0]).image
    np.testing.assert_allclose(anomaly, image ** 2, rtol=1e-6)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_cpu_peak_memory_covers_one_part_only():
    # inference's CPU peak memory is reset per part: a big allocation before the reset
    # (an earlier method in the same process) must not show up in the next part's number,
    # also with the raised trim threshold that keeps freed memory in the heap (benchmark.cpu)
    from benchmark.cpu import tune_allocator
    from benchmark.inference import peak_rss_mb, reset_peak_rss

    tune_allocator()
    big = np.ones(400 * 2**20 // 8)  # 400 MiB, touched
    before = peak_rss_mb()
    del big
    assert reset_peak_rss()
    after = peak_rss_mb()
    assert before - after > 300, (before, after)
