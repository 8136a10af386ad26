"""Where each method's anomaly scores go on the real MS patient, against healthy IXI.

    python datasets/real-mini/diagnose.py /tmp/real-mini/dlmuse /tmp/real-mini/runs/real-mini-dlmuse

For each method of the run: the mean score in the brain of the healthy IXI test volumes and
its 95th percentile (p95), then on the patient the mean score and the share above that p95
in normal-appearing brain and in the lesion. A method that sees the lesion puts more of the
lesion above p95 than of the normal brain; the first lines say where the lesion sits in the
patient's intensity distribution (T1: MS lesions are darker than white matter).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from benchmark.rundir import RunDir


def _load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def main(data: Path, run: Path) -> None:
    test = data / "Data" / "Test" / "MSLUB"
    mask = _load(next((test / "mask").glob("*.nii.gz"))) > 0
    seg = _load(next((test / "seg").glob("*.nii.gz"))) > 0
    image = _load(next((test / "t1").glob("*.nii.gz")))
    normal = mask & ~seg
    rank = (np.sort(image[normal]).searchsorted(image[seg]) / normal.sum()).mean()
    print(f"patient: {seg.sum()} lesion voxels; lesion intensity mean {image[seg].mean():.1f} "
          f"vs normal brain {image[normal].mean():.1f} (percentile {100 * rank:.0f} of "
          f"normal brain, p90 {np.percentile(image[normal], 90):.1f})")
    print("| method | IXI brain mean | IXI p95 | patient normal mean | normal > p95 % "
          "| lesion mean | lesion > p95 % |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for part in RunDir(run).find_parts(sequence="t1", fold=0):
        if not part.has_maps("IXI", "test"):
            continue
        ixi = np.load(part.maps_path("IXI", "test"), allow_pickle=True)
        healthy = np.concatenate([
            amap[_load(data / "Data" / "Train" / "ixi" / "mask" / f"{name}_mask.nii.gz") > 0]
            for name, amap in zip(ixi["names"], ixi["anomaly"])])
        p95 = np.percentile(healthy, 95)
        amap = np.load(part.maps_path("MSLUB", "test"))["anomaly"][0]
        print(f"| {part.method} | {healthy.mean():.3f} | {p95:.3f} | "
              f"{amap[normal].mean():.3f} | {100 * (amap[normal] > p95).mean():.1f} | "
              f"{amap[seg].mean():.3f} | {100 * (amap[seg] > p95).mean():.1f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
