"""SiamCAN: shapes, attention placement, SiamBAN r50 loading, tracker on real frames."""

import pytest
import torch

from siam_tracker_ros.core.models import registry
from siam_tracker_ros.core.models.loaders_siamban import (
    SiamBANLoadError, convert_siamban_state_dict, map_key)
from siam_tracker_ros.core.models.registry import build_model, load_model_config

from siamban_reference import siamban_forward, synthetic_siamban_r50  # noqa: E402 (test/ helper)



@pytest.fixture(scope="module")
def siamban_sd():
    return synthetic_siamban_r50(0)


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 127, 127, generator=g) * 255, torch.rand(1, 3, 255, 255, generator=g) * 255


@pytest.fixture(scope="module")
def reference(siamban_sd, inputs):
    return siamban_forward(siamban_sd, *inputs)


def _build(**overrides):
    cfg = dict(load_model_config("siamcan")["model"])
    cfg.update(overrides)
    return build_model(cfg).eval()


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    return _build()


def test_siamcan_shapes_and_structure(inputs, random_model):
    model = random_model
    z, x = inputs
    with torch.no_grad():
        state = model.template(z)
        out = model.track(state, x)
    assert out["cls"].shape == (1, 2, 25, 25) and out["loc"].shape == (1, 4, 25, 25)
    assert torch.isfinite(out["cls"]).all() and (out["loc"] > 0).all() and torch.isfinite(out["loc"]).all()
    assert model.stride == 8 and model.score_size == 25
    assert [v.shape for v in state["channel_weights"]] == [(1, 256)] * 3
    assert all(((v >= 0) & (v <= 1)).all() for v in state["channel_weights"])
    assert [model.cross_attention[f"level{lv}"].k_size for lv in (2, 3, 4)] == [5, 5, 5]
    assert hasattr(model.head.box3.cls, "spatial") and hasattr(model.head.box3.loc, "spatial")
    assert model.head.share_weights and model.head.fusion_weight.shape == (3,)


def test_siamcan_cross_attention_scales_search_features(inputs, random_model):
    """track() must equal the head on psi_s * V (Eq. 3) with V from the template (Eq. 1-2)."""
    model = random_model
    z, x = inputs
    with torch.no_grad():
        state = model.template(z)
        zs = model.neck(model.backbone(z), crop=True)
        xs = model.neck(model.backbone(x), crop=False)
        v = [torch.sigmoid(model.cross_attention[f"level{lv}"].conv(f.mean(dim=(2, 3)).unsqueeze(1))).squeeze(1)
             for lv, f in zip((2, 3, 4), zs)]
        expected = model.head(model.head.kernels(zs), [f * w[:, :, None, None] for f, w in zip(xs, v)])
        out = model.track(state, x)
    assert torch.allclose(out["cls"], expected[0], atol=1e-5)
    assert torch.allclose(out["loc"], expected[1], rtol=1e-5, atol=1e-5)


def test_siamban_key_table_maps_every_siamban_key(siamban_sd):
    unmapped = [k for k in siamban_sd if map_key(k) is None]
    assert unmapped == []
    assert map_key("head.box3.loc.head.3.bias") == "head.box3.loc.head.3.bias"
    assert map_key("neck.downsample4.downsample.1.running_var") == "neck.downsample4.downsample.1.running_var"
    assert map_key("head.box3.loc.head.2.weight") is None          # ReLU has no parameters


@pytest.mark.parametrize("share", [False, True])
def test_siamban_weights_with_neutral_attention_reproduce_siamban(siamban_sd, inputs, reference, share):
    z, x = inputs
    model = _build(share_fusion_weights=share)
    state, report = convert_siamban_state_dict(siamban_sd, model, attention="neutral", strict=True)
    model.load_state_dict(state, strict=True)
    assert report.unknown == [] and report.missing == [] and report.mismatched == []
    assert any(k.startswith("cross_attention.") for k in report.attention)
    assert any(".spatial." in k for k in report.attention)
    assert bool(report.dropped) == share
    with torch.no_grad():
        out = model(z, x)
    ref_cls, ref_loc = reference[share]
    assert torch.allclose(out["cls"], ref_cls, rtol=1e-4, atol=1e-5)
    assert torch.allclose(out["loc"], ref_loc, rtol=1e-4, atol=1e-5)


def test_siamban_weights_with_fresh_attention_keep_random_attention(siamban_sd):
    torch.manual_seed(3)
    model = _build(share_fusion_weights=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state, report = convert_siamban_state_dict(siamban_sd, model, attention="fresh", strict=True)
    for key in report.attention:
        assert torch.equal(state[key], before[key])
    k = "head.box2.cls.conv_search.0.weight"
    assert torch.equal(state[k], siamban_sd[k])


def test_siamban_strict_mode_names_every_problem(siamban_sd):
    model = _build(share_fusion_weights=False)
    bad = dict(siamban_sd)
    del bad["head.box3.cls.head.3.bias"]
    bad["head.box5.cls.head.3.bias"] = torch.zeros(2)
    bad["rpn_head.extra"] = torch.zeros(1)
    bad["neck.downsample2.downsample.0.weight"] = torch.zeros(256, 511, 1, 1)
    with pytest.raises(SiamBANLoadError) as err:
        convert_siamban_state_dict(bad, model, strict=True)
    msg = str(err.value)
    for name in ("head.box3.cls.head.3.bias", "head.box5.cls.head.3.bias", "rpn_head.extra",
                 "neck.downsample2.downsample.0.weight"):
        assert name in msg
    # non-strict: loads what it can, keeps the model's own values elsewhere
    state, report = convert_siamban_state_dict(bad, model, strict=False)
    assert report.missing == ["head.box3.cls.head.3.bias"]
    assert set(report.unknown) == {"head.box5.cls.head.3.bias", "rpn_head.extra"}
    assert len(report.mismatched) == 1
    model.load_state_dict(state, strict=True)


def test_siamban_loader_through_the_registry(siamban_sd, tmp_path):
    # SiamBAN's training snapshots: {'epoch', 'state_dict', 'optimizer'}; DataParallel prefix
    path = tmp_path / "model.pth"
    torch.save({"epoch": 20, "state_dict": {"module." + k: v for k, v in siamban_sd.items()}}, path)
    config = load_model_config("siamcan")
    config["weights_format"] = "siamban_r50"
    state = registry.load_weights_file(str(path), config)
    torch.manual_seed(0)
    model = build_model(config["model"])
    expected, _ = convert_siamban_state_dict(siamban_sd, model, attention="neutral", strict=True)
    assert state.keys() == expected.keys()
    for k in state:
        if not k.startswith("cross_attention.") and ".spatial." not in k:
            assert torch.equal(state[k], expected[k]), k
    model.load_state_dict(state, strict=True)
    config["model"] = {"type": "rasnet"}
    with pytest.raises(SiamBANLoadError):
        registry.load_weights_file(str(path), config)
