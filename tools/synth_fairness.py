"""How visible are the synthetic lesions, and how far does intensity alone get?

    python tools/synth_fairness.py [--size quick] [--max-subjects 15]

For the test subjects of each unhealthy cohort this renders the subject with and without
its lesion (same anatomy, bias field and noise) and prints, per cohort:
- lesion volume (median and range, in voxels of 2 mm and in ml);
- contrast: mean |lesioned - healthy| over the label, relative to the healthy value and
  in units of the noise sigma (CNR): what a model that knows the healthy anatomy sees;
- the best pooled Dice of a global intensity threshold, bright (hyper) and dark (hypo),
  on the image normalised like the loader (1st-99th percentile inside the mask): what
  thresholding alone gets (the benchmark's ``thresh`` method, with an oracle threshold).
The numbers from the full pipeline (``python -m benchmark run --methods thresh``) are in
docs/synthetic.md; this script needs no trained model and no data on disk.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmark.data.synth import SIZES, plan
from benchmark.data.synth.render import get_site
from benchmark.data.synth.subjects import UNHEALTHY, render_subject


def normalise(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Loader-like: 1st-99th percentile inside the mask -> [0, 1], clipped."""
    lo, hi = np.percentile(image[mask], (1, 99))
    return np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) * mask


def best_dice(values: np.ndarray, labels: np.ndarray, n: int = 100) -> tuple[float, float]:
    """Best Dice over n thresholds of a pooled map (values, labels: 1D over brain voxels)."""
    best = (0.0, 0.0)
    for t in np.linspace(values.min(), values.max(), n)[1:]:
        pred = values >= t
        dice = 2 * (pred & labels).sum() / max(pred.sum() + labels.sum(), 1)
        best = max(best, (float(dice), float(t)))
    return best


def cohort_report(name: str, specs) -> dict:
    volumes, rel, cnr, maps, labels = [], [], [], [], []
    for spec in specs:
        r = render_subject(spec)
        seq = spec.cohort.sequences[0]
        seg, mask = r.seg.astype(bool), r.mask.astype(bool)
        image, healthy = r.images[seq].astype(float), r.healthy[seq].astype(float)
        delta = np.abs(image - healthy)[seg]
        site = get_site(spec.site)
        sigma = site.noise * site.gain * max(site.contrast[seq])  # noise, scanner units
        volumes.append(seg.sum())
        rel.append(delta.mean() / healthy[seg].mean())
        cnr.append(delta.mean() / sigma)
        maps.append(normalise(image, mask)[mask])
        labels.append(seg[mask])
    values, truth = np.concatenate(maps), np.concatenate(labels)
    return {
        "cohort": name, "n": len(specs), "vox_median": int(np.median(volumes)),
        "vox_min": int(min(volumes)), "vox_max": int(max(volumes)),
        "ml_median": float(np.median(volumes)) * 8e-3,
        "rel_contrast": float(np.mean(rel)), "cnr": float(np.mean(cnr)),
        "dice_hyper": best_dice(values, truth)[0], "dice_hypo": best_dice(-values, truth)[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="quick", choices=tuple(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-subjects", type=int, default=15)
    args = parser.parse_args()
    specs = plan(args.size, args.seed)
    print(f"{'cohort':10s} {'n':>3s} {'voxels median [min, max]':>26s} {'ml':>6s} "
          f"{'rel.contrast':>12s} {'CNR':>6s} {'Dice hyper':>10s} {'Dice hypo':>9s}")
    for name in UNHEALTHY:
        n_val = SIZES[args.size].unhealthy[name][0]
        row = cohort_report(name, specs[name][n_val:][: args.max_subjects])
        span = f"{row['vox_median']} [{row['vox_min']}, {row['vox_max']}]"
        print(f"{name:10s} {row['n']:3d} {span:>26s} {row['ml_median']:6.1f} "
              f"{row['rel_contrast']:12.2f} {row['cnr']:6.1f} {row['dice_hyper']:10.3f} "
              f"{row['dice_hypo']:9.3f}")


if __name__ == "__main__":
    main()
