"""NanoTrack v2: model shapes, the weights loader, the anchor-free tracker, and the
acceptance check against OpenCV's cv2.TrackerNano on the shared sequences.

Tests that need ../shared (weights, sequences) skip with the path they looked at
when it is absent (SIAM_SHARED_DIR overrides the location, see conftest.py).
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from siam_tracker_ros.core.models import loaders_nanotrack as loaders
from siam_tracker_ros.core.models import registry
from siam_tracker_ros.core.tracking import loading
from siam_tracker_ros.core.models.nanotrack import NanoTrack
from siam_tracker_ros.core.tracking.anchor_free import AnchorFreeTracker, score_points

WEIGHTS_REL = Path("weights") / "nanotrack_v2"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # A tiny network on 2 busy cores: one thread is several times faster than two.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def weights_dir(shared_dir) -> Path:
    path = shared_dir / WEIGHTS_REL
    if not (path / "nanotrackv2.pth").is_file():
        pytest.skip(f"NanoTrack v2 weights not found at {path / 'nanotrackv2.pth'}")
    return path


def _frames(seq: Path, count=None):
    files = sorted((seq / "img").glob("*.jpg"))[:count]
    gt = np.loadtxt(seq / "groundtruth.txt", delimiter=",", ndmin=2)[:len(files)]
    return [cv2.imread(str(f)) for f in files], gt


# ---------------------------------------------------------------- model
def test_output_shapes_template_127_search_255():
    model = NanoTrack().eval()
    z = torch.rand(1, 3, 127, 127) * 255
    x = torch.rand(2, 3, 255, 255) * 255
    with torch.inference_mode():
        assert model.backbone(z).shape == (1, 48, 8, 8)
        assert model.backbone(x).shape == (2, 48, 16, 16)
        state = model.template(z)
        out = model.track(state, x)            # one template shared by 2 search crops
    assert out["cls"].shape == (2, 2, 16, 16)
    assert out["loc"].shape == (2, 4, 16, 16)
    assert bool((out["loc"] > 0).all())
    assert model.score_size == 16 and model.stride == 16
    with torch.inference_mode():
        both = model(z.expand(2, -1, -1, -1), x)  # per-sample templates (training)
    assert torch.allclose(both["cls"], out["cls"], atol=1e-4)


def test_input_order_rgb_swaps_channels():
    torch.manual_seed(0)
    bgr = NanoTrack(input_order="bgr").eval()
    rgb = NanoTrack(input_order="rgb").eval()
    rgb.load_state_dict(bgr.state_dict())
    z = torch.rand(1, 3, 127, 127) * 255
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.inference_mode():
        a = bgr(z.flip(1), x.flip(1))["cls"]
        b = rgb(z, x)["cls"]
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ValueError, match="input_order"):
        NanoTrack(input_order="yuv")


# ---------------------------------------------------------------- loader
_INVERSE = [
    (r"^head\.corr_(cls|reg)\.attention\.(.+)$", r"ban_head.corr_pw_\1.CA_layer.\2"),
    (r"^head\.corr_(cls|reg)\.(.+)$", r"ban_head.corr_pw_\1.\2"),
    (r"^head\.cls_tower\.(.+)$", r"ban_head.cls_pw_tower.\1"),
    (r"^head\.reg_tower\.(.+)$", r"ban_head.bbox_pw_tower.\1"),
    (r"^head\.cls_pred\.(.+)$", r"ban_head.cls_pred.0.\1"),
    (r"^head\.reg_pred\.(.+)$", r"ban_head.bbox_pred.0.\1"),
]


def _as_source(state):
    """A state dict named as nanotrackv2.pth names it (incl. the unused neck)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _INVERSE:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value.clone()
    out["neck.downsample.0.weight"] = torch.zeros(64, 64, 1, 1)
    out["neck.downsample.1.weight"] = torch.ones(64)
    return out


def test_loader_maps_every_key_and_drops_the_unused_neck():
    model = NanoTrack()
    source = _as_source(model.state_dict())
    converted = loaders.convert_state_dict(source, loaders.expected_shapes(model), strict=True)
    assert set(converted) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value)


def test_loader_strict_names_missing_and_unexpected_keys(tmp_path):
    model = NanoTrack()
    source = _as_source(model.state_dict())
    del source["ban_head.cls_pred.0.bias"]
    source["ban_head.extra_layer.weight"] = torch.zeros(3)
    with pytest.raises(loaders.NanoTrackWeightsError) as err:
        loaders.convert_state_dict(source, loaders.expected_shapes(model), strict=True)
    message = str(err.value)
    assert "head.cls_pred.bias" in message and "missing" in message
    assert "ban_head.extra_layer.weight" in message and "unexpected" in message

    # The same through the registry's weights_format hook, from a file.
    path = tmp_path / "snapshot.pth"
    torch.save({"epoch": 1, "state_dict": source}, path)
    config = registry.load_model_config("nanotrack")
    with pytest.raises(loaders.NanoTrackWeightsError, match="ban_head.extra_layer.weight"):
        registry.load_weights_file(str(path), config)
    # Non-strict: warns, returns what mapped.
    with pytest.warns(UserWarning, match="head.cls_pred.bias"):
        partial = loaders.load_nanotrack_v2(str(path), config, strict=False)
    assert "head.cls_pred.bias" not in partial and "head.cls_pred.weight" in partial

    source["ban_head.cls_pred.0.bias"] = torch.zeros(3)     # wrong shape
    del source["ban_head.extra_layer.weight"]
    with pytest.raises(loaders.NanoTrackWeightsError, match=r"shape mismatch.*cls_pred"):
        loaders.convert_state_dict(source, loaders.expected_shapes(model), strict=True)


def test_missing_weights_file_says_where_it_looked_and_how_to_pass(tmp_path):
    config = registry.load_model_config("nanotrack")
    config = dict(config, weights="nowhere/nanotrackv2.pth", _source=str(tmp_path / "m.yaml"))
    missing = str(tmp_path / "nowhere" / "nanotrackv2.pth")
    with pytest.raises(loaders.NanoTrackWeightsError) as err:
        loaders.load_nanotrack_v2(missing, config)
    message = str(err.value)
    assert missing in message and "weights=PATH" in message
    with pytest.raises(loaders.NanoTrackWeightsError, match="weights=PATH"):
        loading.build_tracker("nanotrack", device="cpu", weights=str(tmp_path / "absent.pth"))


def test_native_checkpoint_passes_through(tmp_path):
    from siam_tracker_ros.core.checkpoints import save_checkpoint
    model = NanoTrack()
    config = registry.load_model_config("nanotrack")
    path = tmp_path / "finetuned.pt"
    save_checkpoint(str(path), model, {k: v for k, v in config.items() if not k.startswith("_")})
    state = loaders.load_nanotrack_v2(str(path), config)
    assert set(state) == set(model.state_dict())


# ---------------------------------------------------------------- tracker (no weights)
class _FakeAnchorFree(torch.nn.Module):
    """Peak at map cell (row, col); every point predicts a box of `box_wh` crop px
    centred on the cell's point."""
    exemplar_size, instance_size, stride = 127, 255, 8

    def __init__(self, size=25, row=15, col=9, box_wh=(40.0, 20.0)):
        super().__init__()
        self.size, self.row, self.col, self.box_wh = size, row, col, box_wh

    def template(self, z):
        return z.mean()

    def track(self, state, x):
        s = self.size
        cls = torch.zeros(1, 2, s, s)
        cls[0, 1] = -4.0
        cls[0, 1, self.row, self.col] = 6.0
        w, h = self.box_wh
        loc = torch.tensor([w / 2, h / 2, w / 2, h / 2]).reshape(1, 4, 1, 1).expand(1, 4, s, s)
        return {"cls": cls, "loc": loc.clone()}


def test_anchor_free_decode_follows_the_point_convention():
    model = _FakeAnchorFree()
    params = dict(type="anchor_free", penalty_k=0.0, window_influence=0.0, lr=1.0)
    params.pop("type")
    tracker = AnchorFreeTracker(model, params, device="cpu")
    image = np.full((480, 640, 3), 100, np.uint8)
    box = (300.0, 200.0, 40.0, 30.0)
    tracker.init(image, box)
    s_z = np.sqrt((40 + 35) * (30 + 35))
    scale = 127 / s_z
    result = tracker.track(image)
    # Point (15, 9) lies ((9 - 12) * 8, (15 - 12) * 8) crop px from the centre.
    expect_c = np.array([320.0, 215.0]) + np.array([-24.0, 24.0]) / scale
    lr = 1.0 / (1.0 + np.exp(-6.0))                     # lr' = penalty (1) * score * lr (1)
    expect_wh = (1 - lr) * np.array([40.0, 30.0]) + lr * np.array([40.0, 20.0]) / scale
    got_c = result.box[:2] + result.box[2:] / 2
    assert np.allclose(got_c, expect_c, atol=1e-3)
    assert np.allclose(result.box[2:], expect_wh, rtol=1e-3)
    assert result.confidence_map.shape == (25, 25) and result.confidence_map.dtype == np.float32
    assert 0.0 <= result.confidence_map.min() and result.confidence_map.max() <= 1.0
    assert result.score == pytest.approx(float(result.confidence_map.max()))
    # map_region: 25 cells of 8 / scale image px centred on the prior centre.
    assert np.allclose(result.map_region, [320 - 12.5 * 8 / scale, 215 - 12.5 * 8 / scale,
                                           25 * 8 / scale, 25 * 8 / scale])
    pts = score_points(16, 16)
    assert pts[0, 0, 0] == -128 and pts[0, 0, 15] == 112 and pts[1, 8, 0] == 0


def test_anchor_free_keeps_state_inside_the_image_and_restores_threads():
    model = _FakeAnchorFree(row=24, col=24, box_wh=(400.0, 400.0))
    tracker = AnchorFreeTracker(model, dict(penalty_k=0.0, window_influence=0.0, lr=1.0,
                                            cpu_threads=1), device="cpu")
    image = np.zeros((120, 160, 3), np.uint8)
    tracker.init(image, (140, 100, 15, 15))
    before = torch.get_num_threads()
    for _ in range(3):
        result = tracker.track(image)
        x, y, w, h = result.box
        assert x >= 0 and y >= 0 and x + w <= 160 + 1e-9 and y + h <= 120 + 1e-9
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- with the published weights
def test_matches_the_onnx_export(weights_dir):
    """Our module with nanotrackv2.pth == the ONNX pair cv2.TrackerNano runs."""
    if not hasattr(cv2, "dnn"):
        pytest.skip("cv2.dnn not available")
    model = NanoTrack().eval()
    model.load_state_dict(loaders.load_nanotrack_v2(
        str(weights_dir / "nanotrackv2.pth"), registry.load_model_config("nanotrack")))
    backbone = cv2.dnn.readNet(str(weights_dir / "nanotrack_backbone_sim.onnx"))
    head = cv2.dnn.readNet(str(weights_dir / "nanotrack_head_sim.onnx"))
    rng = np.random.default_rng(0)
    z = rng.integers(0, 256, (127, 127, 3), dtype=np.uint8)
    x = rng.integers(0, 256, (255, 255, 3), dtype=np.uint8)
    bz = cv2.dnn.blobFromImage(z, 1.0, (0, 0), (0, 0, 0), swapRB=False)
    bx = cv2.dnn.blobFromImage(x, 1.0, (0, 0), (0, 0, 0), swapRB=False)
    backbone.setInput(bz)
    zf = backbone.forward().copy()
    backbone.setInput(bx)
    xf = backbone.forward().copy()
    head.setInput(zf, "input1")
    head.setInput(xf, "input2")
    cls, loc = head.forward(["output1", "output2"])
    with torch.inference_mode():
        out = model(torch.from_numpy(bz), torch.from_numpy(bx))
    assert np.allclose(out["cls"].numpy(), cls, atol=1e-3 * max(1.0, np.abs(cls).max()))
    assert np.allclose(out["loc"].numpy(), loc, rtol=1e-3, atol=1e-2)


def test_build_tracker_runs_on_real_frames(weights_dir, sequences_dir):
    tracker = loading.build_tracker("nanotrack", device="cpu",
                                     weights=str(weights_dir / "nanotrackv2.pth"))
    assert isinstance(tracker, AnchorFreeTracker)
    for name in ("OTB_Crossing", "VOT2015_ball1"):
        seq = sequences_dir / name
        if not seq.is_dir():
            pytest.skip(f"sequence {seq} not found")
        frames, gt = _frames(seq, 6)
        tracker.init(frames[0], gt[0])
        h, w = frames[0].shape[:2]
        for frame in frames[1:]:
            result = tracker.track(frame)
            x, y, bw, bh = result.box
            assert 0 <= x and 0 <= y and bw > 0 and bh > 0
            assert x + bw <= w + 1e-6 and y + bh <= h + 1e-6
            assert 0.0 <= result.score <= 1.0
            cmap = result.confidence_map
            assert cmap.shape == (16, 16) and cmap.dtype == np.float32
            assert 0.0 <= cmap.min() and cmap.max() <= 1.0
            mx, my, mw, mh = result.map_region
            cx, cy = x + bw / 2, y + bh / 2
            assert mx <= cx <= mx + mw and my <= cy <= my + mh


# ---------------------------------------------------------------- acceptance vs cv2.TrackerNano
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, 0], b[:, 0])
    y0 = np.maximum(a[:, 1], b[:, 1])
    x1 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y1 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def success_auc(pred, gt) -> float:
    """OPE success AUC: mean over t in 0, 0.05, ..., 1.0 (21) of the fraction IoU > t."""
    ious = _iou(np.asarray(pred, float), np.asarray(gt, float))
    return float(np.mean([(ious > t).mean() for t in np.linspace(0.0, 1.0, 21)]))


def test_auc_within_0_02_of_cv2_tracker_nano(weights_dir, sequences_dir):
    """Frame 0 initialises both trackers with the ground truth; AUC over frames 1..N-1."""
    if not hasattr(cv2, "TrackerNano_create"):
        pytest.skip("this OpenCV build has no TrackerNano (needs opencv >= 4.7 with dnn)")
    names = sorted(p.name for p in sequences_dir.iterdir() if (p / "groundtruth.txt").is_file())
    if not names:
        pytest.skip(f"no sequences in {sequences_dir}")
    tracker = loading.build_tracker("nanotrack", device="cpu",
                                     weights=str(weights_dir / "nanotrackv2.pth"))
    rows, ours_time, ours_frames = [], 0.0, 0
    for name in names:
        frames, gt = _frames(sequences_dir / name)
        params = cv2.TrackerNano_Params()
        params.backbone = str(weights_dir / "nanotrack_backbone_sim.onnx")
        params.neckhead = str(weights_dir / "nanotrack_head_sim.onnx")
        peer = cv2.TrackerNano_create(params)
        peer.init(frames[0], tuple(int(round(v)) for v in gt[0]))
        peer_boxes = [peer.update(f)[1] for f in frames[1:]]

        tracker.init(frames[0], gt[0])
        start = time.perf_counter()
        our_boxes = [tracker.track(f).box for f in frames[1:]]
        ours_time += time.perf_counter() - start
        ours_frames += len(frames) - 1
        rows.append((name, success_auc(peer_boxes, gt[1:]), success_auc(our_boxes, gt[1:])))

    peer_mean = float(np.mean([r[1] for r in rows]))
    ours_mean = float(np.mean([r[2] for r in rows]))
    table = "\n".join(f"  {n:26s} cv2.TrackerNano {a:.3f}  nanotrack {b:.3f}" for n, a, b in rows)
    report = (f"OPE success AUC (21 IoU thresholds, frames 1..N-1):\n{table}\n"
              f"  {'mean':26s} cv2.TrackerNano {peer_mean:.3f}  nanotrack {ours_mean:.3f}\n"
              f"  nanotrack tracker wall time on CPU {1000 * ours_time / ours_frames:.1f} ms/frame")
    print("\n" + report)
    assert abs(ours_mean - peer_mean) <= 0.02, report
    assert ours_mean > 0.6, report
