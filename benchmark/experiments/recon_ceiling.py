"""The reconstruction ceiling of a synthetic data set: what a reconstruction-based detector
can score on its lesions at all, and what blur and lesion copying cost it.

    python -m benchmark experiment recon-ceiling [--data-root ROOT [--anatomy-from PREP]]
        [--runs RUN ...] [--out DIR]

The generator knows every test subject's healthy twin (the same subject, acquisition and
noise draws, without the lesion). Each test volume is rendered again (and checked, array
for array, against its file) with the noise-free mean of that twin,
``render.Acquisition.expected``: the best reconstruction any model of healthy anatomy can
return, normalised exactly as the loader normalises the volume. Two knobs degrade it:

    rec(blur, copy) = G_blur * E  +  copy * (x - twin)

``G_blur``: an in-plane Gaussian of sigma ``blur`` voxels on each axial slice (a 2D model's
missed edges and texture); ``x - twin``: the lesion as stored (zero outside it), of which
a reconstruction keeps the share ``copy`` instead of healing it. The map |x - rec| is
scored as the board scores it (eroded brain mask, 3D median filter; pooled AUPRC over
brain voxels, pooled l1-ratio = l1 over lesion voxels / l1 over healthy brain voxels, as
paper Table 1); the healthy IXI test volumes give SSIM and l1 per blur (copy has nothing
to copy there).

``--runs``: board runs (e.g. leaderboard/synthetic-reference-v2/runs/baselines) on the
same data; their methods' pooled AUPRC, l1-ratio and healthy SSIM at ``--fold`` are drawn
over the ceiling's curves, so each trained model sits beside the ideal reconstruction
degraded to its own healthy SSIM, with the paper's AUPRC (Table 2) and l1-ratio (Table 1)
beside them; l1_agreement.csv gives, per data set, the Spearman correlation of the runs'
l1-ratios with the paper's, and of AUPRC with l1-ratio on either side. Writes
ceiling.csv, methods.csv, l1_agreement.csv and ceiling.png into --out (default
recon-ceiling/). Synthetic data only: real scans have no healthy twin.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_BLUR = "0,0.5,1,1.5,2"
DEFAULT_COPY = "0,0.25,0.5,0.75,0.9"
NORM_TOLERANCE = 1e-4  # max |our normalisation - the loader's| (float32 rounding is ~1e-7)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", type=Path, default=None,
                        help="a synthetic data root (`data synth`; default: the embedded "
                             "default of --version at quick size)")
    parser.add_argument("--version", default="2",
                        help="generator version of the default data root (default 2)")
    parser.add_argument("--anatomy-from", type=Path, default=None, metavar="PREP",
                        help="the prepared healthy T1 root the data root's anatomies came "
                             "from (`data synth --anatomy-from`); required for such data")
    parser.add_argument("--sequences", default="t1,t2")
    parser.add_argument("--blur", default=DEFAULT_BLUR,
                        help=f"in-plane Gaussian sigmas in voxels (default {DEFAULT_BLUR})")
    parser.add_argument("--copy", default=DEFAULT_COPY,
                        help=f"shares of the lesion kept in the reconstruction (default "
                             f"{DEFAULT_COPY})")
    parser.add_argument("--limit", type=int, default=None,
                        help="at most this many test volumes per cohort")
    parser.add_argument("--runs", type=Path, nargs="*", default=[], metavar="RUN",
                        help="run directories on the same data whose methods are plotted")
    parser.add_argument("--fold", type=int, default=0, help="the runs' fold (default 0)")
    parser.add_argument("--out", type=Path, default=Path("recon-ceiling"))


def _floats(text: str, flag: str, low: float, high: float) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    bad = [v for v in values if not low <= v <= high]
    if not values or bad:
        raise SystemExit(f"{flag}: values must lie in [{low}, {high}], got {text!r}")
    return values


def specs_of(root: Path, anatomy_from: Path | None) -> dict:
    """{volume name: SubjectSpec} of a synthetic data root, after checking that this
    generator (and ``anatomy_from``) gives the root's manifest parameters."""
    from benchmark.data import synth

    path = root / "manifest.json"
    if not path.is_file():
        raise SystemExit(f"--data-root: {path} not found: not a synthetic data root")
    manifest = json.loads(path.read_text())
    params, version = manifest.get("parameters", {}), str(manifest.get("version", "1"))
    if "anatomy" in params and anatomy_from is None:
        raise SystemExit(f"{root} was rendered from individual anatomies: pass the prepared "
                         "root they came from with --anatomy-from")
    size, seed = params.get("size"), params.get("seed")
    try:
        expected = synth.parameters(size, seed, version, anatomy_from)
    except Exception as exc:  # noqa: BLE001 - a bad size or anatomy root: say which
        raise SystemExit(f"{path}: cannot rebuild its generator settings ({exc})") from None
    if json.loads(json.dumps(expected)) != params:
        diff = sorted(k for k in set(params) | set(expected)
                      if json.dumps(params.get(k), sort_keys=True)
                      != json.dumps(expected.get(k), sort_keys=True, default=str))
        raise SystemExit(f"{path}: this generator (with --anatomy-from {anatomy_from}) does "
                         f"not reproduce the data root (differs in: {', '.join(diff)})")
    return {s.name: s for cohort in synth.plan(size, seed, version, anatomy_from).values()
            for s in cohort}


def twin_volumes(record, spec) -> dict:
    """One test volume as the loader gives it, with its healthy twin and the twin's
    noise-free mean on the same normalised scale: {image, twin, ideal, mask, seg}."""
    import nibabel as nib

    from benchmark.data.loader import load_volume
    from benchmark.data.synth.subjects import expected_healthy

    vol = load_volume(record)
    raw = np.asarray(nib.load(str(record.image)).dataobj)
    rendered, expected = expected_healthy(spec)
    seq = record.sequence
    if raw.shape != vol.image.shape:
        raise SystemExit(f"{record.image}: stored at {raw.shape}, scored at "
                         f"{vol.image.shape}: only data on the scoring grid are supported")
    if not np.array_equal(rendered.images[seq], raw):
        raise SystemExit(f"{record.image}: the generator does not re-render this file "
                         "(another generator version, seed or anatomy root?)")
    mask = vol.mask
    lo, hi = np.percentile(raw[mask].astype(np.float64), (1, 99))

    def norm(a):  # the loader's RescaleIntensity(percentiles=(1, 99)), clip and mask
        return (np.clip((a - lo) / (hi - lo), 0.0, 1.0) * mask).astype(np.float32)

    gap = float(np.abs(norm(raw) - vol.image).max())
    if gap > NORM_TOLERANCE:
        raise SystemExit(f"{record.image}: normalisation differs from the loader's by {gap:g}")
    return {"image": vol.image, "twin": norm(rendered.healthy[seq]),
            "ideal": norm(expected[seq]), "mask": mask, "seg": vol.seg}


def degraded(ideal: np.ndarray, mask: np.ndarray, blur: float) -> np.ndarray:
    """The ideal reconstruction blurred in-plane (sigma ``blur`` voxels), inside the brain."""
    from scipy import ndimage

    out = ndimage.gaussian_filter(ideal, (blur, blur, 0)) if blur > 0 else ideal
    return (out * mask).astype(np.float32)


def cohort_rows(vols: list[dict], blurs, copies) -> list[dict]:
    """Pooled AUPRC and l1-ratio (lesioned cohort) or SSIM and l1 (healthy) per knob."""
    from benchmark import metrics
    from benchmark.experiments.common import l1_sums, pooled_l1
    from benchmark.postprocess import PostProcess

    post, rows = PostProcess(), []
    healthy = vols[0]["seg"] is None
    for blur in blurs:
        recs = [degraded(v["ideal"], v["mask"], blur) for v in vols]
        if healthy:
            rows.append({"blur": blur, "copy": np.nan,
                         "ssim": float(np.mean([metrics.ssim(v["image"], r, v["mask"])
                                                for v, r in zip(vols, recs)])),
                         "l1": float(np.mean([metrics.l1_error(v["image"], r, v["mask"])
                                              for v, r in zip(vols, recs)]))})
            continue
        for copy in copies:
            scores, labels, sums = [], [], np.zeros(4)
            for v, r in zip(vols, recs):
                err = np.abs(v["image"] - (r + copy * (v["image"] - v["twin"])))
                brain, seg = v["mask"], v["seg"]
                scores.append(post.apply(err, brain)[brain])
                labels.append(seg[brain])
                sums += l1_sums(err, seg, brain)
            rows.append({"blur": blur, "copy": copy, "auprc": metrics.auprc(scores, labels),
                         "l1_ratio": pooled_l1(sums)["l1_ratio"],
                         "prevalence": float(np.mean(np.concatenate(labels)))})
    return rows


def ceiling(root: Path, specs: dict, sequences, blurs, copies, limit=None,
            echo=print) -> pd.DataFrame:
    from benchmark.data import layout

    frames = []
    for seq in sequences:
        sets = {layout.HEALTHY_COHORT: layout.healthy_splits(root, seq, 0)["test"]}
        sets.update({c: layout.unhealthy_split(root, c, "test")
                     for c in layout.unhealthy_cohorts(root, seq)})
        for dataset, records in sets.items():
            records = records[:limit] if limit else records
            if not records:
                continue
            missing = [r.name for r in records if r.name not in specs]
            if missing:
                raise SystemExit(f"{dataset}: volumes {missing[:3]} are not in the "
                                 "generator's plan of this data root")
            vols = [twin_volumes(r, specs[r.name]) for r in records]
            rows = cohort_rows(vols, blurs, copies)
            frames.append(pd.DataFrame(rows).assign(sequence=seq, dataset=dataset,
                                                    n_volumes=len(vols)))
            echo(f"{seq} {dataset}: {len(vols)} volumes")
    if not frames:
        raise SystemExit(f"{root}: no test volumes of {', '.join(sequences)} to score")
    cols = ["sequence", "dataset", "blur", "copy", "auprc", "l1_ratio", "prevalence",
            "ssim", "l1", "n_volumes"]
    out = pd.concat(frames, ignore_index=True)
    return out.reindex(columns=cols)


def method_points(runs: list[Path], fold: int) -> pd.DataFrame:
    """Per method, sequence and cohort of the runs: pooled AUPRC, l1-ratio and the healthy
    IXI SSIM of the same sequence (score-only methods have no reconstruction: NaN)."""
    from benchmark.data.layout import HEALTHY_COHORT

    frames = []
    for run in runs:
        path = run / "per_dataset.csv"
        if not path.is_file():
            raise SystemExit(f"--runs: {path} not found")
        frames.append(pd.read_csv(path))
    if not frames:
        return pd.DataFrame()
    d = pd.concat(frames)
    d = d[(d["fold"] == fold) & (d["threshold_source"] == "none")]
    wide = d.pivot_table(index=["method", "sequence", "dataset"], columns="metric",
                         values="value").reset_index()
    ssim = wide[wide["dataset"] == HEALTHY_COHORT][["method", "sequence", "ssim_mean"]]
    wide = wide[wide["dataset"] != HEALTHY_COHORT].drop(columns=["ssim_mean"], errors="ignore")
    wide = wide.merge(ssim, on=["method", "sequence"], how="left")
    keep = ["method", "sequence", "dataset", "auprc_pooled", "l1_ratio_pooled", "ssim_mean"]
    out = wide.reindex(columns=keep).rename(columns={
        "auprc_pooled": "auprc", "l1_ratio_pooled": "l1_ratio", "ssim_mean": "ssim"})
    return out.merge(paper_values(), on=["method", "sequence", "dataset"], how="left")


def paper_values() -> pd.DataFrame:
    """The paper's AUPRC (Table 2) and l1-ratio (Table 1) per method and data set, as
    fractions; for the diffusion models the ensemble row (ENS, as the board runs them)."""
    from benchmark.references import TABLE1, TABLE2, read_reference

    frames = []
    for path, metric, scale in ((TABLE2, "auprc", 100.0), (TABLE1, "l1_ratio", 1.0)):
        rows = read_reference(path).rows
        rows = rows[rows["metric"] == metric].copy()
        rows["ens"] = rows["model"].str.contains("ENS")
        rows = rows.sort_values("ens", ascending=False, kind="stable")
        rows = rows.drop_duplicates(["method", "dataset", "sequence"])
        frames.append(rows.set_index(["method", "sequence", "dataset"])["mean"]
                      .div(scale).rename(f"paper_{metric}"))
    return pd.concat(frames, axis=1).reset_index()


def l1_agreement(points: pd.DataFrame) -> pd.DataFrame:
    """Per data set, over the methods with a reconstruction and a published l1-ratio: the
    Spearman correlation of the runs' l1-ratio with the paper's (do the same methods heal
    the lesions?), and of AUPRC with l1-ratio, on the runs and in the paper (does healing
    decide the ranking?)."""
    rows = []
    for (seq, dataset), g in points.dropna(subset=["l1_ratio", "paper_l1_ratio"]).groupby(
            ["sequence", "dataset"], sort=True):
        rows.append({
            "sequence": seq, "dataset": dataset, "n_methods": len(g),
            "l1_ratio_vs_paper": g["l1_ratio"].corr(g["paper_l1_ratio"], method="spearman"),
            "auprc_vs_l1_ratio": g["auprc"].corr(g["l1_ratio"], method="spearman"),
            "paper_auprc_vs_l1_ratio": g["paper_auprc"].corr(g["paper_l1_ratio"],
                                                             method="spearman")})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, points: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    from benchmark.experiments.common import save_figure

    lesioned = table[table["copy"].notna()]
    panels = list(lesioned.groupby(["sequence", "dataset"], sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.9), squeeze=False)
    legends: set = set()
    for ax, ((seq, dataset), rows) in zip(axes[0], panels):
        healthy = table[(table["sequence"] == seq) & table["copy"].isna()].set_index("blur")
        for i, (blur, line) in enumerate(rows.groupby("blur")):
            ssim = healthy["ssim"].get(blur, np.nan)
            ax.plot(line["l1_ratio"], 100 * line["auprc"], "o-", color=f"C{i}", ms=3,
                    label=f"ideal, blur {blur:g} (SSIM {ssim:.2f})")
        mine = pd.DataFrame() if points.empty else points[
            (points["sequence"] == seq) & (points["dataset"] == dataset)].dropna(subset=["l1_ratio"])
        for _, p in mine.iterrows():
            ax.plot(p["l1_ratio"], 100 * p["auprc"], "k^", ms=4)
            ax.annotate(f"{p['method']} ({p['ssim']:.2f})", (p["l1_ratio"], 100 * p["auprc"]),
                        fontsize=5, xytext=(2, 2), textcoords="offset points")
        ax.axhline(100 * rows["prevalence"].iloc[0], color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="x", which="minor", labelsize=6)
        ax.set(title=f"{dataset} ({seq})", xlabel="l1-ratio (lesion / healthy brain)",
               ylabel="pooled AUPRC %")
        if seq not in legends:  # the SSIMs are the sequence's: one legend per sequence
            legends.add(seq)
            ax.legend(fontsize=6)
    fig.suptitle("ideal reconstruction (healthy twin's mean) degraded by blur and lesion "
                 "copying; triangles: trained models (their healthy SSIM)", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    from benchmark.data import synth
    from benchmark.experiments.common import save_table

    blurs = _floats(args.blur, "--blur", 0.0, 10.0)
    copies = _floats(args.copy, "--copy", 0.0, 1.0)
    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()]
    bad = [s for s in sequences if s not in ("t1", "t2")]
    if bad or not sequences:
        raise SystemExit(f"--sequences: unknown {bad or args.sequences!r}; allowed: t1, t2")
    root = args.data_root
    if root is None:
        root = synth.ensure_synthetic("quick", version=synth.check_version(args.version))
    specs = specs_of(root, args.anatomy_from)
    table = ceiling(root, specs, sequences, blurs, copies, args.limit)
    points = method_points(args.runs, args.fold)
    args.out.mkdir(parents=True, exist_ok=True)
    save_table(table, args.out / "ceiling.csv")
    if not points.empty:
        save_table(points, args.out / "methods.csv")
        agreement = l1_agreement(points)
        save_table(agreement, args.out / "l1_agreement.csv")
        print(agreement.round(2).to_string(index=False))
    plot(table, points, args.out / "ceiling.png")
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(table.round(4).to_string(index=False))
    print(f"wrote {args.out / 'ceiling.csv'} and {args.out / 'ceiling.png'}")
    return 0
