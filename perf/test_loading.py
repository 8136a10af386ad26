"""Speed of loading one volume from disk (benchmark.data.loader): NIfTI read, the
resample path for 1 mm files (CropOrPad 192x192x100 + Resample(2), B-spline), intensity
rescaling inside the mask. The loader caches volumes per process, so the benchmark calls
the uncached function underneath."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from benchmark.data.layout import VolumeRecord
from benchmark.data.loader import TARGET_SHAPE, load_volume
from perf.workload import make_volume

load_uncached = load_volume.__wrapped__


def write_case(folder, spacing: int):
    """image (float32), mask and seg (uint8) NIfTI files of one brain at `spacing` mm:
    the 96x96x50 workload brain, upsampled 2x for 1 mm files."""
    _, lesion, brain = make_volume(np.random.default_rng(1))
    rng = np.random.default_rng(2)
    image = (400 + 200 * lesion + rng.normal(0, 20, brain.shape)) * brain
    arrays = {"image": image.astype(np.float32), "mask": brain.astype(np.uint8),
              "seg": lesion.astype(np.uint8)}
    paths = {}
    for key, array in arrays.items():
        if spacing == 1:
            array = array.repeat(2, 0).repeat(2, 1).repeat(2, 2)
        paths[key] = folder / f"case_{spacing}mm_{key}.nii.gz"
        nib.save(nib.Nifti1Image(array, np.diag([spacing] * 3 + [1.0])), str(paths[key]))
    record = VolumeRecord(f"case_{spacing}mm", "Brats21", "t2", paths["image"], paths["mask"],
                          paths["seg"])
    return record, brain, lesion


@pytest.mark.parametrize("spacing", [2, 1], ids=["2mm-96x96x50", "1mm-192x192x100"])
def test_load_volume(benchmark, tmp_path, spacing):
    record, brain, lesion = write_case(tmp_path, spacing)
    benchmark.group = "load one volume (image, mask, seg)"
    volume = benchmark.pedantic(load_uncached, args=(record, TARGET_SHAPE), rounds=5,
                                warmup_rounds=1)
    assert volume.image.shape == volume.mask.shape == TARGET_SHAPE
    assert 0.0 <= volume.image.min() and volume.image.max() <= 1.0
    if spacing == 2:  # no resampling: the labels come back voxel for voxel
        assert np.array_equal(volume.mask, brain) and np.array_equal(volume.seg, lesion)
    else:  # nearest-neighbour downsampling of a 2x upsampled label: the same voxels
        assert np.array_equal(volume.mask, brain)
