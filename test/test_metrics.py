"""Metric conventions on hand-computed cases (see siam_tracker_ros/evaluation/metrics.py)."""
import math

import numpy as np
import pytest

from siam_tracker_ros.evaluation import metrics

GT = np.array([0.0, 0.0, 10.0, 10.0])


def repeat(box, n):
    return np.tile(np.asarray(box, dtype=np.float64), (n, 1))


def test_thresholds_are_the_toolkits():
    assert len(metrics.IOU_THRESHOLDS) == 21
    np.testing.assert_array_equal(metrics.IOU_THRESHOLDS, np.arange(0, 1.05, 0.05))   # pysot
    np.testing.assert_array_equal(metrics.PIXEL_THRESHOLDS, np.arange(51))
    assert metrics.PIXEL_THRESHOLDS[metrics.PRECISION_INDEX] == 20
    assert metrics.NORM_THRESHOLDS[metrics.PRECISION_INDEX] == pytest.approx(0.20, abs=0)


def test_disjoint_boxes_have_zero_iou_and_fail_even_at_threshold_zero():
    pred = repeat([20, 20, 10, 10], 5)
    gt = repeat(GT, 5)
    np.testing.assert_array_equal(metrics.frame_ious(pred, gt), 0.0)
    curve = metrics.success_curve(pred, gt)
    np.testing.assert_array_equal(curve, 0.0)           # IoU > 0 is required even at t = 0
    assert metrics.auc(curve) == 0.0                    # always-wrong tracker
    # touching edges: still disjoint
    assert metrics.frame_ious([[10, 0, 10, 10]], [GT])[0] == 0.0


def test_perfect_tracker_auc_is_20_of_21():
    gt = repeat(GT, 7)
    curve = metrics.success_curve(gt, gt)
    np.testing.assert_array_equal(curve[:20], 1.0)
    assert curve[20] == 0.0                             # IoU 1 is not > 1
    assert metrics.auc(curve) == pytest.approx(20 / 21, abs=1e-12)


@pytest.mark.parametrize("pred,iou,above", [
    ([0, 0, 10, 5], 0.5, 10),     # inter 50 / union 100: succeeds for t = 0 .. 0.45
    ([0, 0, 5, 5], 0.25, 5),      # inter 25 / union 100: t = 0 .. 0.20
    ([0, 0, 10, 7.5], 0.75, 15),  # t = 0 .. 0.70
])
def test_iou_exactly_at_a_threshold_is_not_a_success(pred, iou, above):
    assert metrics.frame_ious([pred], [GT])[0] == iou
    curve = metrics.success_curve([pred], [GT])
    assert curve.sum() == above
    assert metrics.auc(curve) == pytest.approx(above / 21, abs=1e-12)


def test_precision_counts_errors_up_to_and_including_the_threshold():
    gt = repeat(GT, 3)
    pred = np.array([[20, 0, 10, 10],      # centre error exactly 20 px
                     [21, 0, 10, 10],      # 21 px
                     [3, 4, 10, 10]])      # 5 px (3-4-5)
    np.testing.assert_allclose(metrics.center_errors(pred, gt), [20, 21, 5])
    curve = metrics.precision_curve(pred, gt)
    assert curve[20] == pytest.approx(2 / 3)
    assert curve[19] == pytest.approx(1 / 3)
    assert curve[4] == 0.0 and curve[5] == pytest.approx(1 / 3)
    assert curve[21] == 1.0


def test_normalised_precision_divides_by_gt_size_per_axis():
    gt = repeat([0, 0, 100, 50], 3)
    pred = np.array([[10, 5, 100, 50],     # sqrt(0.1^2 + 0.1^2) = 0.1414
                     [20, 0, 100, 50],     # exactly 0.20 -> counts at 0.20
                     [21, 0, 100, 50]])    # 0.21
    errs = metrics.normalized_center_errors(pred, gt)
    np.testing.assert_allclose(errs, [math.sqrt(0.02), 0.2, 0.21])
    curve = metrics.normalized_precision_curve(pred, gt)
    assert curve[20] == pytest.approx(2 / 3)
    assert curve[14] == 0.0 and curve[15] == pytest.approx(1 / 3)
    # the same pixel offsets on a target twice as large: half the normalised error
    big_gt = repeat([0, 0, 200, 100], 3)
    np.testing.assert_allclose(metrics.normalized_center_errors(pred + [0, 0, 100, 50], big_gt),
                               [math.sqrt(0.02) / 2, 0.1, 0.105])


def test_nan_and_zero_size_ground_truth_exclude_policy():
    gt = np.array([GT, [np.nan] * 4, GT, [5, 5, 0, 0]])
    pred = repeat(GT, 4)
    assert list(metrics.valid_gt_mask(gt)) == [True, False, True, False]
    ious = metrics.frame_ious(pred, gt)
    assert np.isnan(ious[1]) and np.isnan(ious[3])
    # excluded from numerator and denominator: a perfect tracker stays perfect
    assert metrics.auc(metrics.success_curve(pred, gt)) == pytest.approx(20 / 21)
    assert metrics.precision_curve(pred, gt)[20] == 1.0
    assert metrics.normalized_precision_curve(pred, gt)[20] == 1.0


def test_nan_ground_truth_pysot_policy():
    gt = np.array([GT, [np.nan] * 4, GT, [5, 5, 0, 0]])
    pred = np.array([GT, GT, [50, 50, 10, 10], GT])
    # success: invalid frames stay in the denominator as failures -> 1 of 4 frames succeeds
    succ = metrics.success_curve(pred, gt, absent_policy="pysot")
    np.testing.assert_allclose(succ[:20], 0.25)
    # precision: pysot scores invalid ground truth as distance -1, i.e. a success
    prec = metrics.precision_curve(pred, gt, absent_policy="pysot")
    assert prec[20] == pytest.approx(3 / 4)
    # exclude policy on the same data: 1 of 2 valid frames
    assert metrics.success_curve(pred, gt)[0] == pytest.approx(0.5)
    assert metrics.precision_curve(pred, gt)[20] == pytest.approx(0.5)


def test_absent_flags():
    gt = repeat(GT, 4)
    pred = np.array([GT, GT, [50, 50, 10, 10], [50, 50, 10, 10]])
    absent = [False, False, False, True]
    # exclude: frame 3 dropped -> 2 of 3
    assert metrics.success_curve(pred, gt, absent)[0] == pytest.approx(2 / 3)
    # pysot (LaSOT): absent frames removed from the numerator, kept in the denominator
    assert metrics.success_curve(pred, gt, absent, "pysot")[0] == pytest.approx(2 / 4)
    assert metrics.precision_curve(pred, gt, absent, "pysot")[20] == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        metrics.success_curve(pred, gt, absent, "nonsense")


def test_non_finite_prediction_is_a_failure():
    pred = np.array([[np.nan] * 4, GT])
    gt = repeat(GT, 2)
    assert metrics.frame_ious(pred, gt)[0] == 0.0
    assert metrics.success_curve(pred, gt)[0] == 0.5
    assert metrics.precision_curve(pred, gt)[50] == 0.5


def test_got10k_ao_sr_exclude_the_first_frame():
    gt = repeat(GT, 5)
    pred = np.array([GT, [0, 0, 10, 5], [0, 0, 10, 8], [0, 0, 10, 10], [50, 50, 1, 1]])
    ious = metrics.got10k_ious(pred, gt)
    np.testing.assert_allclose(ious, [0.5, 0.8, 1.0, 0.0])
    got = metrics.got10k_metrics(ious)
    assert got["ao"] == pytest.approx(2.3 / 4)
    assert got["sr50"] == pytest.approx(2 / 4)        # 0.5 is not > 0.5
    assert got["sr75"] == pytest.approx(2 / 4)
    # absent frames are dropped too
    assert len(metrics.got10k_ious(pred, gt, absent=[0, 0, 0, 0, 1])) == 3


def test_aggregate_weighs_sequences_for_ope_and_frames_for_ao():
    short = metrics.sequence_metrics(repeat(GT, 3), repeat(GT, 3))                 # perfect, 2 AO frames
    long_pred = np.vstack([GT, repeat([50, 50, 10, 10], 9)])
    long = metrics.sequence_metrics(long_pred, repeat(GT, 10))                      # wrong, 9 AO frames
    overall = metrics.aggregate([short, long])
    assert overall["auc"] == pytest.approx((20 / 21 + 20 / 21 / 10) / 2)
    assert overall["ao"] == pytest.approx(2 / 11)                                   # pooled frames
    assert overall["sequences"] == 2


def test_iou_clipped_to_image_bound():
    # half of the prediction lies outside a 10x10 image: clipped, it equals the ground truth
    iou = metrics.frame_ious([[0, 0, 20, 10]], [GT], bound=(10, 10))[0]
    assert iou == 1.0
    assert metrics.frame_ious([[0, 0, 20, 10]], [GT])[0] == 0.5


class ScriptedTracker:
    """Returns the ground truth, except on `bad` frames (a box far away)."""

    def __init__(self, gt, bad):
        self.gt, self.bad, self.inits = gt, set(bad), []

    def init(self, i, box):
        self.inits.append(i)

    def track(self, i):
        return [500, 500, 10, 10] if i in self.bad else self.gt[i]


def test_vot_protocol_failure_reset_and_accuracy():
    n = 30
    gt = repeat(GT, n)
    tracker = ScriptedTracker(gt, bad={3})
    records = metrics.run_vot_protocol(tracker.track, tracker.init, n, gt)
    assert tracker.inits == [0, 8]                    # failure at 3, re-initialised 5 frames later
    assert records[0] == metrics.INIT and records[3] == metrics.FAILURE
    assert records[4:8] == [metrics.SKIPPED] * 4 and records[8] == metrics.INIT
    res = metrics.vot_accuracy_robustness(records, gt)
    assert res["failures"] == 1
    # counted: frames 18..29 (burn-in 8..17 after the re-init; 1, 2 are in the first burn-in)
    assert np.count_nonzero(~np.isnan(res["overlaps"])) == 12
    assert res["accuracy"] == pytest.approx(1.0)
    agg = metrics.vot_aggregate([res])
    assert agg["robustness"] == pytest.approx(100 / 30)
    assert agg["failures"] == 1


def test_vot_protocol_low_overlap_is_not_a_failure_and_nan_gt_cannot_fail():
    n = 15
    gt = repeat(GT, n)
    gt[5] = np.nan
    tracker = ScriptedTracker(gt, bad={5})
    tracker.track = lambda i: [5, 5, 10, 10] if i != 5 else [500, 500, 1, 1]   # IoU 25/175 > 0
    records = metrics.run_vot_protocol(tracker.track, tracker.init, n, gt)
    assert not any(isinstance(r, str) and r == metrics.FAILURE for r in records)
    res = metrics.vot_accuracy_robustness(records, gt, burnin=0)
    assert res["accuracy"] == pytest.approx(25 / 175)
    assert np.isnan(res["overlaps"][5])


def test_sequence_metrics_on_a_shifted_tracker():
    # a tracker lagging by 2 px in x on a 10x10 target: IoU 80/120 = 2/3 on frames 1..
    n = 11
    gt = repeat(GT, n)
    pred = repeat([2, 0, 10, 10], n)
    pred[0] = GT
    m = metrics.sequence_metrics(pred, gt)
    iou = 80 / 120
    expect_curve = np.array([(1 + 10 * (iou > t)) / 11 for t in metrics.IOU_THRESHOLDS])
    expect_curve[-1] = 0.0
    np.testing.assert_allclose(m["success_curve"], expect_curve)
    assert m["precision20"] == 1.0
    assert m["norm_precision20"] == 1.0                   # 2 / 10 = 0.2 <= 0.2
    assert m["ao"] == pytest.approx(iou)
