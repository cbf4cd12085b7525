"""The node's frame inbox and tracking session without rclpy (ros/inbox.py, ros/session.py):
init catch-up, image size changes, clock resets, orphans, max_targets and removals.

Messages are stand-ins with the fields the inbox reads (header stamp, width, height,
encoding); `decode` hands the session the frame's image."""
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ros_node_fixtures import load_clip

from siam_tracker_ros.core.tracking.base import TrackState
from siam_tracker_ros.ros import health as health_mod
from siam_tracker_ros.ros.inbox import Frame, FrameInbox

T0 = 1_780_000_000 * 1_000_000_000
DT = 33_000_000


def message(image, stamp, encoding="bgr8"):
    header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000))
    return SimpleNamespace(header=header, width=image.shape[1], height=image.shape[0], encoding=encoding,
                           image=image)


def frame(image, stamp, arrival=0.0, encoding="bgr8"):
    return Frame(message(image, stamp, encoding), stamp, arrival)


# ---------------------------------------------------------------------------- the inbox
def test_inbox_newest_busy_out_of_order_clock_reset_and_events():
    health = health_mod.NodeHealth()
    inbox = FrameInbox(cache_size=10, health=health, clock_jump_threshold=3.0, input_timeout=1.0)
    img = np.zeros((48, 64, 3), np.uint8)
    assert inbox.put(frame(img, T0 + 5 * DT, 0.0)) == []
    assert inbox.put(frame(img, T0 + 6 * DT, 0.1)) == []              # the first was still waiting
    assert health.dropped[health_mod.DROP_BUSY] == 1
    taken = inbox.take()
    assert taken.stamp == T0 + 6 * DT and inbox.take() is None
    assert inbox.confirm(taken) == (True, None)                       # decoded: its stamp counts now
    notes = inbox.put(frame(img, T0 + 2 * DT, 0.2))                   # 132 ms older: dropped
    assert [k for k, _ in notes] == ["drop"] and not inbox.waiting
    assert health.dropped[health_mod.DROP_OUT_OF_ORDER] == 1
    assert inbox.put(frame(img, T0 + 6 * DT, 0.3)) == [] and inbox.waiting   # same stamp: accepted
    inbox.confirm(inbox.take())
    reset = frame(img, T0 - 10_000_000_000, 0.4)                      # 10 s back: a clock reset ...
    assert inbox.put(reset) == [] and health.counts["clock_resets"] == 0   # ... once it decodes
    accepted, note = inbox.confirm(inbox.take())
    assert accepted and note[0] == "warn" and health.counts["clock_resets"] == 1
    assert [f.stamp for f in inbox.cache.frames] == [T0 - 10_000_000_000]    # the old timeline dropped
    assert inbox.put(frame(img, T0 - 10_000_000_000 + DT, 0.5)) == []        # the new one goes on
    notes = inbox.put(frame(img, T0 - 10_000_000_000 + 2 * DT, 2.0, encoding="rgb8"))
    assert sorted(k for k, _ in notes) == ["encoding", "info"]        # another encoding, a 1.5 s gap
    assert health.counts["input_gaps"] == 1 and health.counts["encoding_changes"] == 1
    inbox.resize(2)
    assert len(inbox.cache.frames) == 2


def test_only_decoded_frames_count_for_the_stamp_order():
    """F3: a frame stamped 2.9 s in the future that never decodes does not make the real
    frames after it out of order; a frame accepted on arrival but older than one decoded
    meanwhile is dropped when it is decoded (the answers' stamps never go back)."""
    health = health_mod.NodeHealth()
    inbox = FrameInbox(cache_size=10, health=health, clock_jump_threshold=3.0)
    img = np.zeros((48, 64, 3), np.uint8)
    inbox.put(frame(img, T0, 0.0))
    inbox.confirm(inbox.take())
    bogus = frame(img, T0 + 2_900_000_000, 0.1)
    inbox.put(bogus)
    assert inbox.take() is bogus
    bogus.unreadable = "cannot decode"                     # the worker could not decode it
    for k in range(1, 4):
        assert inbox.put(frame(img, T0 + k * DT, 0.1 + 0.1 * k)) == []
        accepted, note = inbox.confirm(inbox.take())
        assert accepted and note is None
    assert health.dropped[health_mod.DROP_OUT_OF_ORDER] == 0
    assert inbox.find(0).stamp == T0 + 3 * DT and inbox.find(bogus.stamp) is bogus   # (an init on it: refused)
    late = frame(img, T0 + 3 * DT - 1000, 0.5)             # older than the newest decoded, arrives ...
    newer = frame(img, T0 + 5 * DT, 0.6)
    inbox._newest_stamp = T0 + 2 * DT                      # ... before that one was confirmed
    assert inbox.put(late) == []
    inbox.take()
    inbox.put(newer)
    assert inbox.confirm(inbox.take()) == (True, None)
    accepted, note = inbox.confirm(late)
    assert not accepted and note[0] == "drop" and late not in inbox.cache.frames


# ---------------------------------------------------------------------------- the session
@pytest.fixture(scope="module")
def loaded():
    import torch

    from siam_tracker_ros.core.tracking import loading
    torch.set_num_threads(1)
    return loading.load("default", device="cpu", engine="torch")


@pytest.fixture(scope="module")
def clip():
    return load_clip(10)


class Lines:
    """The session's log: (level, text, kind)."""

    def __init__(self):
        self.lines = []

    def __call__(self, level, text, kind=None):
        self.lines.append((level, text, kind))

    def errors(self, kind=None):
        return [t for lv, t, k in self.lines if lv == "error" and (kind is None or k == kind)]


def make(loaded, supervisor=True, cache_size=30):
    from siam_tracker_ros.ros import params
    from siam_tracker_ros.ros.session import TrackingSession
    health = health_mod.NodeHealth()
    inbox = FrameInbox(cache_size, health)
    log = Lines()
    sup = params.supervisor_params(params.defaults()) if supervisor else None
    session = TrackingSession(loaded, sup, inbox, health, lambda f: f.msg.image, log)
    return session, inbox, health, log


def test_init_on_an_old_frame_catches_up_through_the_cache(loaded, clip):
    """Frames 0..5 arrive before the worker runs and the init names frame 0: the target is
    initialised on frame 0, tracked on catch_up_max (2) evenly spaced cached frames between
    (frames 1 and 4, the newest of them always among them), then answered on frame 5; the
    init is acknowledged on frame 0. The boxes are those of the same supervised tracker
    run on frames 0 (init), 1, 4, 5."""
    from siam_tracker_ros.core.tracking.monitor import TargetSupervisor
    from siam_tracker_ros.ros import params
    session, inbox, health, log = make(loaded)
    for i in range(6):
        inbox.put(frame(clip.frames[i], T0 + i * DT, float(i)))
    session.request_init(T0, clip.init_box, 1, max_targets=8)
    report = session.process(inbox.take(), catch_up_max=2)
    assert [a[1].target_id for a in report.acks] == [1] and report.acks[0][0].stamp == T0
    assert report.frame.stamp == T0 + 5 * DT
    assert [(t.target_id, t.state) for t in report.targets] == [(1, TrackState.TRACKING)]
    assert session.records[1].frames == 3 and health.counts["inits_applied"] == 1

    ref = TargetSupervisor(loaded.new_tracker(), **params.supervisor_params(params.defaults()))
    ref.init(clip.frames[0], clip.init_box)
    for i in (1, 4, 5):
        want = ref.step(clip.frames[i])
    np.testing.assert_array_equal(report.targets[0].box, want.box)
    assert report.targets[0].score == want.score


def test_init_on_the_answered_frame_is_its_answer(loaded, clip):
    session, inbox, health, log = make(loaded)
    inbox.put(frame(clip.frames[0], T0))
    session.request_init(T0, clip.init_box, 4, max_targets=8)
    report = session.process(inbox.take(), catch_up_max=5)
    assert report.acks == []
    t = report.targets[0]
    assert (t.target_id, t.state, t.score, t.result) == (4, TrackState.TRACKING, 1.0, None)
    np.testing.assert_allclose(t.box, clip.init_box)
    assert session.records[4].frames == 0


def test_image_size_change_rescales_or_orphans(loaded, clip):
    """Same aspect ratio: a TRACKING target is initialised again at its box scaled; another
    aspect ratio: every target becomes an orphan (LOST, no box) until a new init. Cached
    frames of the old size are dropped."""
    session, inbox, health, log = make(loaded)
    inbox.put(frame(clip.frames[0], T0))
    session.request_init(T0, clip.init_box, 2, max_targets=8)
    session.process(inbox.take(), 5)
    inbox.put(frame(clip.frames[1], T0 + DT))
    before = session.process(inbox.take(), 5).targets[0].box
    big = cv2.resize(clip.frames[2], None, fx=2.0, fy=2.0)
    inbox.put(frame(big, T0 + 2 * DT))
    report = session.process(inbox.take(), 5)
    assert health.counts["size_changes"] == 1 and [f.stamp for f in inbox.cache.frames] == [T0 + 2 * DT]
    assert report.targets[0].state == TrackState.TRACKING
    assert abs(report.targets[0].box[0] - before[0] * 2.0) < 40      # near where it was, in the new pixels
    wide = cv2.resize(clip.frames[3], (clip.size[0] * 3, clip.size[1]))
    inbox.put(frame(wide, T0 + 3 * DT))
    report = session.process(inbox.take(), 5)
    assert [(t.target_id, t.state, t.box) for t in report.targets] == [(2, TrackState.LOST, None)]
    assert session.mt.ids == [] and "aspect ratio" in session.orphans[2].note
    assert session.view()[2].state == TrackState.LOST
    session.request_init(T0 + 3 * DT, [10, 10, 40, 40], 2, max_targets=8)    # a new init ends it
    inbox.put(frame(wide, T0 + 4 * DT))
    report = session.process(inbox.take(), 5)
    assert session.mt.ids == [2] and 2 not in session.orphans and report.targets[0].state == TrackState.TRACKING


def test_init_drawn_before_a_size_change_is_scaled(loaded, clip):
    session, inbox, health, log = make(loaded)
    inbox.put(frame(clip.frames[0], T0))
    session.process(inbox.take(), 5)
    session.request_init(T0, clip.init_box, 3, max_targets=8)             # drawn on the small frame ...
    inbox.put(frame(cv2.resize(clip.frames[1], None, fx=2.0, fy=2.0), T0 + DT))   # ... the next is 2x
    report = session.process(inbox.take(), 5)
    assert [(t.target_id, t.state) for t in report.targets] == [(3, TrackState.TRACKING)]
    np.testing.assert_allclose(report.targets[0].box, clip.init_box * 2.0, atol=1e-6)


def test_a_failing_target_becomes_an_orphan_the_others_go_on(loaded, clip):
    session, inbox, health, log = make(loaded)
    inbox.put(frame(clip.frames[0], T0))
    session.request_init(T0, clip.init_box, 1, max_targets=8)
    session.request_init(T0, [280.0, 40.0, 50.0, 50.0], 2, max_targets=8)
    session.process(inbox.take(), 5)

    def boom(image):
        raise RuntimeError("out of memory")
    session.mt.tracker(2).track_prepare = boom
    for k in (1, 2):
        inbox.put(frame(clip.frames[k], T0 + k * DT))
        report = session.process(inbox.take(), 5)
        got = {t.target_id: t for t in report.targets}
        assert got[1].state == TrackState.TRACKING and got[1].box[2] > 0
        assert (got[2].state, got[2].box, got[2].score) == (TrackState.LOST, None, 0.0)
    assert log.errors("tracking") == ["target 2: tracking failed: RuntimeError: out of memory; send a new init"]
    assert session.ids == [1, 2] and session.mt.ids == [1] and session.records[1].frames == 2


def test_max_targets_removal_and_reset(loaded, clip):
    session, inbox, health, log = make(loaded)
    session.request_init(T0, clip.init_box, 1, max_targets=1)
    assert log.errors("init_no_image")                                  # no frame yet
    inbox.put(frame(clip.frames[0], T0))
    session.request_init(T0 + 1, clip.init_box, 1, max_targets=1)        # the nearest frame is used
    assert session.request_init(T0, clip.init_box, 2, max_targets=1)     # beyond max_targets: the reason
    assert health.counts["inits_refused"] == 2 and log.errors("init_full")
    why = session.request_init(T0, [1e6, 1e6, 5, 5], 1, max_targets=1)  # outside the frame: refused at once
    assert "outside" in why and log.errors("init_box") and health.counts["inits_refused"] == 3
    assert "target_id 0" in session.request_init(T0, clip.init_box, 0, max_targets=8)
    assert session.request_init(T0, clip.init_box, 1, max_targets=1) is None   # the newest per id wins
    session.process(inbox.take(), 5)
    assert health.counts["inits_coalesced"] == 1 and health.counts["inits_applied"] == 1
    assert health.counts["inits_refused"] == 4 and session.ids == [1]
    session.request_removal(1)
    session.request_removal(9)
    session.process(None, 5)
    assert session.ids == [] and any("remove: no target 9" in t for _, t, _ in log.lines)
    session.request_init(T0, clip.init_box, 5, max_targets=1)
    session.process(None, 5)
    assert session.clear() == 1 and session.ids == [] and session.view() == {}


def test_worker_side_refusals_are_counted(loaded, clip):
    """An init accepted from what the message says is refused by the worker when its frame does
    not decode, or when the tracker refuses it: logged and counted, never lost silently; the
    frame's processing goes on."""
    session, inbox, health, log = make(loaded)
    inbox.put(frame(clip.frames[0], T0))
    session.process(inbox.take(), 5)
    broken = frame(clip.frames[1], T0 + DT)
    inbox.put(broken)
    assert session.request_init(T0 + DT, clip.init_box, 1, max_targets=8) is None
    broken.msg.image = None                     # the decode stand-in: this frame does not decode
    report = session.process(inbox.take(), 5)
    assert report.frame is None and health.dropped[health_mod.DROP_UNREADABLE] == 1
    assert health.counts["inits_refused"] == 1 and "cannot be read" in log.errors("init_frame")[0]
    assert "cannot be read" in session.request_init(T0 + DT, clip.init_box, 1, max_targets=8)

    def refuse(*args):
        raise MemoryError("no room for a template")
    session.mt.add = refuse
    inbox.put(frame(clip.frames[2], T0 + 2 * DT))
    assert session.request_init(T0 + 2 * DT, clip.init_box, 2, max_targets=8) is None
    report = session.process(inbox.take(), 5)
    assert report.frame.stamp == T0 + 2 * DT and session.ids == []
    assert health.counts["inits_refused"] == 3 and "MemoryError" in log.errors("init_failed")[0]


def test_session_and_inbox_import_no_ros():
    """They run (and are tested) where rclpy is not installed."""
    import subprocess
    import sys
    code = ("import sys, siam_tracker_ros.ros.session, siam_tracker_ros.ros.inbox; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'std_msgs') "
            "or m.startswith('siam_tracker_ros.msg')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
