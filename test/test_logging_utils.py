"""quote_untrusted (escaped, one line, bounded) and LogThrottle (per key, counted,
injectable clock)."""
import threading

import pytest

from siam_tracker_ros.ros.logging_utils import LogThrottle, quote_untrusted


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.mark.parametrize("value", [
    "bgr8\n[FATAL] [1.0] [tracker]: forged",
    "a\rb", "\x1b[31mred\x1b[0m", "tab\there", "nul\x00", "del\x7f",
    "line\u2028separator", "para\u2029graph", "bidi\u202etxt.exe", "next\x85line",
])
def test_quoted_text_is_one_line_without_control_characters(value):
    quoted = quote_untrusted(value)
    assert quoted.isprintable(), quoted              # no newline, CR, ESC, bidi control...
    assert len(quoted.splitlines()) == 1
    assert eval(quoted) == value                     # a Python literal: nothing lost, nothing added


def test_plain_text_is_only_quoted():
    assert quote_untrusted("bgr8") == "'bgr8'"
    assert quote_untrusted("caméra") == "'caméra'"    # printable non-ASCII stays readable
    assert quote_untrusted(42) == "'42'"


def test_long_text_is_cut_before_escaping_with_a_marker():
    value = "\n" * 100_000
    quoted = quote_untrusted(value, limit=10)
    assert quoted == repr("\n" * 10) + "...(+99990 chars)"
    assert quote_untrusted("x" * 80) == repr("x" * 80)               # exactly the limit: not cut
    assert quote_untrusted("x" * 81).endswith("...(+1 chars)")
    with pytest.raises(ValueError):
        quote_untrusted("x", limit=0)


def test_throttle_lets_one_line_per_period_per_key_and_counts_the_rest():
    clock = FakeClock()
    throttle = LogThrottle(1.0, clock=clock)
    assert throttle.check("decode") == 0
    assert throttle.check("encoding") == 0              # another key is independent
    for _ in range(5):
        clock.now += 0.1
        assert throttle.check("decode") is None
    assert throttle.pending() == {"decode": 5}
    clock.now = 100.999
    assert throttle.check("decode") is None              # still inside the period
    clock.now = 101.0
    assert throttle.check("decode") == 6                 # the next line reports the 6 held back
    assert throttle.pending() == {}
    clock.now = 102.5
    assert throttle.check("decode") == 0
    assert (throttle.emitted_total, throttle.suppressed_total) == (4, 6)


def test_throttle_message_appends_the_count():
    clock = FakeClock()
    throttle = LogThrottle(2.0, clock=clock)
    assert throttle.message("k", "frame refused") == "frame refused"
    assert throttle.message("k", "frame refused") is None
    clock.now += 2.0
    assert throttle.message("k", "frame refused") == "frame refused (1 similar line suppressed)"
    clock.now += 0.5
    throttle.message("k", "x"), throttle.message("k", "x")
    clock.now += 2.0
    assert throttle.message("k", "x") == "x (2 similar lines suppressed)"


def test_zero_period_lets_everything_through():
    throttle = LogThrottle(0.0, clock=FakeClock())
    assert [throttle.check("k") for _ in range(3)] == [0, 0, 0]


def test_keys_are_bounded():
    clock = FakeClock()
    throttle = LogThrottle(10.0, clock=clock, max_keys=3)
    for key in range(1000):                               # e.g. keyed on hostile strings
        throttle.check(key)
        throttle.check(key)
    assert len(throttle._keys) == 3
    assert throttle.suppressed_total == 1000
    assert set(throttle.pending()) == {997, 998, 999}
    assert throttle.check(0) == 0                         # evicted: starts afresh


def test_bad_arguments():
    with pytest.raises(ValueError):
        LogThrottle(-1.0)
    with pytest.raises(ValueError):
        LogThrottle(float("nan"))
    with pytest.raises(ValueError):
        LogThrottle(1.0, max_keys=0)


def test_throttle_is_thread_safe():
    throttle = LogThrottle(1e9, clock=FakeClock())
    results = []

    def worker():
        for _ in range(2000):
            results.append(throttle.check("k"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(0) == 1 and results.count(None) == 7999
    assert throttle.suppressed_total == 7999 and throttle.emitted_total == 1


class FakeLogger:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(("info", text))

    def warning(self, text):
        self.lines.append(("warning", text))

    def error(self, text):
        self.lines.append(("error", text))


def test_input_log_throttles_per_kind_caps_the_rate_and_escapes():
    """F6: lines of one kind at most once a period; all lines under a token bucket; a
    newline a caller forgot to quote cannot start a line of its own."""
    from collections import Counter

    from siam_tracker_ros.ros.logging_utils import InputLog
    now = [0.0]
    counts = Counter()
    logger = FakeLogger()
    log = InputLog(logger, lambda k, n=1: counts.update({k: n}), period_s=1.0, rate=10.0, burst=5,
                   clock=lambda: now[0])
    for i in range(100):                       # one kind: 1 line, the rest counted
        log("error", f"bad {i}", kind="image")
    assert logger.lines == [("error", "bad 0")] and counts["errors"] == 100
    for i in range(100):                       # no kind: the bucket (burst 5) holds
        log("info", f"target {i}")
    assert len(logger.lines) == 1 + 4 and counts["log_lines_suppressed"] == 96
    now[0] = 10.0                              # bucket full again; the kind's count is reported
    log("error", "bad again", kind="image")
    assert logger.lines[-1] == ("error", "bad again (99 similar lines suppressed)")
    log("warning", "x\n[FATAL] [siam_tracker]: forged\x1b[2J")
    assert "\n" not in logger.lines[-1][1] and "\\n[FATAL]" in logger.lines[-1][1]
    assert "\x1b" not in logger.lines[-1][1]
