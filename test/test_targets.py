"""Label assignment checked cell by cell against hand-computed geometry.

Map geometry: cell i of an S-cell map sits at 127.5 + (i - S // 2) * stride
search px (255 px crop, centre 127.5). Below, (a, b) = (column, row) offsets
in cells from the middle cell.
"""
import math

import pytest
import torch

from siam_tracker_ros.train import targets as T


def centred_box(w, h, dx=0.0, dy=0.0):
    cx, cy = 127.5 + dx, 127.5 + dy
    return torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]])


def test_map_points_are_centred_like_the_trackers():
    p = T.map_points(17, 8, 255)
    assert p[8] == 127.5 and p[0] == 127.5 - 64 and p[16] == 127.5 + 64
    q = T.map_points(16, 16, 255)          # NanoTrack: even map, point S//2 at the centre
    assert q[8] == 127.5 and q[0] == 127.5 - 128 and q[15] == 127.5 + 112


def test_logistic_labels_radius_16_at_stride_8():
    labels, weights = T.logistic_labels(centred_box(40, 40), 17, stride=8, radius=16)
    lab = labels[0, 0]
    # positive iff 64 * (a^2 + b^2) <= 256, i.e. a^2 + b^2 <= 4: 13 cells
    assert int(lab.sum()) == 13
    assert lab[8, 8] == 1 and lab[8, 10] == 1 and lab[10, 8] == 1 and lab[9, 9] == 1
    assert lab[9, 10] == 0 and lab[10, 10] == 0 and lab[8, 11] == 0
    w = weights[0, 0]
    assert math.isclose(float(w[8, 8]), 0.5 / 13, rel_tol=1e-6)
    assert math.isclose(float(w[0, 0]), 0.5 / (289 - 13), rel_tol=1e-6)
    assert math.isclose(float(w.sum()), 1.0, rel_tol=1e-5)


def test_logistic_labels_follow_a_shifted_target_and_negative_pairs():
    labels, _ = T.logistic_labels(centred_box(40, 40, dx=16), 17, stride=8, radius=16)
    lab = labels[0, 0]
    assert lab[8, 10] == 1 and lab[8, 12] == 1 and lab[8, 8] == 1 and lab[8, 7] == 0
    labels, weights = T.logistic_labels(centred_box(40, 40), 17, negative=torch.tensor([True]))
    assert labels.sum() == 0
    assert math.isclose(float(weights.sum()), 1.0, rel_tol=1e-5)


def test_siamcan_ellipse_and_circle_labels():
    # box 80 x 40 centred: E1 semi-axes (40, 20); C2 radius = 40*20/sqrt(40^2+20^2) = 17.89 px,
    # r^2 = 320: positive iff 64 (a^2 + b^2) < 320, i.e. a^2 + b^2 < 5.
    t = T.point_targets(centred_box(80, 40), 25, stride=8, mode="siamcan")
    lab = t["labels"][0]
    c = 12

    def at(a, b):
        return int(lab[c + b, c + a])

    assert at(0, 0) == 1 and at(2, 0) == 1 and at(0, 2) == 1 and at(1, 1) == 1
    assert at(2, 1) == -1          # a^2+b^2 = 5 (not < 5); E1 = 0.16+0.16 = 0.32 <= 1 -> ignored
    assert at(3, 0) == -1          # E1 = (24/40)^2 = 0.36 -> between the regions
    assert at(5, 0) == -1          # E1 = (40/40)^2 = 1.0 exactly: not outside
    assert at(3, 2) == -1          # 0.36 + 0.64 = 1.0: not outside
    assert at(4, 2) == 0           # 0.64 + 0.64 = 1.28 -> negative
    assert at(0, 3) == 0           # (24/20)^2 = 1.44 -> negative
    assert at(6, 0) == 0
    assert int((lab == 1).sum()) == 13
    # regression targets (l, t, r, b) at the centre and one cell to the right
    assert t["ltrb"][0, :, c, c].tolist() == [40.0, 20.0, 40.0, 20.0]
    assert t["ltrb"][0, :, c, c + 1].tolist() == [48.0, 20.0, 32.0, 20.0]


def test_ban_labels_inner_ellipse_quarter_axes():
    t = T.point_targets(centred_box(80, 40), 25, stride=8, mode="ban")
    lab = t["labels"][0]
    c = 12
    assert lab[c, c + 2] == 1        # (16/20)^2 = 0.64 < 1
    assert lab[c + 1, c] == 1        # (8/10)^2 = 0.64
    assert lab[c + 2, c] == -1       # inner: 2.56; outer: (16/20)^2 = 0.64 -> ignored
    assert lab[c, c + 3] == -1       # inner 1.44, outer 0.36
    assert lab[c + 3, c] == 0        # outer (24/20)^2 = 1.44 -> negative


def test_box_labels_of_the_sae_model():
    # x in [87.5, 167.5] -> a in -5..5 (the border points count as inside); y in [107.5, 147.5] -> b in -2..2
    t = T.point_targets(centred_box(80, 40), 25, stride=8, mode="box")
    lab = t["labels"][0]
    assert int((lab == 1).sum()) == 11 * 5
    assert int((lab == -1).sum()) == 0
    assert lab[12, 17] == 1 and lab[12, 18] == 0 and lab[14, 12] == 1 and lab[15, 12] == 0


def test_point_labels_subsampling_and_negative_pairs():
    g = torch.Generator().manual_seed(0)
    t = T.point_targets(centred_box(120, 120).repeat(3, 1), 25, mode="box", num_pos=16, num_neg=48,
                        negative=torch.tensor([False, False, True]), neg_pair_num=16, generator=g)
    lab = t["labels"]
    for i in range(2):
        assert int((lab[i] == 1).sum()) == 16 and int((lab[i] == 0).sum()) == 48
    assert int((lab[2] == 1).sum()) == 0 and int((lab[2] == 0).sum()) == 16


def test_anchor_shapes_match_pysot():
    shapes = T.anchor_shapes(8, (0.33, 0.5, 1, 2, 3), (8,))
    assert shapes.tolist() == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]


def test_rpn_targets_iou_thresholds_and_sampling():
    anchors = T.generate_anchors(25, 8, (0.33, 0.5, 1, 2, 3), (8,))
    assert anchors[2, 12, 12].tolist() == [127.5, 127.5, 64.0, 64.0]
    box = centred_box(64, 64)
    t = T.rpn_targets(box, anchors, num_pos=100, num_neg=None, num_total=10 ** 6)
    lab, iou = t["labels"][0], t["iou"][0]
    k, c = 2, 12
    # 64x64 anchor shifted by 8 px: IoU = 56*64 / (2*4096 - 56*64) = 0.778 -> positive
    assert math.isclose(float(iou[k, c, c + 1]), 3584 / 4608, rel_tol=1e-5) and lab[k, c, c + 1] == 1
    # diagonal shift (8, 8): 56*56 / (8192 - 3136) = 0.620 -> positive
    assert lab[k, c + 1, c + 1] == 1
    # 16 px: 48*64 / (8192 - 3072) = 0.6 exactly -> not > 0.6, not < 0.3 -> ignored
    assert math.isclose(float(iou[k, c, c + 2]), 0.6, rel_tol=1e-5) and lab[k, c, c + 2] == -1
    # 40 px: 24*64 / (8192 - 1536) = 0.23 -> negative
    assert lab[k, c, c + 5] == 0
    # the 88x40 anchor at the centre: 2560 / 5056 = 0.506 -> ignored
    assert math.isclose(float(iou[1, c, c]), 2560 / 5056, rel_tol=1e-5) and lab[1, c, c] == -1
    assert int((lab == 1).sum()) == 9
    # deltas: normalised by the anchor size, log for the size
    d = t["deltas"][0]
    assert d[:, k, c, c].abs().max() < 1e-6
    assert math.isclose(float(d[0, k, c, c + 1]), -8 / 64, rel_tol=1e-5)
    assert math.isclose(float(d[2, 1, c, c]), math.log(64 / 88), rel_tol=1e-5)
    assert math.isclose(float(t["delta_weight"][0].sum()), 1.0, rel_tol=1e-5)
    # default sampling: at most 16 positives, 64 in total -> 9 positives + 55 negatives
    s = T.rpn_targets(box, anchors, generator=torch.Generator().manual_seed(1))["labels"][0]
    assert int((s == 1).sum()) == 9 and int((s == 0).sum()) == 55
    # Ta-ASiam's 16 / 32
    s = T.rpn_targets(box, anchors, num_neg=32)["labels"][0]
    assert int((s == 0).sum()) == 32


def test_rpn_targets_caps_positives_and_handles_negative_pairs():
    anchors = T.generate_anchors(25, 8, (0.33, 0.5, 1, 2, 3), (8,))
    big = centred_box(64, 64).repeat(2, 1)
    t = T.rpn_targets(big, anchors, negative=torch.tensor([False, True]), num_pos=4, num_total=64)
    lab = t["labels"]
    assert int((lab[0] == 1).sum()) == 4 and int((lab[0] == 0).sum()) == 60
    assert int((lab[1] == 1).sum()) == 0 and int((lab[1] == 0).sum()) == 16
    neg_cells = (lab[1] == 0).nonzero()
    assert neg_cells[:, 1:].min() >= 12 - 3 and neg_cells[:, 1:].max() <= 12 + 3
    assert float(t["delta_weight"][1].sum()) == 0.0


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode"):
        T.point_targets(centred_box(10, 10), 5, mode="square")
