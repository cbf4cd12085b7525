"""RASNet: shapes, Eq. 8 end to end, attention once per target, tracker on real frames."""

import pytest
import torch

from siam_tracker_ros.core.models.registry import build_model, load_model_config



def _model(seed=0):
    torch.manual_seed(seed)
    model = build_model(load_model_config("rasnet")["model"]).eval()
    with torch.no_grad():   # trained-looking attention: non-trivial residual map and bias
        model.residual_attention.out.weight.normal_(0, 0.1)
        model.general_attention.weight.add_(torch.randn(6, 6) * 0.1)
        model.bias.fill_(0.3)
    return model


def test_rasnet_shapes_and_params():
    model = _model()
    with torch.no_grad():
        state = model.template(torch.rand(1, 3, 127, 127) * 255)
        out = model.track(state, torch.rand(3, 3, 255, 255) * 255)["response"]
    assert state.shape == (1, 256, 6, 6)
    assert out.shape == (3, 1, 17, 17)
    assert model.general_attention.weight.shape == (6, 6)
    assert model.channel_attention.reduce.out_features == 256 // 4
    assert model.stride == 8 and model.score_size == 17


def test_rasnet_response_is_eq8_of_its_attentions():
    model = _model(1)
    z = torch.rand(1, 3, 127, 127) * 255
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        zf, xf = model.backbone(z), model.backbone(x)
        rho = model.general_attention.weight + model.residual_attention(zf)[0]      # Eq. 9
        beta = model.channel_attention(zf)[0]
        out = model(z, x)["response"]
        m, n = 6, 6
        windows = xf.unfold(2, m, 1).unfold(3, n, 1)          # B x d x 17 x 17 x m x n
        # f[p', q'] = sum_{i,j,c} rho_ij beta_c phi_ijc(z) phi_{p'+i,q'+j,c}(x) + b
        f = torch.einsum("ij,c,cij,bcpqij->bpq", rho, beta, zf[0], windows)
        expected = f * model.response_scale + model.bias
    assert torch.allclose(out[:, 0], expected, rtol=1e-4, atol=1e-4)


def test_rasnet_attention_runs_once_per_target():
    model = _model()
    with torch.no_grad():
        state = model.template(torch.rand(1, 3, 127, 127) * 255)

    def boom(*a, **k):
        raise AssertionError("attention evaluated during track()")
    for module in (model.residual_attention, model.channel_attention, model.general_attention):
        module.forward = boom
    with torch.no_grad():
        out = model.track(state, torch.rand(1, 3, 255, 255) * 255)
    assert out["response"].shape == (1, 1, 17, 17)


def test_rasnet_rejects_wrong_exemplar_size():
    model = _model()
    with pytest.raises(ValueError, match="6x6"):
        model.template(torch.rand(1, 3, 135, 135) * 255)


def test_rasnet_config_uses_papers_tracking_parameters():
    cfg = load_model_config("rasnet")
    assert cfg["tracker"]["type"] == "siamfc"
    assert cfg["tracker"]["scale_step"] == pytest.approx(1.03)
    assert cfg["tracker"]["scale_num"] == 3
    assert cfg["tracker"]["scale_lr"] == pytest.approx(0.56)
