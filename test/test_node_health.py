"""The node's /diagnostics rules (ros/health.py): levels mean something."""
from siam_tracker_ros.ros.health import (DROP_BUSY, DROP_OUT_OF_ORDER, DROP_UNREADABLE, ERROR, OK, WARN,
                                         NodeHealth)


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make():
    clock = Clock()
    return NodeHealth(window=5.0, clock=clock), clock


def report(h, targets=None, **kw):
    args = dict(targets=targets or {}, active=True, input_timeout=1.0, drop_warn_ratio=0.5)
    args.update(kw)
    return h.report(**args)


def feed(h, clock, n, dt=0.033, latency=0.02):
    for _ in range(n):
        clock.t += dt
        h.received()
        h.processed(latency, 0.01)


def test_ok_while_frames_come_and_targets_track():
    h, clock = make()
    feed(h, clock, 60)
    level, message, values = report(h, {1: "TRACKING", 2: "TRACKING"})
    assert level == OK and "tracking 2" in message
    assert float(values["fps"]) > 25 and values["latency_p50_ms"] == "20.0"
    assert values["frames_received"] == "60" and values["frames_dropped"] == "0"


def test_lost_target_is_a_warning():
    h, clock = make()
    feed(h, clock, 10)
    level, message, _ = report(h, {1: "TRACKING", 4: "LOST"})
    assert level == WARN and "LOST: target 4" in message


def test_no_input_is_an_error_only_with_targets():
    h, clock = make()
    feed(h, clock, 10)
    clock.t += 3.0
    level, message, _ = report(h, {1: "TRACKING"})
    assert level == ERROR and "no image for 3.0 s" in message
    level, message, _ = report(h, {})
    assert level == WARN and "no image" in message
    assert report(h, {1: "TRACKING"}, active=False)[0] == OK     # inactive: not expected to get images
    # input returns: the gap is measured, the ERROR ends
    clock.t += 0.033
    assert h.received() > 3.0
    assert report(h, {1: "TRACKING"})[0] == OK


def test_no_model_is_an_error():
    h, clock = make()
    h.model_error = "cannot read checkpoint x.pt"
    level, message, _ = report(h, active=False)
    assert level == ERROR and "no model: cannot read checkpoint x.pt" in message


def test_drops_warn_above_the_ratio_and_out_of_order_always():
    h, clock = make()
    for i in range(40):
        clock.t += 0.01
        h.received()
        if i % 4:
            h.drop(DROP_BUSY)                     # 75% dropped
    level, message, values = report(h, {1: "TRACKING"})
    assert level == WARN and "75% of the frames" in message and values["dropped_busy"] == "30"
    h2, clock2 = make()
    feed(h2, clock2, 20)
    h2.drop(DROP_BUSY)
    assert report(h2)[0] == OK                    # a few busy drops: normal
    h2.drop(DROP_OUT_OF_ORDER)
    level, message, values = report(h2)
    assert level == WARN and "out_of_order" in message and values["dropped_out_of_order"] == "1"
    clock2.t += 6.0                               # out of the window: OK again (counter stays)
    h2.received()
    assert report(h2)[0] == OK and report(h2)[2]["dropped_out_of_order"] == "1"


def test_no_readable_frame_in_the_window_is_an_error():
    """Frames keep coming but none decodes (wrong encoding, corrupt data): as blind as no
    input, so ERROR, targets or not; one readable frame in the window is back to WARN."""
    h, clock = make()
    feed(h, clock, 10)
    clock.t += 6.0                                # the good frames leave the window
    for _ in range(20):
        clock.t += 0.033
        h.received()
        h.drop(DROP_UNREADABLE)
    level, message, _ = report(h, {})
    assert level == ERROR and "no readable frame in the last 5 s: all 20 received frames" in message
    assert report(h, {1: "TRACKING"})[0] == ERROR
    feed(h, clock, 1)                             # one frame tracked: 20 of 21 unreadable, a WARN
    level, message, _ = report(h, {})
    assert level == WARN and "no readable frame" not in message


def test_fault_events_warn_for_the_window_and_are_counted():
    h, clock = make()
    feed(h, clock, 5)
    h.event("clock_resets", "clock reset: stamp went back 10.0 s")
    level, message, values = report(h)
    assert level == WARN and "clock reset" in message and values["clock_resets"] == "1"
    assert "clock reset" in values["last_fault"]
    feed(h, clock, 200)                           # > 5 s later
    level, message, values = report(h)
    assert level == OK and values["clock_resets"] == "1"


def test_init_rate():
    h, clock = make()
    rates = [h.init_received() for _ in range(25)]
    assert rates[-1] == 25
    clock.t += 1.5
    assert h.init_received() == 1
    assert h.counts["inits_received"] == 26
