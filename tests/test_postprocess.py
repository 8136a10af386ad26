"""benchmark.postprocess: erosion, exact fast median, connected components, the tag."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from benchmark.postprocess import (
    PostProcess,
    erode_brain_mask,
    median_filter,
    remove_small_components,
)


def _square_mask(depth=3):
    m = np.zeros((11, 11, depth), bool)
    m[2:9, 2:9, :] = True  # 7 x 7 in every slice
    return m


def test_erosion_2d_per_slice():
    out = erode_brain_mask(_square_mask(), iterations=3, mode="2d")
    expected = np.zeros_like(out)
    expected[5, 5, :] = True  # a cross erodes a 7x7 square to 5x5, 3x3, 1x1
    np.testing.assert_array_equal(out, expected)


def test_erosion_3d_also_erodes_along_the_axial_axis():
    # only 3 slices thick: the first 3D iteration leaves only the middle slice
    out1 = erode_brain_mask(_square_mask(), iterations=1, mode="3d")
    assert out1[..., [0, 2]].sum() == 0 and out1[..., 1].sum() == 25
    assert erode_brain_mask(_square_mask(), iterations=3, mode="3d").sum() == 0


def test_erosion_zero_iterations_and_border():
    m = np.ones((5, 5, 2), bool)  # touches the image border: the border erodes it
    assert erode_brain_mask(m, 0).sum() == 50
    assert erode_brain_mask(m, 1)[..., 0].sum() == 9
    with pytest.raises(ValueError, match="erode_mode"):
        erode_brain_mask(m, 1, mode="2.5d")


@pytest.mark.parametrize("shape,size", [((13, 11, 9), 5), ((9, 8, 7), 3), ((6, 5, 3), 5),
                                        ((20, 18, 12), 5)])
def test_fast_median_equals_scipy(shape, size):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape).astype(np.float32)
    x[rng.random(shape) < 0.5] = 0.0  # many zeros like a masked map
    x[rng.random(shape) < 0.05] *= -1
    x = np.round(x, 1)  # ties
    np.testing.assert_array_equal(median_filter(x, size, "fast"),
                                  ndi.median_filter(x, size=size, mode="reflect"))


def test_fast_median_on_a_masked_map_shape():
    rng = np.random.default_rng(0)
    g = np.mgrid[:24, :24, :12]
    brain = ((g[0] - 12) / 10) ** 2 + ((g[1] - 12) / 9) ** 2 + ((g[2] - 6) / 7) ** 2 < 1
    x = rng.random((24, 24, 12)) * brain
    np.testing.assert_array_equal(median_filter(x), median_filter(x, backend="scipy"))


def test_median_bad_input():
    with pytest.raises(ValueError, match="odd"):
        median_filter(np.zeros((5, 5, 5)), 4)
    with pytest.raises(ValueError, match="backend"):
        median_filter(np.zeros((5, 5, 5)), 5, backend="gpu")


def _blobs():
    b = np.zeros((20, 20, 20), bool)
    b[1, 1, 1:7] = True             # 6 voxels
    b[5, 5, 1:8] = True             # 7 voxels
    b[10, 10, 1:9] = True           # 8 voxels
    b[15, 15, 15] = b[16, 16, 16] = True  # corner-touching pair: 1 component only at 26
    return b


def test_connected_components_paper_rule_removes_fewer_than_7():
    out = remove_small_components(_blobs(), min_size=7, connectivity=26)
    assert out[5, 5, 1:8].all() and out[10, 10, 1:9].all()
    assert not out[1, 1].any() and not out[15, 15, 15]
    assert out.sum() == 15


def test_connected_components_reference_rule_and_connectivity():
    out = remove_small_components(_blobs(), min_size=8)  # the authors' "<= 7"
    assert out.sum() == 8
    # a pair touching at a corner is one component of 2 at 26, two of 1 at 6
    b = _blobs()
    assert remove_small_components(b, 2, 26)[15, 15, 15]
    assert not remove_small_components(b, 2, 6)[15, 15, 15]
    np.testing.assert_array_equal(remove_small_components(b, 0), b)


def test_postprocess_tag_roundtrip():
    assert str(PostProcess()) == "erode3_2d+median5+cc7_26"
    cases = [PostProcess(), PostProcess(order="median_first"), PostProcess(erode_mode="3d"),
             PostProcess(brain_mask=False, median_size=0, cc_min_size=0),
             PostProcess(erode_iterations=0, cc_min_size=8, cc_connectivity=6)]
    for pp in cases:
        assert PostProcess.from_string(str(pp)) == pp
    assert str(cases[1]) == "median5+erode3_2d+cc7_26"
    assert str(cases[3]) == "none"
    with pytest.raises(ValueError, match="allowed"):
        PostProcess.from_string("erode3+median5")
    with pytest.raises(ValueError, match="median_size"):
        PostProcess(median_size=4)


def test_postprocess_apply_and_binarize():
    brain = _square_mask(depth=5)
    amap = np.ones(brain.shape, np.float32)
    pp = PostProcess(median_size=0, cc_min_size=0)
    out = pp.apply(amap, brain)
    np.testing.assert_array_equal(out > 0, erode_brain_mask(brain, 3))  # 1 voxel per slice
    with pytest.raises(ValueError, match="brain_mask"):
        pp.apply(amap)
    # the 5-voxel column of ones survives min_size 5 and not min_size 6
    assert PostProcess(cc_min_size=5).binarize(out, 0.5).sum() == 5
    assert PostProcess(cc_min_size=6).binarize(out, 0.5).sum() == 0
    assert PostProcess(cc_min_size=0).binarize(out, 1.0).sum() == 5  # >= threshold
