"""Ta-ASiam: model shapes and equations, anchor-based tracking, pysot loader.

ResNet-50 on the CPU is slow (~0.3 s per 255 px search crop): batch 1, few steps.
"""
import math
import os

import numpy as np
import pytest
import torch
import yaml

from siam_tracker_ros.core.models.loaders_pysot import (
    PysotMappingError, map_pysot_siamrpn_r50, unwrap_pysot_checkpoint)
from siam_tracker_ros.core.tracking.loading import build_tracker, build_tracker_from_config
from siam_tracker_ros.core.models.ta_asiam import TaASiam, xcorr_depthwise
from siam_tracker_ros.core.tracking.anchor_based import (
    AnchorBasedTracker, generate_anchor_shapes, generate_anchors)

@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(1, 3, 127, 127, generator=g) * 255,
            torch.rand(1, 3, 255, 255, generator=g) * 255)


@pytest.fixture(scope="module")
def small_inputs(inputs):
    """127 px template, 191 px search (17x17 maps): the equation tests need no more."""
    return inputs[0], inputs[1][:, :, 32:223, 32:223].contiguous()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return TaASiam().eval()


# ----------------------------------------------------------------------------- model
def test_shapes_and_branches(model, inputs):
    z, x = inputs
    with torch.no_grad():
        out = model(z, x, return_branches=True)
    assert tuple(out["cls"].shape) == (1, 10, 25, 25)
    assert tuple(out["loc"].shape) == (1, 20, 25, 25)
    # the paper's third and fourth ResNet blocks = pysot layer2 and layer3
    assert [b["level"] for b in out["branches"]] == [2, 3]
    assert model.backbone.out_channels == [512, 1024] and not hasattr(model.backbone, "layer4")
    alpha, beta = out["fusion"]["cls"], out["fusion"]["loc"]
    assert float(alpha.sum()) == pytest.approx(1.0) and float(beta.sum()) == pytest.approx(1.0)
    fused_cls = sum(a * b["cls"] for a, b in zip(alpha, out["branches"]))
    fused_loc = sum(w * b["loc"] for w, b in zip(beta, out["branches"]))
    assert torch.allclose(out["cls"], fused_cls, atol=1e-5)
    assert torch.allclose(out["loc"], fused_loc, atol=1e-5)


def test_attention_follows_eq5(model, small_inputs):
    """S = D(C(z).f(z), P(x) x (C(z).f(x))) with C from the template, P from f(x)."""
    z, x = small_inputs
    with torch.no_grad():
        model.rpn_head.cls_weight.copy_(torch.tensor([0.3, -0.2]))
        zf = model.neck(model.backbone(z), crop=True)
        xf = model.neck(model.backbone(x), crop=False)
        cls_l, loc_l = [], []
        for level, fz, fx in zip((2, 3), zf, xf):
            c = model.channel_attention[str(level)](fz)          # C(z), Eq. (2)
            p = model.spatial_attention[str(level)](fx)          # P(x), Eq. (4)
            cl, lo = getattr(model.rpn_head, f"rpn{level}")(c * fz, p * (c * fx))
            cls_l.append(cl)
            loc_l.append(lo)
        alpha = torch.softmax(torch.tensor([0.3, -0.2]), 0)
        expected = alpha[0] * cls_l[0] + alpha[1] * cls_l[1]
        got = model(z, x)
        model.rpn_head.cls_weight.fill_(1.0)
    assert tuple(zf[0].shape) == (1, 256, 7, 7) and tuple(xf[0].shape) == (1, 256, 23, 23)
    assert torch.allclose(got["cls"], expected, atol=1e-5, rtol=1e-4)


def test_template_batch_one_serves_several_crops(model, small_inputs):
    z, x = small_inputs
    with torch.no_grad():
        state = model.template(z)
        single = model.track(state, x)["cls"]
        double = model.track(state, torch.cat([x, x.flip(-1)]))["cls"]
    assert torch.allclose(double[:1], single, atol=1e-4)
    assert xcorr_depthwise(torch.randn(2, 3, 9, 9), torch.randn(1, 3, 3, 3)).shape == (2, 3, 7, 7)


def test_branch_modules(model):
    parts = model.branch_modules(3)
    assert parts["backbone"] is model.backbone.layer3
    assert parts["rpn"] is model.rpn_head.rpn3
    assert model.branch_modules(2)["backbone"] is model.backbone.layer2
    with pytest.raises(ValueError):
        model.branch_modules(4)


# -------------------------------------------------------------------------- tracking
def test_anchors_as_pysot():
    shapes = generate_anchor_shapes(8, [0.33, 0.5, 1, 2, 3], [8])
    # int(sqrt(64 / r)) and int(ws * r), times the scale 8
    assert shapes.tolist() == [[104, 32], [88, 40], [64, 64], [40, 80], [32, 96]]
    anchors = generate_anchors(25, 8, [0.33, 0.5, 1, 2, 3], [8])
    assert anchors.shape == (5 * 25 * 25, 4)
    a, y, x = 3, 7, 20
    assert anchors[a * 625 + y * 25 + x].tolist() == [(x - 12) * 8, (y - 12) * 8, 40, 80]


class _StubModel(torch.nn.Module):
    """A fixed RPN output: a confident target at cell (row 12, col 15), 1:1 anchor."""
    anchor_num = 5

    def __init__(self, dw=0.0):
        super().__init__()
        self.dw = dw

    def template(self, z):
        return None

    def track(self, state, x):
        cls = torch.zeros(1, 10, 25, 25)
        cls[0, 5:] = -5.0                          # target logits (channels A..2A-1)
        cls[0, 5 + 2, 12, 15] = 8.0                # anchor 2 (ratio 1), row 12, col 15
        loc = torch.zeros(1, 20, 25, 25)
        loc[0, 2 * 5 + 2, 12, 15] = self.dw        # dw of that anchor
        return {"cls": cls, "loc": loc}


def test_decoding_penalty_and_smoothing():
    tracker = AnchorBasedTracker(_StubModel(dw=math.log(1.25)), {}, device="cpu")
    image = np.full((480, 640, 3), 100, np.uint8)
    tracker.init(image, (300, 200, 40, 40))
    s_z = math.sqrt((40 + 40) * (40 + 40))         # context 0.5: sqrt((w + p)(h + p)), p = 40
    scale_z = 127 / s_z
    res = tracker.track(image)
    # centre: +3 cells * 8 px in the crop, back to image px; the map centre stays at the old centre
    assert res.box[0] + res.box[2] / 2 == pytest.approx(320 + 24 / scale_z)
    assert res.box[1] + res.box[3] / 2 == pytest.approx(220)
    score = 1 / (1 + math.exp(-8))        # softmax of (background 0, target 8)
    pred_w, pred_h = 64 * 1.25, 64.0
    prev = 40 * scale_z

    def sz(w, h):
        p = (w + h) / 2
        return math.sqrt((w + p) * (h + p))
    s_c = max(sz(pred_w, pred_h) / sz(prev, prev), sz(prev, prev) / sz(pred_w, pred_h))
    r_c = max(pred_w / pred_h, pred_h / pred_w)
    penalty = math.exp(-(r_c * s_c - 1) * 0.05)
    lr = penalty * score * 0.38
    assert res.box[2] == pytest.approx(40 * (1 - lr) + pred_w / scale_z * lr)
    assert res.box[3] == pytest.approx(40 * (1 - lr) + pred_h / scale_z * lr)
    assert res.score == pytest.approx(score, rel=1e-6)
    assert res.confidence_map.shape == (25, 25) and res.confidence_map.dtype == np.float32
    assert np.unravel_index(res.confidence_map.argmax(), (25, 25)) == (12, 15)
    extent = 25 * 8 / scale_z
    assert res.map_region == pytest.approx([320 - extent / 2, 220 - extent / 2, extent, extent])


def test_anchor_count_mismatch_is_reported():
    with pytest.raises(ValueError, match="anchors"):
        AnchorBasedTracker(_StubModel(), {"anchor_ratios": [1.0]}, device="cpu")


# ----------------------------------------------------------------------- pysot loader
def pysot_r50_l234_shapes(anchor_num=5):
    """Key names and shapes of a pysot siamrpn_r50_l234_dwxcorr state dict, written
    out from pysot's module structure (see loaders_pysot.py for the sources)."""
    shapes = {}

    def conv(name, cout, cin, k, bias=False):
        shapes[f"{name}.weight"] = (cout, cin, k, k)
        if bias:
            shapes[f"{name}.bias"] = (cout,)

    def bn(name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{p}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    conv("backbone.conv1", 64, 3, 7)
    bn("backbone.bn1", 64)
    inplanes = 64
    for layer, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = f"backbone.layer{layer}.{b}"
            conv(f"{p}.conv1", planes, inplanes if b == 0 else planes * 4, 1)
            bn(f"{p}.bn1", planes)
            conv(f"{p}.conv2", planes, planes, 3)
            bn(f"{p}.bn2", planes)
            conv(f"{p}.conv3", planes * 4, planes, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:   # shortcut: 1x1 in layer1, 3x3 (stride or dilation) in layers 2-4
                conv(f"{p}.downsample.0", planes * 4, inplanes, 1 if layer == 1 else 3)
                bn(f"{p}.downsample.1", planes * 4)
        inplanes = planes * 4
    for level, cin in zip((2, 3, 4), (512, 1024, 2048)):
        conv(f"neck.downsample{level}.downsample.0", 256, cin, 1)
        bn(f"neck.downsample{level}.downsample.1", 256)
        for branch, cout in (("cls", 2 * anchor_num), ("loc", 4 * anchor_num)):
            p = f"rpn_head.rpn{level}.{branch}"
            conv(f"{p}.conv_kernel.0", 256, 256, 3)
            bn(f"{p}.conv_kernel.1", 256)
            conv(f"{p}.conv_search.0", 256, 256, 3)
            bn(f"{p}.conv_search.1", 256)
            conv(f"{p}.head.0", 256, 256, 1)
            bn(f"{p}.head.1", 256)
            conv(f"{p}.head.3", cout, 256, 1, bias=True)
    shapes["rpn_head.cls_weight"] = (3,)
    shapes["rpn_head.loc_weight"] = (3,)
    return shapes


def synthetic_pysot_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in pysot_r50_l234_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = 1 + 0.2 * torch.rand(shape, generator=g)
        elif key.endswith(("running_mean", ".bias")) and len(shape) == 1:
            state[key] = 0.05 * torch.randn(shape, generator=g)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=g) * math.sqrt(1.0 / fan_in)
        elif key.endswith(("cls_weight", "loc_weight")):
            state[key] = torch.tensor([0.9, -0.4, 0.3]) if "cls" in key else torch.tensor([0.1, 0.5, -0.2])
        else:   # BN weight
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def pysot_state():
    return synthetic_pysot_state()


def test_loader_maps_every_key(pysot_state):
    target = TaASiam()
    state, report = map_pysot_siamrpn_r50(pysot_state, target, strict=True)
    assert report.ok and not report.unknown and not report.missing
    target.load_state_dict(state, strict=True)
    assert torch.equal(target.backbone.layer3[0].conv1.weight, pysot_state["backbone.layer3.0.conv1.weight"])
    assert torch.equal(target.backbone.layer2[0].downsample[0].weight,
                       pysot_state["backbone.layer2.0.downsample.0.weight"])
    assert torch.equal(target.neck.downsample2.downsample[1].running_var,
                       pysot_state["neck.downsample2.downsample.1.running_var"])
    assert torch.equal(target.rpn_head.rpn3.loc.head[3].bias, pysot_state["rpn_head.rpn3.loc.head.3.bias"])
    assert torch.equal(target.rpn_head.cls_weight, pysot_state["rpn_head.cls_weight"][:2])
    # the fifth block is gone: backbone layer4 (3 blocks x 18 tensors + 6 of the shortcut),
    # layer 4's neck (6 tensors) and RPN (2 x 20 tensors) are dropped, nothing else
    layer4 = [k for k in pysot_state if k.startswith("backbone.layer4.")]
    assert len(layer4) == 60
    assert len(report.dropped) == 60 + 46
    assert all(k.startswith(("backbone.layer4.", "neck.downsample4.", "rpn_head.rpn4."))
               for k, _ in report.dropped)
    assert report.neutral_init and all(k.startswith(("channel_attention", "spatial_attention"))
                                       for k in report.neutral_init)
    # softmax over the kept fusion logits = pysot's weights of layers 2, 3 renormalised
    full = torch.softmax(pysot_state["rpn_head.cls_weight"], 0)
    assert torch.allclose(torch.softmax(target.rpn_head.cls_weight, 0), full[:2] / full[:2].sum())


def test_loaded_model_is_siamrpnpp_layers23(pysot_state, small_inputs):
    """Neutral attention: Ta-ASiam computes SiamRPN++ with layers 2 and 3 only."""
    z, x = small_inputs
    exact = TaASiam().eval()
    exact.load_state_dict(map_pysot_siamrpn_r50(pysot_state, exact, neutral_logit=40.0)[0])
    default = TaASiam().eval()
    default.load_state_dict(map_pysot_siamrpn_r50(pysot_state, default)[0])   # logit 10
    with torch.no_grad():
        out = exact(z, x, return_branches=True)
        out_default = default(z, x)
        ref_model = TaASiam(channel_attention=False, spatial_attention=False).eval()
        ref_model.load_state_dict(exact.state_dict())
        ref = ref_model(z, x, return_branches=True)
    for b, r in zip(out["branches"], ref["branches"]):
        assert torch.equal(b["cls"], r["cls"]) and torch.equal(b["loc"], r["loc"])
    # pysot's weighted average with its three softmax weights, layer 4 removed and renormalised
    w = torch.softmax(pysot_state["rpn_head.cls_weight"], 0)
    expected = (w[0] * ref["branches"][0]["cls"] + w[1] * ref["branches"][1]["cls"]) / (w[0] + w[1])
    scale = float(ref["cls"].abs().max())   # synthetic weights: large logits
    assert float((out["cls"] - expected).abs().max()) < 1e-5 * scale
    assert float((out_default["cls"] - ref["cls"]).abs().max()) < 2e-3 * scale


def test_loader_strict_and_lenient(pysot_state):
    target = TaASiam()
    bad = dict(pysot_state)
    bad["rpn_head.mystery"] = torch.zeros(3)
    del bad["backbone.layer3.0.conv1.weight"]
    bad["neck.downsample3.downsample.0.weight"] = torch.zeros(128, 1024, 1, 1)
    with pytest.raises(PysotMappingError) as err:
        map_pysot_siamrpn_r50(bad, target, strict=True)
    msg = str(err.value)
    assert "rpn_head.mystery" in msg and "backbone.layer3.0.conv1.weight" in msg
    assert "neck.downsample3.downsample.0.weight" in msg
    state, report = map_pysot_siamrpn_r50(bad, target, strict=False)
    assert report.unknown == ["rpn_head.mystery"]
    assert report.missing == ["backbone.layer3.0.conv1.weight", "neck.downsample3.downsample.0.weight"]
    assert report.shape_mismatch[0][0] == "neck.downsample3.downsample.0.weight"
    target.load_state_dict(state, strict=True)   # lenient result is still complete


def test_loader_accepts_pysot_file_layouts(pysot_state):
    wrapped = {"epoch": 20, "state_dict": {f"module.{k}": v for k, v in pysot_state.items()
                                           if not k.endswith("num_batches_tracked")}}
    assert "backbone.conv1.weight" in unwrap_pysot_checkpoint(wrapped)
    _, report = map_pysot_siamrpn_r50(wrapped, TaASiam(), strict=True)
    assert report.ok and report.defaulted   # old files lack num_batches_tracked


def test_loader_through_registry(pysot_state, tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"state_dict": pysot_state}, path)
    config_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "models")
    with open(os.path.join(config_dir, "ta_asiam.yaml")) as f:
        config = yaml.safe_load(f)
    config.update(weights=str(path), weights_format="pysot_siamrpn_r50")
    cfg_path = tmp_path / "ta_asiam_pysot.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    tracker = build_tracker(str(cfg_path), device="cpu", allow_untrained=True)
    assert torch.equal(tracker.model.backbone.layer3[5].conv3.weight.cpu(),
                       pysot_state["backbone.layer3.5.conv3.weight"])
    # a second tracker shares the model
    other = build_tracker_from_config(tracker.config, model=tracker.model, device="cpu")
    assert other.model is tracker.model
