"""How generator version 2's MS lesion contrast was calibrated (docs/synthetic.md).

    python tools/calibrate_synthetic.py --water-share 0.12,0.24 --subjects 12

The real reference is one MSLUB patient (patient07 of ../shared/data/real-samples:
1.25 mL of lesion in 30 small components on the 2 mm grid). Contrast measured on small
lesions is lowered by partial volume, so the comparison is like for like: synthetic MS
subjects are rendered with v2's lesion model but with patient07's load (the volume and
number of lesions below), and their lesion statistics are measured exactly as the real
scan's (benchmark.fidelity.stats on the loader's intensity scale). The water-share range
whose median contrast-to-noise against white matter matches the real lesion's (3.76 on
T2) is the one written into benchmark/data/synth/lesions_v2.py. Only physical statistics
enter; nothing here trains or scores a method.
"""
from __future__ import annotations

import argparse
import copy

import numpy as np

KEYS = ("volume_ml", "n_components", "water_share", "intensity_percentile", "cnr_wm",
        "cnr_gm", "cv", "gradient_ratio")


def measure(water_share: tuple[float, float], n: int, volume_ml: float, lesions: int) -> dict:
    from benchmark.data.synth import lesions_v2
    from benchmark.data.synth.subjects import UNHEALTHY, render_subject
    from benchmark.fidelity.stats import lesion_statistics
    from benchmark.fidelity.volumes import normalise

    saved = copy.deepcopy(lesions_v2.PARAMETERS["ms"])
    p = lesions_v2.PARAMETERS["ms"]
    p["water_share"] = water_share
    p["volume_ml"] = {"median": volume_ml, "sigma": 0.2, "range": (0.5 * volume_ml, 2 * volume_ml)}
    p["visible_lesions"] = {"median": lesions, "sigma": 0.2, "range": (1, 3 * lesions)}
    p["tiny_lesions"] = (5, 15)
    rows = []
    try:
        cohort = UNHEALTHY["MSLUB"]
        for i in range(n):
            r = render_subject(cohort.subject(1000 + i, 0, "2"))
            image = normalise(r.images["t2"].astype(float), r.mask > 0)
            rows.append(lesion_statistics(image, r.mask > 0, r.seg > 0, 2.0, "t2"))
    finally:
        lesions_v2.PARAMETERS["ms"] = saved
    return {k: float(np.nanmedian([row.get(k, np.nan) for row in rows])) for k in KEYS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--water-share", default="0.12,0.24", help="range lo,hi to try")
    p.add_argument("--subjects", type=int, default=12)
    p.add_argument("--volume-ml", type=float, default=1.25, help="patient07's load")
    p.add_argument("--lesions", type=int, default=6,
                   help="visible lesions (patient07: 6 of more than 7 voxels at 2 mm)")
    args = p.parse_args()
    lo, hi = (float(v) for v in args.water_share.split(","))
    stats = measure((lo, hi), args.subjects, args.volume_ml, args.lesions)
    print(f"water_share U({lo}, {hi}), {args.subjects} subjects at {args.volume_ml} mL:")
    for k, v in stats.items():
        print(f"  {k:22s} {v:8.3f}")


if __name__ == "__main__":
    main()
