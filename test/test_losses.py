"""Each loss against a value computed by hand on a tiny tensor."""
import math

import pytest
import torch

from siam_tracker_ros.train import losses as L
from siam_tracker_ros.train import targets as T

LN2 = math.log(2.0)


def softplus(v):
    return math.log1p(math.exp(v))


def test_logistic_loss_by_hand():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 0.0]]]])
    labels = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    weights = torch.full_like(logits, 0.25)
    # log(1 + exp(-y v)) with y = +1 / -1
    expected = 0.25 * (LN2 + softplus(2.0) + softplus(-1.0) + LN2)
    assert math.isclose(float(L.logistic_loss(logits, labels, weights)), expected, rel_tol=1e-6)
    # RASNet: pairs weighted by exp(-|i - j| / 100)
    two = L.logistic_loss(logits.repeat(2, 1, 1, 1), labels.repeat(2, 1, 1, 1), weights.repeat(2, 1, 1, 1),
                          L.temporal_weights(torch.tensor([0, 100])))
    assert math.isclose(float(two), expected * (1 + math.exp(-1)) / 2, rel_tol=1e-6)


def test_rpn_cls_loss_by_hand():
    # two anchors: a positive with logits (0, 0) and a negative with logits (bg=1, fg=0)
    cls = torch.tensor([[[[[0.0, 0.0], [1.0, 0.0]]]]])          # B K S S 2 with S = 1 x 2
    labels = torch.tensor([[[[1, 0]]]])
    expected = 0.5 * LN2 + 0.5 * math.log1p(math.exp(-1.0))
    assert math.isclose(float(L.rpn_cls_loss(cls, labels)), expected, rel_tol=1e-6)
    # ignored anchors do not count
    labels = torch.tensor([[[[1, -1]]]])
    assert math.isclose(float(L.rpn_cls_loss(cls, labels)), 0.5 * LN2, rel_tol=1e-6)


def test_rpn_loc_loss_smooth_l1_by_hand():
    beta = 1.0 / 9.0
    loc = torch.zeros(1, 4, 1, 1, 2)
    deltas = torch.zeros(1, 4, 1, 1, 2)
    deltas[0, 0, 0, 0, 0] = 0.05      # quadratic part: 0.5 * 0.05^2 / beta
    deltas[0, 1, 0, 0, 0] = 1.0       # linear part: 1 - 0.5 * beta
    deltas[0, 2, 0, 0, 1] = 5.0       # an anchor with weight 0
    weight = torch.tensor([[[[1.0, 0.0]]]])
    expected = 0.5 * 0.05 ** 2 / beta + (1.0 - 0.5 * beta)
    assert math.isclose(float(L.rpn_loc_loss(loc, deltas, weight, beta)), expected, rel_tol=1e-6)


def test_iou_and_diou_losses_by_hand():
    pred = torch.tensor([[10.0, 10.0, 10.0, 10.0]])        # box [-10, -10, 10, 10]
    target = torch.tensor([[10.0, 10.0, 30.0, 10.0]])      # box [-10, -10, 30, 10]
    # intersection 20 x 20 = 400, union 400 + 800 - 400 = 800 -> IoU 0.5
    assert math.isclose(float(L.iou_loss(pred, target)), 0.5, rel_tol=1e-6)
    # centres (0, 0) and (10, 0): rho^2 = 100; enclosing box 40 x 20: c^2 = 2000
    assert math.isclose(float(L.diou_loss(pred, target)), 0.5 + 100 / 2000, rel_tol=1e-6)
    assert float(L.iou_loss(pred[:0], target[:0])) == 0.0
    # SiamBAN's form: -log((400 + 1) / (800 + 1))
    assert math.isclose(float(L.log_iou_loss(pred, target)), -math.log(401 / 801), rel_tol=1e-6)
    assert float(L.diou_loss(target, target)) == pytest.approx(0.0, abs=1e-7)


def test_point_cls_loss_ce_equals_bce_on_logit_difference():
    cls = torch.tensor([[[[0.3, -1.0]], [[1.2, 0.5]]]])     # B=1, C=2, 1 x 2 map
    labels = torch.tensor([[[1, 0]]])
    # positive point: -log softmax_fg = log(1 + exp(-(1.2 - 0.3)))
    # negative point: -log softmax_bg = log(1 + exp(0.5 - (-1.0)))
    expected = 0.5 * softplus(-0.9) + 0.5 * softplus(1.5)
    assert math.isclose(float(L.point_cls_loss(cls, labels)), expected, rel_tol=1e-6)
    one = cls[:, 1:] - cls[:, :1]
    assert math.isclose(float(L.point_cls_loss(one, labels)), expected, rel_tol=1e-6)


def test_criteria_are_zero_grad_safe_and_decrease_towards_targets():
    box = torch.tensor([[87.5, 107.5, 167.5, 147.5]])
    # anchor-free: a perfect regression gives loc loss 0 (IoU 1)
    crit = L.build_criterion({"type": "siamcan", "stride": 8})
    t = T.point_targets(box, 25, 8, "siamcan")
    cls = torch.zeros(1, 2, 25, 25, requires_grad=True)
    loss, parts = crit({"cls": cls, "loc": t["ltrb"].clamp(min=0.1)}, box)
    assert float(parts["loc"]) == pytest.approx(0.0, abs=1e-6)
    assert float(parts["cls"]) == pytest.approx(LN2, rel=1e-5)       # uniform softmax
    loss.backward()
    assert cls.grad is not None
    # RPN criterion reads pysot's channel layout
    crit = L.build_criterion({"type": "rpn", "stride": 8})
    out = {"cls": torch.zeros(2, 10, 25, 25), "loc": torch.zeros(2, 20, 25, 25)}
    loss, parts = crit(out, box.repeat(2, 1), torch.tensor([False, True]))
    assert float(parts["cls"]) == pytest.approx(LN2, rel=1e-5)
    # logistic / rasnet
    crit = L.build_criterion({"type": "rasnet"})
    loss, _ = crit({"response": torch.zeros(1, 1, 17, 17)}, box, batch={"frame_gap": torch.tensor([0])})
    assert float(loss) == pytest.approx(LN2, rel=1e-5)
    with pytest.raises(ValueError):
        L.build_criterion({"type": "nope"})


def test_rasnet_omega_in_the_loss_by_hand():
    """RASNet Eq. 12-13 through the registered criterion: each pair's logistic
    loss times exp(-|i - j| / 100), |i - j| from the batch's frame_gap."""
    crit = L.build_criterion({"type": "rasnet", "radius": 16, "stride": 8, "search_size": 255})
    assert crit.temporal and crit.temporal_mode == "loss"
    boxes = torch.tensor([[100.0, 100.0, 155.0, 155.0]]).repeat(2, 1)     # centred target
    c = 3.0
    response = torch.zeros(2, 1, 17, 17)
    response[1] = c                   # pair 2: every cell says "target" with logit 3
    # balanced weights: 1/2 on the positives' mean, 1/2 on the negatives' mean
    loss_pair1 = LN2
    loss_pair2 = 0.5 * softplus(-c) + 0.5 * softplus(c)
    gaps = torch.tensor([10.0, 100.0])
    expected = (math.exp(-0.1) * loss_pair1 + math.exp(-1.0) * loss_pair2) / 2
    got, _ = crit({"response": response}, boxes, torch.tensor([False, False]), {"frame_gap": gaps})
    assert math.isclose(float(got), expected, rel_tol=1e-6)
    # the plain logistic criterion weighs both pairs 1
    plain, _ = L.build_criterion({"type": "logistic", "radius": 16, "stride": 8})({"response": response}, boxes)
    assert math.isclose(float(plain), (loss_pair1 + loss_pair2) / 2, rel_tol=1e-6)
    # no frame gaps, no silent unweighted loss
    with pytest.raises(ValueError, match="frame_gap"):
        crit({"response": response}, boxes, None, {})


def test_loss_registry_takes_new_losses():
    @L.register_loss("test_only_constant")
    class Constant(L.Criterion):
        def __call__(self, outputs, boxes, negative=None, batch=None):
            return outputs["x"].sum() * 0 + self.cfg["value"], {}

    try:
        crit = L.build_criterion({"type": "test_only_constant", "value": 2.5})
        assert float(crit({"x": torch.ones(1)}, None)[0]) == 2.5
        with pytest.raises(ValueError, match="registered"):
            L.build_criterion({"type": "no_such_loss"})
        assert {"logistic", "rasnet", "rpn", "siamcan", "sae", "ban"} <= set(L.LOSSES)
        assert L.build_criterion({"type": "sae"}).reg == "iou"       # SiamAF-MSA: 1 - IoU
    finally:
        L.LOSSES.pop("test_only_constant", None)
