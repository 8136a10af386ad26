"""The reconstruction ceiling (experiments/recon_ceiling.py) on the smoke-size synthetic
default: the healthy twin's noise-free mean, re-rendered and checked against the files, and
the two knobs' known effects."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.data import layout
from benchmark.data.synth.render import Acquisition
from benchmark.experiments import recon_ceiling as rc


def test_rician_mean_hand_values_and_monte_carlo():
    ones = np.ones((1, 1, 1), np.float32)

    def acq(sigma, gain=2.0):
        return Acquisition(bias=ones, noise_re=ones * 0, noise_im=ones * 0, gain=gain, sigma=sigma)

    # nu = 0: the Rayleigh mean sigma sqrt(pi / 2), times the gain
    assert acq(1.0).expected(ones * 0, ones)[0, 0, 0] == pytest.approx(2 * 1.2533141, rel=1e-6)
    # high SNR: nu + sigma^2 / (2 nu) to first order (10 + 0.05 = 10.05)
    assert acq(1.0, gain=1.0).expected(ones * 10, ones)[0, 0, 0] == pytest.approx(10.05, abs=2e-3)
    # sigma 0: no noise, the biased image itself
    assert acq(0.0, gain=3.0).expected(ones * 5, ones)[0, 0, 0] == pytest.approx(15.0)
    # an intermediate SNR against the noise it stands for (1e6 draws: error ~ 1e-3)
    rng = np.random.default_rng(0)
    n = rng.normal(0.0, 1.0, (2, 1_000_000))
    mc = np.sqrt((1.5 + n[0]) ** 2 + n[1] ** 2).mean()
    assert acq(1.0, gain=1.0).expected(ones * 1.5, ones)[0, 0, 0] == pytest.approx(mc, abs=5e-3)


@pytest.fixture(scope="module")
def mslub(synth_root):
    specs = rc.specs_of(synth_root, None)
    records = layout.unhealthy_split(synth_root, "MSLUB", "test")
    return specs, records, [rc.twin_volumes(r, specs[r.name]) for r in records]


def test_twin_differs_from_the_image_only_inside_the_lesion(mslub):
    _, _, vols = mslub
    for v in vols:
        assert v["seg"].any()
        np.testing.assert_array_equal(v["image"][~v["seg"]], v["twin"][~v["seg"]])
        assert (v["image"][v["seg"]] != v["twin"][v["seg"]]).all()
        # the noise-free mean is close to the noisy twin, but not equal to it
        brain = v["mask"]
        assert 0 < np.abs(v["ideal"] - v["twin"])[brain].mean() < 0.1


def test_knobs_known_effects(mslub):
    _, _, vols = mslub
    rows = {(r["blur"], r["copy"]): r for r in rc.cohort_rows(vols, [0.0, 2.0], [0.0, 1.0])}
    prevalence = rows[(0.0, 0.0)]["prevalence"]
    # the ideal reconstruction finds the lesions (bright T2 lesions over noise)
    assert rows[(0.0, 0.0)]["auprc"] > 0.5 > 10 * prevalence
    # copying the whole lesion leaves twin - ideal, the noise alone, in lesion and brain
    # alike: chance level, l1-ratio near 1
    assert rows[(0.0, 1.0)]["auprc"] < 3 * prevalence
    assert 0.6 < rows[(0.0, 1.0)]["l1_ratio"] < 1.5
    # blur adds errors at every tissue border: lower AUPRC and l1-ratio
    assert rows[(2.0, 0.0)]["auprc"] < rows[(0.0, 0.0)]["auprc"]
    assert rows[(2.0, 0.0)]["l1_ratio"] < rows[(0.0, 0.0)]["l1_ratio"]


def test_healthy_rows_give_ssim_falling_with_blur(synth_root):
    specs = rc.specs_of(synth_root, None)
    records = layout.healthy_splits(synth_root, "t2", 0)["test"][:2]
    vols = [rc.twin_volumes(r, specs[r.name]) for r in records]
    rows = rc.cohort_rows(vols, [0.0, 1.0, 2.0], [0.0])
    ssim = [r["ssim"] for r in rows]
    assert 0.5 < ssim[2] < ssim[1] < ssim[0] < 1.0
    assert all(np.isnan(r["copy"]) for r in rows)


def test_wrong_subject_or_missing_anatomy_root_is_named(synth_root, mslub, tmp_path):
    specs, records, _ = mslub
    other = records[1].name
    with pytest.raises(SystemExit, match="does not re-render"):
        rc.twin_volumes(records[0], specs[other])
    import json
    import shutil

    fake = tmp_path / "root"
    fake.mkdir()
    manifest = json.loads((synth_root / "manifest.json").read_text())
    manifest["parameters"]["anatomy"] = {"method": "x"}
    (fake / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="--anatomy-from"):
        rc.specs_of(fake, None)
    manifest["parameters"].pop("anatomy")
    manifest["parameters"]["sizes"]["ixi_test"] += 1  # another generator's plan
    (fake / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="differs in: sizes"):
        rc.specs_of(fake, None)
    shutil.rmtree(fake)
    with pytest.raises(SystemExit, match="not a synthetic data root"):
        rc.specs_of(fake, None)


def _per_dataset(tmp_path, l1, auprc):
    """A hand-made run: three methods on MSLUB (T2) with the given l1-ratios and AUPRCs."""
    import pandas as pd

    rows = []
    for m in l1:
        rows += [{"method": m, "fold": 0, "sequence": "t2", "dataset": "MSLUB",
                  "threshold_source": "none", "metric": "l1_ratio_pooled", "value": l1[m]},
                 {"method": m, "fold": 0, "sequence": "t2", "dataset": "MSLUB",
                  "threshold_source": "none", "metric": "auprc_pooled", "value": auprc[m]},
                 {"method": m, "fold": 0, "sequence": "t2", "dataset": "IXI",
                  "threshold_source": "none", "metric": "ssim_mean", "value": 0.5},
                 {"method": m, "fold": 1, "sequence": "t2", "dataset": "MSLUB",  # other fold
                  "threshold_source": "none", "metric": "l1_ratio_pooled", "value": 99.0}]
    tmp_path.mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "per_dataset.csv", index=False)
    return tmp_path


def test_l1_agreement_against_the_paper_known_answers(tmp_path):
    # the paper (Tables 1-2, MSLUB): l1-ratio DDPM (ENS) 3.37 > AE 3.26 > VAE 2.92, and
    # AUPRC DDPM (ENS) 6.27 > AE 5.71 > VAE 4.48: the same order, Spearman +1
    same = _per_dataset(tmp_path / "same", {"ddpm": 3.0, "ae": 2.0, "vae": 1.0},
                        {"ddpm": 0.1, "ae": 0.3, "vae": 0.2})
    points = rc.method_points([same], fold=0)
    assert points.set_index("method").loc["ddpm", "paper_l1_ratio"] == pytest.approx(3.37)
    assert points.set_index("method").loc["ddpm", "paper_auprc"] == pytest.approx(0.0627)
    row = rc.l1_agreement(points).iloc[0]
    assert (row["dataset"], row["n_methods"]) == ("MSLUB", 3)
    assert row["l1_ratio_vs_paper"] == pytest.approx(1.0)
    assert row["paper_auprc_vs_l1_ratio"] == pytest.approx(1.0)
    assert row["auprc_vs_l1_ratio"] == pytest.approx(-0.5)  # ranks (1,3,2) against (3,2,1)
    reversed_ = _per_dataset(tmp_path / "rev", {"ddpm": 1.0, "ae": 2.0, "vae": 3.0},
                             {"ddpm": 0.1, "ae": 0.2, "vae": 0.3})
    row = rc.l1_agreement(rc.method_points([reversed_], fold=0)).iloc[0]
    assert row["l1_ratio_vs_paper"] == pytest.approx(-1.0)
    assert row["auprc_vs_l1_ratio"] == pytest.approx(1.0)


def _args(*argv):
    import argparse

    parser = argparse.ArgumentParser()
    rc.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_command_writes_its_tables_and_checks_flags(synth_root, tmp_path):
    import pandas as pd

    out = tmp_path / "out"
    assert rc.main(_args("--data-root", str(synth_root), "--sequences", "t2", "--limit", "1",
                         "--blur", "0,2", "--copy", "0", "--out", str(out))) == 0
    table = pd.read_csv(out / "ceiling.csv")
    assert set(table["dataset"]) == {"IXI", "Brats21", "MSLUB"}
    assert len(table) == 2 + 2 * 2  # IXI: one row per blur; each cohort: blur x copy
    assert (out / "ceiling.png").stat().st_size > 0
    for bad, flag in ((["--copy", "1.5"], "--copy"), (["--blur", "a"], "--blur"),
                      (["--sequences", "flair"], "--sequences")):
        with pytest.raises(SystemExit, match=flag):
            rc.main(_args("--data-root", str(synth_root), *bad, "--out", str(out)))
