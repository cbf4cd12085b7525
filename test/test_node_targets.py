"""The node's target set (ros/targets.py): ids, orphans, image size changes."""
import cv2
import numpy as np
import pytest

from ros_node_fixtures import load_clip

from siam_tracker_ros.core.tracking.base import TrackState


@pytest.fixture(scope="module")
def setup():
    import torch

    from siam_tracker_ros.core.engines import wrap_engine
    from siam_tracker_ros.core.models import registry
    from siam_tracker_ros.ros import params, targets
    torch.set_num_threads(1)
    config, model, _ = registry.load_model("default")
    engine = wrap_engine(model, config, "torch", device="cpu")

    def make():
        return targets.TargetSet(lambda: registry.build_tracker_from_config(config, model=engine, device="cpu"),
                                 targets.supervisor_params_from(params.defaults()))
    return make, load_clip(8)


def test_add_track_remove_clear(setup):
    make, clip = setup
    ts = make()
    ts.add(4, clip.frames[0], clip.init_box)
    ts.add(1, clip.frames[0], [280.0, 40.0, 50.0, 50.0])
    assert ts.ids == [1, 4] and len(ts) == 2 and 4 in ts
    results, changes = ts.track(clip.frames[1])
    assert sorted(results) == [1, 4] and changes == []
    assert ts.records[4].frames == 1 and ts.states() == {1: "TRACKING", 4: "TRACKING"}
    only, _ = ts.track(clip.frames[2], ids=[4, 99])       # a subset; unknown ids left out
    assert list(only) == [4] and ts.records[1].frames == 1 and ts.records[4].frames == 2
    assert ts.track(clip.frames[2], ids=[]) == ({}, [])
    assert ts.remove(1) and not ts.remove(1) and ts.ids == [4]
    ts.clear()
    assert ts.ids == [] and ts.track(clip.frames[3]) == ({}, [])


def test_rescale_same_aspect_scales_the_box_and_keeps_tracking(setup):
    make, clip = setup
    ts = make()
    ts.add(2, clip.frames[0], clip.init_box)
    r, _ = ts.track(clip.frames[1])
    before = r[2].box.copy()
    big = cv2.resize(clip.frames[2], None, fx=2.0, fy=2.0)
    notes = ts.rescale(big, clip.size)
    assert len(notes) == 1 and "scaled by 2.000 x 2.000" in notes[0]
    np.testing.assert_allclose(ts.records[2].box, before * 2.0, atol=1e-6)
    r, _ = ts.track(big)
    assert r[2].state == TrackState.TRACKING
    assert abs(r[2].box[0] - before[0] * 2.0) < 40      # near where it was, in the new pixels


def test_rescale_other_aspect_or_lost_makes_orphans(setup):
    make, clip = setup
    ts = make()
    ts.add(2, clip.frames[0], clip.init_box)
    ts.add(3, clip.frames[0], [280.0, 40.0, 50.0, 50.0])
    ts.records[3].state = TrackState.LOST          # as the supervisor would have it
    wide = cv2.resize(clip.frames[1], (clip.size[0] * 2, clip.size[1]))
    notes = ts.rescale(wide, clip.size)
    assert len(notes) == 2 and all("LOST until a new init" in n for n in notes)
    assert ts.ids == [2, 3] and ts.tracked_ids == [] and ts.states() == {2: "LOST", 3: "LOST"}
    assert "aspect ratio" in ts.orphans[2].note
    results, _ = ts.track(wide)
    assert results == {}
    ts.add(2, wide, [10, 10, 40, 40])              # a new init ends the orphan state
    assert ts.tracked_ids == [2] and 2 not in ts.orphans
    assert ts.remove(3) and ts.ids == [2]


def test_a_target_whose_tracking_raises_becomes_an_orphan(setup):
    """Target 3's tracker raises on frame 2: it becomes an orphan (LOST, zero box, a note
    naming the failure) reported as a change to LOST and in last_failures; targets 1 and 4
    keep tracking exactly as without it; a new init brings 3 back."""
    make, clip = setup
    boxes = {1: [280.0, 40.0, 50.0, 50.0], 3: [20.0, 120.0, 60.0, 60.0], 4: clip.init_box}
    ref = make()
    for i in (1, 4):
        ref.add(i, clip.frames[0], boxes[i])
    want = [ref.track(f)[0] for f in clip.frames[1:5]]

    ts = make()
    for i, b in boxes.items():
        ts.add(i, clip.frames[0], b)
    frame_no = [0]
    prepare = ts.mt.tracker(3).track_prepare

    def failing_prepare(image):
        if frame_no[0] == 2:
            raise ValueError("crop outside the image")
        return prepare(image)
    ts.mt.tracker(3).track_prepare = failing_prepare
    for k, frame in enumerate(clip.frames[1:5]):
        frame_no[0] = k + 1
        results, changes = ts.track(frame)
        for i in (1, 4):
            np.testing.assert_array_equal(results[i].box, want[k][i].box)
            assert results[i].score == want[k][i].score
        if frame_no[0] < 2:
            assert sorted(results) == [1, 3, 4] and ts.last_failures == []
        elif frame_no[0] == 2:
            assert sorted(results) == [1, 4]
            assert (3, TrackState.TRACKING, TrackState.LOST, 0.0) in changes
            note = "tracking failed: ValueError: crop outside the image; send a new init"
            assert ts.last_failures == [f"target 3: {note}"] and ts.orphans[3].note == note
        else:                                      # an orphan: reported, not tracked, no new change
            assert sorted(results) == [1, 4] and ts.last_failures == []
            assert all(c[0] != 3 for c in changes)
    assert ts.ids == [1, 3, 4] and ts.tracked_ids == [1, 4] and 3 not in ts.records
    assert ts.states() == {1: "TRACKING", 3: "LOST", 4: "TRACKING"}
    assert ts.records[1].frames == ts.records[4].frames == 4
    ts.add(3, clip.frames[5], boxes[3])            # a new init ends the orphan state
    results, _ = ts.track(clip.frames[6])
    assert sorted(results) == [1, 3, 4] and 3 not in ts.orphans and ts.last_failures == []
