
import numpy as np
import pytest
import torch

from siam_tracker_ros.core.models.registry import build_model, load_model_config
from siam_tracker_ros.core.tracking.loading import build_tracker
from siam_tracker_ros.core.models.siamfc import cross_correlation



def test_siamfc_forward_shapes():
    model = build_model(load_model_config("siamfc")["model"]).eval()
    with torch.no_grad():
        zf = model.template(torch.rand(1, 3, 127, 127) * 255)
        xf = model.backbone(torch.rand(3, 3, 255, 255) * 255)
        out = model.track(zf, torch.rand(3, 3, 255, 255) * 255)["response"]
    assert zf.shape == (1, 256, 6, 6)
    assert xf.shape == (3, 256, 22, 22)
    assert out.shape == (3, 1, 17, 17)


def test_cross_correlation_matches_explicit_sum():
    torch.manual_seed(0)
    z = torch.randn(2, 3, 2, 2)
    x = torch.randn(2, 3, 4, 4)
    out = cross_correlation(z, x)
    assert out.shape == (2, 1, 3, 3)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                expected = (z[b] * x[b, :, i:i + 2, j:j + 2]).sum()
                assert out[b, 0, i, j].item() == pytest.approx(expected.item(), abs=1e-5)


def test_tracker_rejects_bad_input():
    tracker = build_tracker("siamfc", device="cpu", allow_untrained=True)
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(RuntimeError):
        tracker.track(image)
    with pytest.raises(ValueError):
        tracker.init(image, [10, 10, 0, 5])
    with pytest.raises(ValueError):
        tracker.init(np.zeros((100, 100), np.uint8), [10, 10, 5, 5])


def test_trackers_share_one_model_but_not_state():
    config = load_model_config("siamfc")
    model = build_model(config["model"])
    from siam_tracker_ros.core.tracking.loading import build_tracker_from_config
    a = build_tracker_from_config(config, model=model, device="cpu")
    b = build_tracker_from_config(config, model=model, device="cpu")
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    a.init(image, [10, 10, 30, 30])
    b.init(image, [80, 60, 20, 20])
    assert a.model is b.model
    assert not np.allclose(a.box, b.box)
    assert a.template_state is not b.template_state
