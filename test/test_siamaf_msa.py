"""SiamAF-MSA: shapes, SAE placement, SiamBAN r50 loading, tracker on real frames."""

import pytest
import torch

from siam_tracker_ros.core.models.attention import SAEBlock
from siam_tracker_ros.core.models.loaders_siamban import convert_siamban_state_dict
from siam_tracker_ros.core.models.registry import build_model, load_model_config

from siamban_reference import siamban_forward, synthetic_siamban_r50  # noqa: E402 (test/ helper)



@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 127, 127, generator=g) * 255, torch.rand(1, 3, 255, 255, generator=g) * 255


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(load_model_config("siamaf_msa")["model"]).eval()
    with torch.no_grad():   # a "trained" SAE: non-zero last conv, so the block is not the identity
        for level in m.levels:
            m.sae[f"level{level}"].transform[3].weight.normal_(0, 0.02)
    return m


def test_siamaf_msa_shapes_and_structure(model, inputs):
    z, x = inputs
    with torch.no_grad():
        state = model.template(z)
        out = model.track(state, x)
    assert out["cls"].shape == (1, 2, 25, 25) and out["loc"].shape == (1, 4, 25, 25)
    assert torch.isfinite(out["cls"]).all() and (out["loc"] > 0).all() and torch.isfinite(out["loc"]).all()
    assert model.stride == 8 and model.score_size == 25
    assert sorted(model.sae.keys()) == ["level2", "level3", "level4"]
    assert all(isinstance(b, SAEBlock) and b.inter_channels == 128 for b in model.sae.values())
    assert not model.head.share_weights      # Eq. 8: alpha_l for cls, beta_l for reg
    assert [k["cls"].shape for k in state["kernels"]] == [(1, 256, 5, 5)] * 3


def test_sae_acts_on_template_and_search_of_every_level(model, inputs):
    """track() == heads on g(phi^l(z)), g(phi^l(x)) (Eq. 6/7), g the level's SAE block."""
    z, x = inputs
    with torch.no_grad():
        zs = model.neck(model.backbone(z), crop=True)
        xs = model.neck(model.backbone(x), crop=False)
        sae = [model.sae[f"level{lv}"] for lv in model.levels]
        expected = model.head(model.head.kernels([b(f) for b, f in zip(sae, zs)]),
                              [b(f) for b, f in zip(sae, xs)])
        plain = model.head(model.head.kernels(zs), xs)
        out = model(z, x)
    assert torch.allclose(out["cls"], expected[0], atol=1e-5)
    assert torch.allclose(out["loc"], expected[1], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out["cls"], plain[0], atol=1e-3)   # the SAE does something


def test_siamban_weights_load_with_identity_sae_and_reproduce_siamban(inputs):
    sd = synthetic_siamban_r50(0)
    torch.manual_seed(1)
    m = build_model(load_model_config("siamaf_msa")["model"]).eval()
    state, report = convert_siamban_state_dict(sd, m, attention="neutral", strict=True)
    assert report.unknown == [] and report.missing == [] and report.mismatched == [] and report.dropped == []
    assert report.attention and all(k.startswith("sae.") for k in report.attention)
    m.load_state_dict(state, strict=True)
    z, x = inputs
    with torch.no_grad():
        out = m(z, x)
    ref_cls, ref_loc = siamban_forward(sd, z, x)[False]
    assert torch.allclose(out["cls"], ref_cls, rtol=1e-4, atol=1e-5)
    assert torch.allclose(out["loc"], ref_loc, rtol=1e-4, atol=1e-5)
