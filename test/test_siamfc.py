import glob
import os

import cv2
import numpy as np
import pytest
import torch

from siam_tracker_ros.core.models.registry import build_model, build_tracker, load_model_config
from siam_tracker_ros.core.models.siamfc import cross_correlation
from siam_tracker_ros.core.tracking import TrackState

SEQ = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sequences", "OTB_Crossing")


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


def _frames(n):
    files = sorted(glob.glob(os.path.join(SEQ, "img", "*.jpg")))[:n]
    gt = np.loadtxt(os.path.join(SEQ, "groundtruth.txt"), delimiter=",")
    return [cv2.imread(f) for f in files], gt


def test_tracker_init_and_track_on_real_frames():
    if not os.path.isdir(SEQ):
        pytest.skip(f"shared sequences not found at {SEQ}")
    frames, gt = _frames(6)
    tracker = build_tracker("siamfc", device="cpu")
    tracker.init(frames[0], gt[0])
    h, w = frames[0].shape[:2]
    for frame in frames[1:]:
        r = tracker.track(frame)
        x, y, bw, bh = r.box
        assert 0 <= x and 0 <= y and x + bw <= w + 1e-6 and y + bh <= h + 1e-6
        assert 0.0 <= r.score <= 1.0
        assert r.state in (TrackState.TRACKING, TrackState.LOST)
        assert r.confidence_map.dtype == np.float32 and r.confidence_map.shape == (17, 17)
        assert r.confidence_map.min() >= 0 and r.confidence_map.max() <= 1
        assert r.map_region[2] > 0 and set(r.timing) >= {"crop", "network", "post", "total"}


def test_tracker_rejects_bad_input():
    tracker = build_tracker("siamfc", device="cpu")
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
    from siam_tracker_ros.core.models.registry import build_tracker_from_config
    a = build_tracker_from_config(config, model=model, device="cpu")
    b = build_tracker_from_config(config, model=model, device="cpu")
    image = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    a.init(image, [10, 10, 30, 30])
    b.init(image, [80, 60, 20, 20])
    assert a.model is b.model
    assert not np.allclose(a.box, b.box)
    assert a.template_state is not b.template_state
