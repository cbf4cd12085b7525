"""Hostile input against the tracker node in its own process, from an outside rclpy client
(issue 15 F1-F7 and the lower findings). Every attack is followed by good frames that
must be answered; the node must end with exit code 0 and no traceback; no TrackedObject
in state TRACKING may carry a non-finite or empty box.

Two node processes: a lifecycle node on compressed input (decompression bombs, a
future-stamped undecodable frame, inits naming them, the finalized state) and a plain
node on raw input under use_sim_time without /clock (diagnostics, the log flood, NaN
parameters, init bursts on the topic and the service). Bounds are on counts and bytes,
never on latencies (the latency ratio is printed, not asserted: the machines are shared).
"""
import signal
import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from ros_node_fixtures import RELIABLE_ARGS, NodeUnderTest, load_clip, reliable_qos, statuses, wait_until

from siam_tracker_ros.core import geometry
from siam_tracker_ros.core.tracking.base import TrackState

pytestmark = pytest.mark.ros_env

T0 = 1_790_000_000 * 1_000_000_000
DT = 33_000_000
TIMEOUT = 30.0
ERROR = b"\x02"
RSS_BOUND = 1.5              # RSS after 30 bomb messages < RSS_BOUND x RSS before
LOG_BYTES_PER_S = 4000       # node output while a 100 kB encoding alternates with good frames


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, idat: bytes = None, size: int = None) -> bytes:
    """A PNG whose (valid, CRC-checked) IHDR claims width x height, with a tiny IDAT; padded
    with a tEXt chunk to `size` bytes."""
    head = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    body = png_chunk(b"IDAT", zlib.compress(b"\x00" * 64) if idat is None else idat) + png_chunk(b"IEND", b"")
    if size is not None:
        body = png_chunk(b"tEXt", b"c\x00" + b"x" * (size - len(head) - len(body) - 14)) + body
    return head + body


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def assert_no_bad_tracking_box(client):
    with client._cond:
        bad = [r.msg for r in client.objects if r.msg.state == TrackState.TRACKING
               and not geometry.is_usable_box([r.msg.x, r.msg.y, r.msg.width, r.msg.height])]
    assert not bad, bad[:3]


def init_request(stamp, box, target_id):
    from siam_tracker_ros.ros.client import make_header
    from siam_tracker_ros.srv import InitTarget
    req = InitTarget.Request(header=make_header(stamp), target_id=int(target_id))
    req.x, req.y, req.width, req.height = (float(v) for v in box)
    return req


def test_compressed_bombs_future_frames_and_inits_on_them(tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from sensor_msgs.msg import CompressedImage

    from siam_tracker_ros.ros.client import make_header
    from siam_tracker_ros.ros.compressed_image import bgr_to_compressed_msg
    from siam_tracker_ros.srv import InitTarget
    clip = load_clip(20)
    node = NodeUnderTest(tmp_path / "ros_log", lifecycle=True, image_qos=reliable_qos(),
                         extra_args=("-p", "input:=compressed", *RELIABLE_ARGS))
    c, proc = node.client, node.proc
    jpegs = [bgr_to_compressed_msg(f, "jpeg") for f in clip.frames]
    state = {"stamp": T0, "i": 0}
    try:
        assert node.transition("configure") and node.transition("activate")
        pub = c.node.create_publisher(CompressedImage, "/test/image/compressed", reliable_qos())
        init_srv = c.node.create_client(InitTarget, "/siam_tracker/init_target")
        assert wait_until(lambda: pub.get_subscription_count() > 0 and init_srv.service_is_ready()
                          and c.node.count_publishers("/siam_tracker/tracked_object") > 0, TIMEOUT)
        time.sleep(0.3)

        def publish(data: bytes, stamp: int, fmt: str = "png"):
            msg = CompressedImage(header=make_header(stamp), format=fmt)
            msg.data = data
            pub.publish(msg)

        def good():
            """The clip's next frame; its answer must come. Returns ({target id: TrackedObject},
            seconds to the answer)."""
            state["stamp"] += DT
            state["i"] = (state["i"] + 1) % len(jpegs)
            stamp, msg = state["stamp"], jpegs[state["i"]]
            msg.header = make_header(stamp)
            t = time.monotonic()
            pub.publish(msg)
            assert c.wait_for(lambda: c.objects_for(stamp), TIMEOUT), \
                f"no answer to a good frame after the attack\n{proc.output[-4000:]}"
            answers = c.objects_for(stamp)
            return {r.msg.target_id: r.msg for r in answers}, max(r.time for r in answers) - t

        good()
        reply = node.call(init_srv, init_request(state["stamp"], clip.boxes[state["i"]], 1))
        assert reply.accepted, reply.reason
        baseline = [good() for _ in range(6)]
        assert baseline[-1][0][1].state == TrackState.TRACKING

        # F1: the 118-byte PNG claiming 40000x40000, then inits naming it (service by stamp,
        # topic by stamp and stamp 0): refused before any decoding, the node goes on.
        bomb = png_claiming(40000, 40000, size=118)
        assert len(bomb) == 118
        state["stamp"] += DT
        publish(bomb, state["stamp"])
        reply = node.call(init_srv, init_request(state["stamp"], [10, 10, 50, 50], 3))
        assert not reply.accepted and "max_image_pixels" in reply.reason, reply.reason
        c.send_init([10, 10, 50, 50], stamp=state["stamp"], target_id=3)
        c.send_init([10, 10, 50, 50], stamp=0, target_id=3)
        objects, _ = good()
        assert objects[1].state == TrackState.TRACKING
        # refused in the callback from the header, or as unreadable once the worker tried it
        assert proc.wait_for_line(r"ERROR.*init ignored: the frame it names .*40000x40000.*max_image_pixels",
                                  TIMEOUT), proc.output

        # F3: an undecodable 1x1 frame stamped 2.9 s ahead, four times: no good frame is dropped.
        bogus = png_claiming(1, 1, idat=b"not a zlib stream")
        attacked = []
        for k in range(4):
            publish(bogus, state["stamp"] + 2_900_000_000 + k * DT)
            attacked += [good() for _ in range(3)]
        assert attacked[-1][0][1].state == TrackState.TRACKING
        assert int(c.diagnostic_values().get("dropped_out_of_order", 0)) == 0, c.diagnostic_values()
        ratio = np.median([t for _, t in attacked]) / np.median([t for _, t in baseline])
        print(f"\nuntouched target: median answer time under the future-frame attack / baseline = {ratio:.2f}")

        # F6 (decoder): corrupt JPEGs (a restart marker in the middle of the scan), which libjpeg
        # decodes printing "Corrupt JPEG data" on stderr per frame: captured, counted, logged once
        # a second at most, never printed raw.
        data = bytes(jpegs[0].data)
        corrupt = data[:len(data) // 2] + b"\xff\xd3" + data[len(data) // 2:]
        mark, t_attack = len(proc.lines), time.monotonic()
        for _ in range(15):
            state["stamp"] += DT
            publish(corrupt, state["stamp"], fmt="jpeg")
            time.sleep(0.1)                      # room for the worker to take it (not a bound)
            good()
        duration = time.monotonic() - t_attack
        lines = proc.lines[mark:]
        assert not any(line.startswith(("Corrupt JPEG", "Premature end")) for line in lines), lines
        decoder_lines = [line for line in lines if "decoder:" in line]
        assert decoder_lines and len(decoder_lines) <= duration + 2, (duration, decoder_lines)
        assert c.wait_for(lambda: int(c.diagnostic_values().get("decoder_warnings", 0)) > 0, 5.0)

        # F2: 30 genuine 4096x4096 PNGs (~50 MB each decoded), each named by an init: the cache
        # holds them compressed, the worker decodes them once at a time. RSS stays bounded.
        big = cv2.imencode(".png", np.zeros((4096, 4096, 3), np.uint8))[1].tobytes()
        for _ in range(3):
            good()
        rss_before = rss_bytes(proc.proc.pid)
        for _ in range(30):
            state["stamp"] += DT
            publish(big, state["stamp"])
            c.send_init([1000, 1000, 800, 800], stamp=state["stamp"], target_id=2)
            good()
        for _ in range(3):
            good()
        rss_after = rss_bytes(proc.proc.pid)
        print(f"RSS before {rss_before / 2**20:.0f} MiB, after 30 x {len(big) / 1024:.0f} kB PNG "
              f"(4096x4096) {rss_after / 2**20:.0f} MiB")
        assert rss_after < RSS_BOUND * rss_before, (rss_before, rss_after)

        # Lower: lifecycle shutdown while frames arrive (the worker is never left with destroyed
        # publishers); then the finalized node says so on /diagnostics.
        for _ in range(10):
            state["stamp"] += DT
            state["i"] = (state["i"] + 1) % len(jpegs)
            jpegs[state["i"]].header = make_header(state["stamp"])
            pub.publish(jpegs[state["i"]])
        shutdown = Transition(id=Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert node.call(node.change_state, ChangeState.Request(transition=shutdown)).success
        assert node.state() == "finalized"
        since = time.monotonic()
        assert c.wait_for(lambda: any(s.level == ERROR and "finalized" in s.message
                                      for s in statuses(c, since)), 10.0), \
            [(s.level, s.message) for s in statuses(c)][-3:]
        assert_no_bad_tracking_box(c)
        assert proc.proc.poll() is None
    finally:
        code = node.close(signal.SIGINT)
    assert code == 0, proc.output
    assert "Traceback" not in proc.output and "AttributeError" not in proc.output, proc.output


def test_raw_log_flood_nan_parameters_init_bursts_and_sim_time(tmp_path):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from siam_tracker_ros.msg import TargetInit
    from siam_tracker_ros.ros.client import make_header
    from siam_tracker_ros.ros.image_conversion import numpy_to_image_msg
    from siam_tracker_ros.srv import InitTarget
    clip = load_clip(20)
    # use_sim_time with nobody publishing /clock: the node's ROS clock stands at 0
    node = NodeUnderTest(tmp_path / "ros_log", extra_args=(*RELIABLE_ARGS, "-p", "use_sim_time:=true"),
                         image_qos=reliable_qos())
    c, proc = node.client, node.proc
    state = {"stamp": T0, "i": 0}
    try:
        # F5: /diagnostics on a wall-clock timer
        assert c.wait_for(lambda: statuses(c), 10.0), "no /diagnostics under use_sim_time without /clock"
        params = c.node.create_client(SetParameters, "/siam_tracker/set_parameters")
        # a client sending many calls at once needs a response queue as deep as their number
        init_srv = c.node.create_client(InitTarget, "/siam_tracker/init_target", qos_profile=reliable_qos(100))
        init_pub = c.node.create_publisher(TargetInit, "/siam_tracker/init", reliable_qos(100))
        assert wait_until(lambda: params.service_is_ready() and init_srv.service_is_ready()
                          and init_pub.get_subscription_count() > 0, TIMEOUT)

        def good():
            state["stamp"] += DT
            state["i"] = (state["i"] + 1) % len(clip.frames)
            stamp = state["stamp"]
            t = time.monotonic()
            c.publish_frame(clip.frames[state["i"]], stamp)
            assert c.wait_for(lambda: c.objects_for(stamp), TIMEOUT), \
                f"no answer to a good frame after the attack\n{proc.output[-4000:]}"
            answers = c.objects_for(stamp)
            return {r.msg.target_id: r.msg for r in answers}, max(r.time for r in answers) - t

        def counters(*names):
            values = c.diagnostic_values()
            return [int(values.get(n, 0)) for n in names]

        def set_param(name, value):
            request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
            return node.call(params, request).results[0]

        good()
        reply = node.call(init_srv, init_request(state["stamp"], clip.boxes[state["i"]], 1))
        assert reply.accepted, reply.reason
        baseline = [good() for _ in range(6)]
        assert baseline[-1][0][1].state == TrackState.TRACKING

        # F4: non-finite tracker parameters are refused
        for name, value in (("tracker.lr", float("nan")), ("tracker.penalty_k", float("inf")),
                            ("tracker.window_influence", float("nan")), ("max_image_pixels", 0)):
            result = set_param(name, value)
            assert not result.successful and result.reason, name

        # F6: a 100 kB encoding with a forged log line in it, alternating with good frames
        evil = "bgr8\n[FATAL] [0.000000000] [siam_tracker]: forged " + "x" * 100_000
        bad = numpy_to_image_msg(clip.frames[0], "bgr8")
        bad.encoding = evil
        mark, t_attack = len(proc.lines), time.monotonic()
        attacked = []
        while time.monotonic() - t_attack < 4.0:
            state["stamp"] += DT
            bad.header = make_header(state["stamp"])
            c.publish_frame(None, state["stamp"], msg=bad)
            attacked.append(good())
        time.sleep(0.5)                          # lines logged for the last frames
        duration = time.monotonic() - t_attack
        lines = proc.lines[mark:]
        rate = sum(len(line) + 1 for line in lines) / duration
        print(f"\nlog output during the encoding attack: {rate:.0f} bytes/s ({len(lines)} lines, "
              f"{len(attacked)} bad + {len(attacked)} good frames in {duration:.1f} s)")
        ratio = np.median([t for _, t in attacked]) / np.median([t for _, t in baseline])
        print(f"untouched target: median answer time under the encoding attack / baseline = {ratio:.2f}")
        assert len(attacked) >= 5 and rate < LOG_BYTES_PER_S, "\n".join(lines[:20])
        assert any("image skipped: unsupported encoding 'bgr8\\n[FATAL]" in line for line in lines), lines[:5]
        assert not any(line.startswith("[FATAL]") or "forged" in line and "\\n" not in line
                       for line in proc.lines), [line for line in proc.lines if "forged" in line][:3]
        assert attacked[-1][0][1].state == TrackState.TRACKING

        # F7: 30 inits in a burst on the topic (ids 1..10, max_targets 8): each one is applied,
        # refused or coalesced (a newer init for its id), and counted.
        assert c.reset().success
        names = ("inits_received", "inits_applied", "inits_refused", "inits_coalesced")
        since = time.monotonic()
        assert c.wait_for(lambda: statuses(c, since), 5.0)
        before = counters(*names)
        rng = np.random.default_rng(0)
        for k in range(30):
            x, y = rng.uniform(0, clip.size[0] - 60), rng.uniform(0, clip.size[1] - 60)
            msg = TargetInit(header=make_header(0), target_id=1 + k % 10)
            msg.x, msg.y, msg.width, msg.height = x, y, 40.0, 40.0
            init_pub.publish(msg)
        good()

        def all_accounted():
            received, applied, refused, coalesced = (a - b for a, b in zip(counters(*names), before))
            return received == 30 and applied + refused + coalesced == 30
        assert c.wait_for(all_accounted, 10.0), (before, counters(*names))
        received, applied, refused, coalesced = (a - b for a, b in zip(counters(*names), before))
        print(f"30 burst inits: {applied} applied, {refused} refused, {coalesced} coalesced")
        # ids 9 and 10 are beyond max_targets; ids 1..8 are applied once each at least (more when
        # the worker ran between two inits of an id), the others coalesced
        assert refused == 6 and applied >= 8 and applied + coalesced == 24, (applied, refused, coalesced)

        # ... and 30 on the service, all at once: each answered, with the reason when refused.
        assert c.reset().success
        futures = [init_srv.call_async(init_request(0, [20 + k, 20, 40, 40], k + 1)) for k in range(30)]
        assert wait_until(lambda: all(f.done() for f in futures), TIMEOUT), sum(f.done() for f in futures)
        replies = [f.result() for f in futures]
        assert [r.accepted for r in replies] == [k < 8 for k in range(30)], [r.reason for r in replies]
        assert all("max_targets" in r.reason for r in replies[8:]), replies[8].reason

        # Lower: target_id 0, an init on a 1x1 frame: refused with the reason, counted
        reply = node.call(init_srv, init_request(0, [20, 20, 40, 40], 0))
        assert not reply.accepted and "target_id 0" in reply.reason
        state["stamp"] += DT
        c.publish_frame(np.zeros((1, 1, 3), np.uint8), state["stamp"])
        refused_before = counters("inits_refused")[0]
        reply = node.call(init_srv, init_request(state["stamp"], [0, 0, 1, 1], 1))
        assert not reply.accepted and "too small" in reply.reason, reply.reason
        assert c.wait_for(lambda: counters("inits_refused")[0] > refused_before, 5.0)
        objects, _ = good()
        assert all(m.image_width == clip.size[0] for m in objects.values())
        assert_no_bad_tracking_box(c)
        assert proc.proc.poll() is None
    finally:
        code = node.close(signal.SIGTERM)
    assert code == 0, proc.output
    assert "Traceback" not in proc.output, proc.output
