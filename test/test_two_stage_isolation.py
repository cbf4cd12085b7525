"""Ta-ASiam's two-stage aware training (train/actors.py, two_stage): each kind of
sample trains only its own branch.

The position-aware crops' loss must give the deep branch (the paper's fourth
ResNet block = pysot layer3, level 3: its backbone stage, neck, attention, RPN)
exactly zero gradient, and the appearance-aware crops' loss the shallow branch
(third block = layer2, level 2) exactly zero; each must reach its own branch,
and the fused-output term must reach only the fusion weights. Checked with the
whole backbone trainable (the paper's last epochs), on the light model and on
the ResNet-50 one.
"""
from __future__ import annotations

import pytest
import torch

from siam_tracker_ros.core.models import registry
from siam_tracker_ros.train.actors import TwoStageActor, build_actor
from siam_tracker_ros.train.losses import build_criterion

RPN_LOSS = {"type": "rpn", "pos_iou": 0.6, "neg_iou": 0.3, "num_pos": 16, "num_neg": 32}


def _batch(n=2, search=255, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = search / 2
    box = torch.tensor([c - 32, c - 32, c + 32, c + 32])     # = the ratio-1 anchor: positives exist
    return {"template": torch.rand(n, 3, 127, 127, generator=g) * 255,
            "search": torch.rand(n, 3, search, search, generator=g) * 255,
            "search_appearance": torch.rand(n, 3, search, search, generator=g) * 255,
            "search_box": box.repeat(n, 1), "search_appearance_box": (box + 16).repeat(n, 1),
            "negative": torch.tensor([False] * n)}


def _grads(loss, params):
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [None if g is None else float(g.abs().sum()) for g in gs]


def _branch_params(model, level):
    return [p for m in model.branch_modules(level).values() for p in m.parameters()]


def _check(model, criterion_cfg, batch):
    torch.manual_seed(0)
    for p in model.parameters():
        p.requires_grad_(True)          # backbone trained too (the paper's last 10 epochs)
    model.train()
    crit = build_criterion(criterion_cfg, model)
    crit.generator = torch.Generator().manual_seed(1)
    actor = build_actor("two_stage", model, crit, {"fusion_weight": 1.0})
    assert isinstance(actor, TwoStageActor) and (actor.position_level, actor.appearance_level) == (2, 3)
    res = actor.losses(actor.network(), batch)
    shallow, deep = _branch_params(model, 2), _branch_params(model, 3)
    fusion = [model.rpn_head.cls_weight, model.rpn_head.loc_weight]

    pos_on_deep = _grads(res["position_loss"], deep)
    app_on_shallow = _grads(res["appearance_loss"], shallow)
    assert all(g is None or g == 0.0 for g in pos_on_deep), "position-aware samples reached the deep branch"
    assert all(g is None or g == 0.0 for g in app_on_shallow), "appearance-aware samples reached the shallow branch"
    # ... and each reaches its own branch (the test could fail) and the fusion weights
    assert sum(g or 0.0 for g in _grads(res["position_loss"], shallow)) > 0
    assert sum(g or 0.0 for g in _grads(res["appearance_loss"], deep)) > 0
    for loss in (res["position_loss"], res["appearance_loss"]):
        assert all(g is not None and g > 0 for g in _grads(loss, fusion))
    # the total the trainer steps on is the sum of the two
    total, parts = actor.loss(actor.network(), batch)
    assert {"pos_cls", "pos_loc", "app_cls", "app_loc", "fusion"} <= set(parts)
    return res


def test_light_ta_asiam_branches_are_isolated():
    cfg = registry.load_model_config("ta_asiam_light")
    model = registry.build_model(cfg["model"])
    loss = dict(RPN_LOSS, stride=16, anchor_scales=[4])
    _check(model, loss, _batch())


def test_resnet50_ta_asiam_branches_are_isolated():
    cfg = registry.load_model_config("ta_asiam")
    model = registry.build_model(cfg["model"])
    assert model.levels == [2, 3]
    loss = dict(RPN_LOSS, stride=8, anchor_scales=[8], search_size=191)
    _check(model, loss, _batch(n=2, search=191))


def test_without_isolation_the_old_fused_term_leaks():
    """The check above can fail: the fused loss without detaching (the former
    fused_weight term) gives the deep RPN a gradient from position-aware crops."""
    cfg = registry.load_model_config("ta_asiam_light")
    model = registry.build_model(cfg["model"]).train()
    crit = build_criterion(dict(RPN_LOSS, stride=16, anchor_scales=[4]), model)
    batch = _batch()
    state = model.template(batch["template"])
    out = model.track(state, batch["search"], return_branches=True)
    fused, _ = crit(out, batch["search_box"], batch["negative"])
    assert sum(g or 0.0 for g in _grads(fused, list(model.rpn_head.rpn3.parameters()))) > 0


def test_two_stage_actor_needs_two_stage_data(tmp_path):
    from siam_tracker_ros.train.trainer import Trainer
    cfg = {"name": "t", "model": "ta_asiam_light", "data": {"mode": "plain"},
           "train": {"actor": "two_stage", "epochs": 1, "loss": RPN_LOSS}, "val": {"enabled": False}}

    class Empty(torch.utils.data.Dataset):
        mode = "plain"

        def __len__(self):
            return 1

    with pytest.raises(ValueError, match="needs data.mode: two_stage"):
        Trainer(cfg, out_dir=str(tmp_path), dataset=Empty(), device="cpu", progress=False, log=lambda m: None)
