"""Several targets in one node process (issue 6): per-target results equal single-target
core runs (TargetSupervisor over the same frames) when the node processes every frame
(reliable QoS, each frame published after the previous one was answered); the array
message carries all targets of a frame; ~/remove drops one id, ~/reset all."""
import signal
import time

import numpy as np
import pytest

from ros_node_fixtures import RELIABLE_ARGS, NodeUnderTest, Recorder, load_clip, reliable_qos, statuses

from siam_tracker_ros.core.tracking.base import TrackState

pytestmark = pytest.mark.ros_env

T0 = 1_750_000_000 * 1_000_000_000
DT = 33_000_000
TIMEOUT = 30.0
N_FRAMES = 16


def core_runs(clip, boxes, n):
    """What a single-target supervisor gives per frame for each box (this process, 1 thread)."""
    import torch

    from siam_tracker_ros.core.tracking import loading
    from siam_tracker_ros.core.tracking.monitor import TargetSupervisor
    from siam_tracker_ros.ros import params
    torch.set_num_threads(1)
    values = params.defaults()
    loaded = loading.load("default", device="cpu", engine=values["engine"])     # as the node loads it
    sup_params = params.supervisor_params(values)
    out = {}
    for target_id, box in boxes.items():
        sup = TargetSupervisor(loaded.new_tracker(), **sup_params)
        sup.init(clip.frames[0], box)
        out[target_id] = [sup.step(clip.frames[i]) for i in range(1, n)]
    return out


def test_two_targets_equal_single_target_runs(tmp_path):
    from siam_tracker_ros.msg import TrackedObjectArray
    from std_msgs.msg import UInt32
    clip = load_clip(N_FRAMES)
    boxes = {3: clip.init_box.astype(np.float64), 9: np.array([280.0, 40.0, 50.0, 50.0])}
    expected = core_runs(clip, boxes, N_FRAMES)
    node = NodeUnderTest(tmp_path / "ros_log", extra_args=RELIABLE_ARGS, image_qos=reliable_qos())
    c, proc = node.client, node.proc
    arrays = Recorder(c, TrackedObjectArray, "/siam_tracker/tracked_objects")
    remove = c.node.create_publisher(UInt32, "/siam_tracker/remove", 10)
    try:
        c.publish_frame(clip.frames[0], T0)
        assert c.wait_for(lambda: c.objects_for(T0), TIMEOUT), proc.output
        mark = len(proc.lines)
        for target_id, box in boxes.items():
            c.send_init(box, stamp=T0, target_id=target_id)
        for target_id in boxes:
            assert proc.wait_for_line(rf"target {target_id} initialised", TIMEOUT, start=mark), proc.output
        # each init is acknowledged on frame 0 (TRACKING, its box, score 1)
        assert c.wait_for(lambda: len(c.objects_for(T0)) == 3, TIMEOUT), proc.output
        acks = {r.msg.target_id: r.msg for r in c.objects_for(T0)[1:]}
        assert sorted(acks) == [3, 9] and all(a.score == 1.0 for a in acks.values())
        for i in range(1, N_FRAMES):
            stamp = T0 + i * DT
            c.publish_frame(clip.frames[i], stamp)
            assert c.wait_for(lambda: len(c.objects_for(stamp)) == 2 and arrays.for_stamp(stamp), TIMEOUT), \
                f"frame {i}: {len(c.objects_for(stamp))} results\n{proc.output}"
            got = {r.msg.target_id: r.msg for r in c.objects_for(stamp)}
            assert sorted(got) == [3, 9]
            array = arrays.for_stamp(stamp)
            assert len(array) == 1 and sorted(o.target_id for o in array[0].msg.objects) == [3, 9]
            for o in array[0].msg.objects:    # the array holds the same messages
                m = got[o.target_id]
                assert (o.state, o.x, o.y, o.width, o.height, o.score) == \
                       (m.state, m.x, m.y, m.width, m.height, m.score)
            for target_id, runs in expected.items():
                ref, m = runs[i - 1], got[target_id]
                assert m.state == int(ref.state), (i, target_id, m.state, ref.state)
                assert abs(m.score - ref.score) < 1e-5, (i, target_id, m.score, ref.score)
                if ref.state == TrackState.TRACKING:
                    np.testing.assert_allclose([m.x, m.y, m.width, m.height], ref.box, atol=2e-3,
                                               err_msg=f"frame {i} target {target_id}")
                else:
                    assert (m.x, m.y, m.width, m.height) == (0.0, 0.0, 0.0, 0.0)
        tracked = sum(int(r.state == TrackState.TRACKING) for runs in expected.values() for r in runs)
        print(f"{N_FRAMES - 1} frames x 2 targets equal to single-target runs ({tracked} TRACKING results)")

        # ~/remove drops one id; the other goes on.
        remove.publish(UInt32(data=9))
        assert proc.wait_for_line(r"target 9 removed", TIMEOUT), proc.output
        stamp = T0 + N_FRAMES * DT
        c.publish_frame(clip.frames[N_FRAMES - 1], stamp)
        assert c.wait_for(lambda: c.objects_for(stamp), TIMEOUT), proc.output
        time.sleep(0.2)
        assert [r.msg.target_id for r in c.objects_for(stamp)] == [3]
        # per-target diagnostics: the node's status lists the ids; each target has its own status
        # with the supervisor's evidence
        assert c.wait_for(lambda: c.diagnostic_values().get("target_ids") == "3", 5.0), c.diagnostic_values()
        target_status = [s for s in statuses(c) if s.name == "siam_tracker: target 3"][-1]
        values = {kv.key: kv.value for kv in target_status.values}
        assert values["state"] in ("TRACKING", "LOST") and int(values["frames_tracked"]) >= N_FRAMES - 1
        assert "evidence_badness" in values, values

        # ~/reset drops all: IDLE results (target id 0) and an empty array
        response = c.reset()
        assert response is not None and response.success and "1 target" in response.message
        stamp += DT
        c.publish_frame(clip.frames[0], stamp)
        assert c.wait_for(lambda: c.objects_for(stamp) and arrays.for_stamp(stamp), TIMEOUT), proc.output
        m = c.objects_for(stamp)[0].msg
        assert (m.state, m.target_id) == (TrackState.IDLE, 0)
        assert list(arrays.for_stamp(stamp)[0].msg.objects) == []
    finally:
        code = node.close(signal.SIGINT)
    assert code == 0, proc.output
    assert "Traceback" not in proc.output, proc.output
