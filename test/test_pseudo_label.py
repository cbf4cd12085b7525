"""Pseudo-label mining (train/pseudo_label.py) on clips the test draws."""
import numpy as np

from siam_tracker_ros.train import pseudo_label as P


def _clip(n=20, cut_at=None):
    frames = []
    for t in range(n):
        img = np.full((120, 160, 3), 90, np.uint8)
        img[:, :80] = (40, 120, 60)
        if cut_at is not None and t >= cut_at:
            img[:] = (200, 30, 200)
        x = 20 + 4 * t
        img[40:70, x:x + 20] = (20, 20, 230)
        frames.append(img)
    return frames


class _ScriptedTracker:
    """Returns a scripted box per frame index (seen via the frame's red square) plus a drift."""

    def __init__(self, drift):
        self.drift = drift
        self.t = 0
        self.last_score = 0.9

    def init(self, frame, box):
        self.box = np.asarray(box, np.float64)
        self.t = 0

    def update(self, frame):
        ys, xs = np.nonzero((frame[..., 2] > 200) & (frame[..., 0] < 50))
        self.t += 1
        b = np.array([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1], np.float64)
        b[0] += self.drift * self.t
        return True, b


def test_shots_split_at_a_cut():
    assert P.split_shots(_clip(20), 5) == [(0, 20)]
    assert P.split_shots(_clip(20, cut_at=12), 5) == [(0, 12), (12, 20)]


def test_forward_backward_keeps_consistent_and_rejects_drifting_tracks():
    frames = _clip(12)
    box = np.array([20, 40, 20, 30], np.float64)
    kept = P.forward_backward_track(lambda: _ScriptedTracker(0.0), frames, box, min_iou=0.7, min_score=0.5)
    assert kept is not None and kept.shape == (12, 4)
    np.testing.assert_allclose(kept[-1], [20 + 4 * 11, 40, 20, 30])
    # A tracker that drifts 3 px per frame ends far off: backward disagrees.
    assert P.forward_backward_track(lambda: _ScriptedTracker(3.0), frames, box, 0.7, 0.5) is None


def test_low_peer_score_rejects_a_track():
    class Unsure(_ScriptedTracker):
        def update(self, frame):
            self.last_score = 0.2
            return super().update(frame)
    box = np.array([20, 40, 20, 30], np.float64)
    assert P.forward_backward_track(lambda: Unsure(0.0), _clip(8), box, 0.7, 0.5) is None


def test_motion_box_finds_the_moving_square():
    masks = P.motion_masks(_clip(20))
    boxes = P.moving_regions(masks[15], 100, 5000)
    assert boxes, "no moving region found"
    x, y, w, h = min(boxes, key=lambda b: abs(b[0] - (20 + 4 * 15)))
    assert abs(y - 40) <= 4 and abs(x - (20 + 4 * 15)) <= 8 and 15 <= w <= 34 and 25 <= h <= 40


def test_excluded_frames_are_never_mined():
    frames = _clip(30)
    import cv2, os, tempfile
    d = tempfile.mkdtemp()
    path = os.path.join(d, "clip.avi")
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for f in frames:
        w.write(f)
    w.release()
    rng = np.random.default_rng(0)
    got = list(P.mine_clip(path, lambda: _ScriptedTracker(0.0), rng, window=8, step=4, candidates=2,
                           min_iou=0.5, min_score=0.5, keep_static=1.0, exclude=[(0, 9)]))
    assert got, "nothing mined outside the excluded range"
    assert all(meta["first_frame"] >= 10 for _f, _b, meta in got)
    assert P.parse_exclude(["vtest.avi:0-119"]) == {"vtest.avi": [(0, 119)]}
