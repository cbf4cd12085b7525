"""F4: a non-finite or empty box is never reported TRACKING: the tracker refuses such a
result (LOST, the target where it was), the supervisor goes LOST at once, and the
node's message fill sends LOST whatever it is given. No rclpy."""
import math

import numpy as np
import pytest

from siam_tracker_ros.core.tracking.base import TrackState


@pytest.fixture(scope="module")
def loaded():
    import torch

    from siam_tracker_ros.core.tracking import loading
    torch.set_num_threads(1)
    return loading.load("default", device="cpu", engine="torch")


def frames():
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(3)]


def test_a_nan_hyper_parameter_gives_lost_not_a_nan_box(loaded):
    imgs = frames()
    tracker = loaded.new_tracker()
    tracker.init(imgs[0], [60, 40, 30, 30])
    before = tracker.box.copy()
    tracker.params["lr"] = float("nan")          # what a node parameter without a range let through
    r = tracker.track(imgs[1])
    assert r.state == TrackState.LOST and r.score == 0.0 and r.evidence["non_finite_result"] == 1.0
    assert np.all(np.isfinite(r.box)) and r.box[2] > 0 and r.box[3] > 0
    np.testing.assert_allclose(tracker.box, before)  # the state was put back, not poisoned
    tracker.params["lr"] = 0.3
    assert tracker.track(imgs[2]).state != TrackState.LOST or tracker.lost_threshold > 0
    assert np.all(np.isfinite(tracker.box))


def test_the_supervisor_goes_lost_at_once(loaded):
    from siam_tracker_ros.core.tracking.monitor import TargetSupervisor
    imgs = frames()
    sup = TargetSupervisor(loaded.new_tracker())
    sup.init(imgs[0], [60, 40, 30, 30])
    sup.tracker.params["window_influence"] = float("nan")
    r = sup.step(imgs[1])
    assert r.state == TrackState.LOST
    assert r.box is None or np.all(np.isfinite(r.box))


@pytest.mark.parametrize("box", [[np.nan, 1, 2, 3], [1, 2, np.inf, 3], [1, 2, 0, 3], [1, 2, 3, -1], None])
def test_the_message_fill_never_sends_a_bad_box_as_tracking(box):
    from siam_tracker_ros.ros.outputs import tracked_object_fields
    f = tracked_object_fields(1, TrackState.TRACKING, box, 0.99, 100, 80)
    assert f["state"] == TrackState.LOST and f["score"] == 0.0
    assert (f["x"], f["y"], f["width"], f["height"]) == (0.0, 0.0, 0.0, 0.0)
    g = tracked_object_fields(1, TrackState.TRACKING, [1, 2, 3, 4], float("nan"), 100, 80)
    assert g["state"] == TrackState.TRACKING and g["score"] == 0.0 and not math.isnan(g["score"])
