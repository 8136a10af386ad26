"""benchmark.metrics: hand-computed cases, sklearn equality with ties, brute-force best Dice."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmark import metrics as M


# ---------------------------------------------------------------- hand-computed cases
def test_sklearn_doc_example():
    s, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])
    assert M.auprc(s, y) == pytest.approx(0.8333333333333333, abs=1e-15)
    assert M.auroc(s, y) == pytest.approx(0.75, abs=1e-15)
    # thresholds 0.8 -> 2/(1+2); 0.35 -> 2*2/(3+2) = 0.8
    assert M.best_dice(s, y) == pytest.approx((0.8, 0.35))


def test_ties_count_together():
    # scores 1,1,0,0 labels 1,0,1,0: each threshold takes a whole tie group.
    s, y = np.array([1.0, 1.0, 0.0, 0.0]), np.array([1, 0, 1, 0])
    assert M.auroc(s, y) == 0.5  # pairs: tie 1/2, win 1, loss 0, tie 1/2 -> 2/4
    assert M.auprc(s, y) == 0.5  # 0.5 * 0.5 + 0.5 * 0.5
    assert M.best_dice(s, y) == pytest.approx((2 / 3, 0.0))  # t=1: 0.5, t=0: 4/6


def test_all_equal_scores():
    s, y = np.full(10, 0.3), np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert M.auroc(s, y) == 0.5
    assert M.auprc(s, y) == pytest.approx(0.3)  # the prevalence
    assert M.best_dice(s, y) == pytest.approx((2 * 3 / 13, 0.3))


def test_best_dice_prefers_highest_threshold_on_equal_dice():
    # t=0.9 gives 2*1/(1+2)... t=0.5: 2*2/(4+2): equal Dice 2/3 -> the higher threshold
    s = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    y = np.array([1, 1, 0, 0, 0])
    d, t = M.best_dice(s, y)
    assert d == pytest.approx(2 / 3) and t == 0.9


def test_empty_ground_truth_is_nan():
    s, y = np.array([0.2, 0.5, 0.9]), np.zeros(3, dtype=bool)
    assert math.isnan(M.auprc(s, y)) and math.isnan(M.auroc(s, y))
    d, t = M.best_dice(s, y)
    assert math.isnan(d) and math.isnan(t)
    assert math.isnan(M.dice(np.zeros(3, bool), y))  # both empty: undefined
    assert M.dice(np.array([1, 0, 0], bool), y) == 0.0  # a false alarm only
    assert math.isnan(M.recall(np.array([1, 0, 0], bool), y))
    assert M.precision(np.array([1, 0, 0], bool), y) == 0.0


def test_all_anomalous_volume():
    s, y = np.array([0.2, 0.5, 0.9]), np.ones(3, dtype=bool)
    assert math.isnan(M.auroc(s, y))  # no negatives: undefined (sklearn raises)
    assert M.auprc(s, y) == 1.0
    assert M.best_dice(s, y) == (1.0, 0.2)


def test_empty_prediction():
    y = np.array([0, 1, 1, 0])
    pred = np.zeros(4, bool)
    assert M.dice(pred, y) == 0.0
    assert math.isnan(M.precision(pred, y))
    assert M.recall(pred, y) == 0.0
    assert M.confusion(pred, y) == {"tp": 0, "fp": 0, "fn": 2, "tn": 2}


def test_confusion_counts_and_sklearn_order():
    """The worked case of docs/protocol.md, "Comparing logs with the authors' code"."""
    from sklearn.metrics import confusion_matrix

    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)  # 3 lesion voxels
    pred = np.array([1, 1, 0, 1, 1, 0, 0, 0, 0, 0], bool)  # finds 2, flags 2 healthy
    assert M.confusion(pred, y) == {"tp": 2, "fp": 2, "fn": 1, "tn": 5}
    # scikit-learn: rows = truth, columns = prediction -> ravel() is (tn, fp, fn, tp)
    assert confusion_matrix(y, pred, labels=[0, 1]).ravel().tolist() == [5, 2, 1, 2]
    # the authors' call, (prediction, annotation), unpacked as TP, FP, TN, FN
    tp, fp, tn, fn = confusion_matrix(pred, y, labels=[0, 1]).ravel().tolist()
    assert (tp, fp, tn, fn) == (5, 1, 2, 2)  # = our (tn, fn, fp, tp)


def test_dice_precision_recall_hand():
    pred = np.array([1, 1, 1, 0, 0, 0], bool)
    y = np.array([1, 1, 0, 1, 0, 0])
    assert M.dice(pred, y) == pytest.approx(2 * 2 / 6)
    assert M.precision(pred, y) == pytest.approx(2 / 3)
    assert M.recall(pred, y) == pytest.approx(2 / 3)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="same shape"):
        M.auprc(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="binary"):
        M.auroc(np.zeros(3), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="NaN"):
        M.best_dice(np.array([0.0, np.nan]), np.array([0, 1]))


# ---------------------------------------------------------------- against references
@pytest.mark.parametrize("seed", range(25))
def test_equal_to_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 3000))
    levels = int(rng.integers(1, 50))  # few levels -> many ties
    s = rng.integers(0, levels, n).astype(np.float32) / levels
    if seed % 2:
        s = rng.random(n).astype(np.float32)
    y = rng.random(n) < rng.uniform(0.01, 0.5)
    y[0], y[1] = True, False
    assert abs(M.auprc(s, y) - average_precision_score(y, s)) < 1e-9
    assert abs(M.auroc(s, y) - roc_auc_score(y, s)) < 1e-9


def _brute_best_dice(s, y):
    best = (-1.0, None)
    for t in np.unique(s):
        p = s >= t
        d = 2 * np.count_nonzero(p & y) / (np.count_nonzero(p) + np.count_nonzero(y))
        if d >= best[0]:  # ascending t: ties go to the highest threshold
            best = (d, t)
    return best


@pytest.mark.parametrize("seed", range(25))
def test_best_dice_is_exact_over_all_thresholds(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(2, 200))
    s = np.round(rng.random(n), int(rng.integers(1, 4)))  # rounding makes ties
    y = rng.random(n) < rng.uniform(0.05, 0.6)
    y[0] = True
    d, t = M.best_dice(s, y)
    bd, bt = _brute_best_dice(s, y)
    assert d == pytest.approx(bd, abs=1e-12) and t == bt
    assert M.dice(M.binarize(s, t), y) == pytest.approx(d, abs=1e-12)


def test_ranking_metrics_matches_individual_functions():
    rng = np.random.default_rng(7)
    s, y = rng.random((6, 5, 4)), rng.random((6, 5, 4)) < 0.2
    r = M.ranking_metrics(s, y)
    assert r["auprc"] == M.auprc(s, y) and r["auroc"] == M.auroc(s, y)
    assert (r["best_dice"], r["best_threshold"]) == M.best_dice(s, y)


# ---------------------------------------------------------------- thresholds from healthy data
def test_fpr_threshold_hand():
    h = np.arange(100, dtype=np.float64)
    t = M.fpr_threshold(h, 0.05)
    assert t == 95.0 and np.mean(h >= t) == 0.05


def test_fpr_threshold_with_ties_never_exceeds_the_rate():
    h = np.r_[np.zeros(90), np.ones(10)].astype(np.float32)
    assert M.fpr_threshold(h, 0.10) == 1.0  # exactly 10 % flagged
    t = M.fpr_threshold(h, 0.05)  # flagging the tie group would be 10 % > 5 %
    assert t > 1.0 and np.mean(h >= t) == 0.0
    assert np.float32(t) == np.nextafter(np.float32(1), np.float32(2))


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.1])
def test_fpr_threshold_random(fpr):
    h = np.round(np.random.default_rng(3).random(5000), 2)
    t = M.fpr_threshold(h, fpr)
    assert np.mean(h >= t) <= fpr
    below = h[h < t]
    if below.size:  # any lower healthy score would exceed the rate
        assert np.mean(h >= below.max()) > fpr


# ---------------------------------------------------------------- reconstruction errors
def test_l1_errors_hand():
    x = np.zeros((2, 2, 1))
    rec = np.array([0.1, 0.1, 0.4, 0.0]).reshape(2, 2, 1)
    y = np.array([0, 0, 1, 0]).reshape(2, 2, 1)
    brain = np.array([1, 1, 1, 0]).reshape(2, 2, 1)
    r = M.l1_errors(x, rec, y, brain)
    assert r["l1_healthy"] == pytest.approx(0.1)
    assert r["l1_anomalous"] == pytest.approx(0.4)
    assert r["l1_ratio"] == pytest.approx(4.0)
    assert math.isnan(M.l1_errors(x, rec, np.zeros_like(y), brain)["l1_ratio"])
    assert M.l1_error(x, rec) == pytest.approx(0.15)
    assert M.l1_error(x, rec, brain) == pytest.approx(0.2)


def test_psnr_and_ssim_known_values():
    x = np.zeros((16, 16, 3), dtype=np.float32)
    assert M.psnr(x, x + 0.1) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)
    rng = np.random.default_rng(0)
    v = rng.random((16, 16, 3)).astype(np.float32)
    assert M.ssim(v, v) == pytest.approx(1.0, abs=1e-6)
    assert M.ssim(v, np.clip(v + rng.normal(0, 0.3, v.shape), 0, 1)) < 0.9


def test_lpips_is_skipped_without_package_or_weights():
    import importlib.util
    if importlib.util.find_spec("lpips") is not None:
        pytest.skip("lpips installed here; the skip path is not exercised")
    assert M.lpips_distance(np.zeros((8, 8, 1)), np.zeros((8, 8, 1))) is None


# ---------------------------------------------------------------- histograms and divergences
def test_histogram_is_a_density_over_500_bins():
    rng = np.random.default_rng(0)
    x = rng.random((20, 20, 5))
    mask = np.zeros_like(x, bool)
    mask[5:15] = True
    p, edges = M.intensity_histogram(x, mask)
    assert p.shape == (500,) and edges.shape == (501,)
    assert np.sum(p * np.diff(edges)) == pytest.approx(1.0)
    p2, _ = M.intensity_histogram(x * 0 + 2.0)  # out-of-range values land in the top bin
    assert p2[-1] * (edges[1] - edges[0]) == pytest.approx(1.0)


def test_paper_quantity_is_an_entropy_difference_not_a_kl():
    # two disjoint uniform histograms of equal width: the paper's value is 0, KL is large
    x = np.repeat((np.arange(50, 150) + 0.5) / 500, 10)  # bin centres, 10 counts per bin
    p, edges = M.intensity_histogram(x)
    q, _ = M.intensity_histogram(x + 0.5)  # the same shape 250 bins higher
    assert M.paper_entropy_difference(p, q) == pytest.approx(0.0, abs=1e-9)
    # Jeffreys smoothing: 0.5 / 1000 per bin, 500 bins -> masses 0.0084 on the 100 own bins,
    # 0.0004 on the other's 100 bins (ratio 21), equal elsewhere
    expected = 100 * 0.0084 * np.log(21) + 100 * 0.0004 * np.log(1 / 21)
    assert M.kl_divergence(p, q, edges, n_counts=1000) == pytest.approx(expected)
    assert M.kl_divergence(p, p, edges, n_counts=1000) == pytest.approx(0.0, abs=1e-12)


def test_kl_hand_two_bins():
    edges = np.array([0.0, 0.5, 1.0])
    p = np.array([1.0, 1.0])  # densities -> masses 0.5, 0.5
    q = np.array([1.5, 0.5])  # masses 0.75, 0.25
    expected = 0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(0.5 / 0.25)
    assert M.kl_divergence(p, q, edges, pseudo_count=0.0, n_counts=1) == pytest.approx(expected)


def test_pooled_lists_equal_concatenation_and_sklearn():
    rng = np.random.default_rng(11)
    s_list = [np.round(rng.random((5, 4, 3)), 2).astype(np.float32) for _ in range(4)]
    y_list = [rng.random((5, 4, 3)) < 0.2 for _ in range(4)]
    y_list[2][:] = False  # a volume without lesion still counts in the pool
    s_all = np.concatenate([s.ravel() for s in s_list])
    y_all = np.concatenate([y.ravel() for y in y_list])
    assert M.ranking_metrics(s_list, y_list) == M.ranking_metrics(s_all, y_all)
    assert abs(M.auprc(s_list, y_list) - average_precision_score(y_all, s_all)) < 1e-9
    assert M.best_dice(s_list, y_list) == _brute_best_dice(s_all, y_all)
    with pytest.raises(ValueError, match="equally long"):
        M.auprc(s_list, y_list[:2])


def test_lowest_positive_score_ties_with_negatives():
    # negatives tied with (and below) the lowest positive: only counted, never sorted
    s = np.array([0.0, 0.0, 0.0, 0.2, 0.5, 0.5, 0.9])
    y = np.array([0, 1, 0, 0, 1, 0, 1])
    assert abs(M.auroc(s, y) - roc_auc_score(y, s)) < 1e-12
    assert abs(M.auprc(s, y) - average_precision_score(y, s)) < 1e-12
    assert M.best_dice(s, y) == _brute_best_dice(s, y)


def test_dataset_ranking_metrics_shares_sorts_and_matches():
    rng = np.random.default_rng(5)
    s_list = [np.round(rng.random(int(rng.integers(5, 400))), 2) for _ in range(6)]
    y_list = [rng.random(s.size) < 0.15 for s in s_list]
    y_list[1][:] = False
    s_list[2][y_list[2]] = 0.0  # positives at the pool's lowest score, tied with negatives
    per_volume, pooled = M.dataset_ranking_metrics(s_list, y_list)
    for s, y, r in zip(s_list, y_list, per_volume):
        np.testing.assert_equal(r, M.ranking_metrics(s, y))  # NaN == NaN for volume 1
    s_all, y_all = np.concatenate(s_list), np.concatenate(y_list)
    assert abs(pooled["auprc"] - average_precision_score(y_all, s_all)) < 1e-9
    assert abs(pooled["auroc"] - roc_auc_score(y_all, s_all)) < 1e-9
    assert (pooled["best_dice"], pooled["best_threshold"]) == _brute_best_dice(s_all, y_all)


def test_lesion_detection_hand_computed():
    y = np.zeros((6, 6, 6), bool)
    y[0, 0, 0] = y[1, 1, 1] = True  # touch at a corner: one lesion (26), two (6)
    y[4:6, 4:6, 4:6] = True  # a 2x2x2 cube: one lesion under every connectivity
    pred = np.zeros_like(y)
    pred[1, 1, 1] = True
    pred[3, 3, 3] = True  # a false positive next to the cube does not detect it
    assert M.lesion_detection(pred, y) == M.LesionDetection(n_lesions=2, detected=1)
    six = M.lesion_detection(pred, y, connectivity=6)
    assert (six.n_lesions, six.detected) == (3, 1) and six.rate == pytest.approx(1 / 3)
    pred[5, 5, 5] = True  # one voxel of the cube: detected at min_overlap 1, not at 2
    assert M.lesion_detection(pred, y).detected == 2
    assert M.lesion_detection(pred, y, min_overlap=2).detected == 0
    pred[0, 0, 0] = True  # now both voxels of the corner lesion
    assert M.lesion_detection(pred, y, min_overlap=2).detected == 1
    # 2D: diagonal neighbours are one lesion under 8-connectivity, two under 4
    y2 = np.eye(3, dtype=bool)
    assert M.lesion_detection(y2, y2, connectivity=8).n_lesions == 1
    assert M.lesion_detection(y2, y2, connectivity=4).n_lesions == 3


def test_lesion_detection_edge_cases():
    empty = np.zeros((4, 4, 4), bool)
    none = M.lesion_detection(np.ones_like(empty), empty)
    assert (none.n_lesions, none.detected) == (0, 0) and np.isnan(none.rate)
    with pytest.raises(ValueError, match="same shape"):
        M.lesion_detection(empty, empty[:2])
    with pytest.raises(ValueError, match="connectivity 8"):
        M.lesion_detection(empty, empty, connectivity=8)
    with pytest.raises(ValueError, match="min_overlap"):
        M.lesion_detection(empty, empty, min_overlap=0)
