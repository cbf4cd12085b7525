"""Log lines about input the node does not control: quoting and throttling.

Anything a publisher chooses (an encoding name, a format string, a frame id) can hold
newlines, terminal escape sequences or megabytes of text. `quote_untrusted` makes such
a value one escaped, bounded token, so a message cannot forge log lines or flood the
log through the text itself. `LogThrottle` bounds how often an input-driven line is
written, per kind of line, and counts what it held back so the next line (or the
diagnostics) can say how many were suppressed: a flood shows up as a number, not as
megabytes of log.

Pure Python, no ROS import: the node wires these to its logger.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Dict, Hashable, Optional

DEFAULT_QUOTE_LIMIT = 80


def quote_untrusted(value, limit: int = DEFAULT_QUOTE_LIMIT) -> str:
    """`value` as one printable, bounded token for a log line or error message.

    The text is cut to its first `limit` characters *before* escaping (so the work
    does not grow with the input), then written as a Python string literal: quotes
    around it, and newlines, carriage returns, tabs, escape sequences (ESC), bidi
    controls and every other non-printable character as backslash escapes. What was
    cut is said after it: `'abc'...(+997 chars)`.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}...(+{len(text) - limit} chars)"


MAX_LINE = 2000


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """`text` as one log line of at most about `limit` characters: newlines, escape sequences
    and other non-printable characters escaped (the last defence when a caller forgot to
    quote something a publisher chose)."""
    if len(text) > limit:
        text = f"{text[:limit]}...(+{len(text) - limit} chars)"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class LogThrottle:
    """At most one line per `period_s` seconds per key, with a count of the rest.

    `check(key)` returns None when a line of that key was let through less than
    `period_s` ago (the line is counted as suppressed), otherwise the number of lines
    of that key suppressed since the last one let through, for the caller to append
    (`suffix(n)` words it). Keys are kinds of line ("encoding_changed",
    "decode_failed"...), not values from the input; if the caller keys on input
    anyway, the `max_keys` least recently used keys are kept (their suppressed counts
    stay in `suppressed_total`), so a stream of distinct keys cannot grow memory.
    The clock is injectable (tests, simulated time); thread-safe.
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 256):
        if not period_s >= 0.0:
            raise ValueError(f"period_s must be >= 0, got {period_s}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be >= 1, got {max_keys}")
        self.period_s = float(period_s)
        self.max_keys = int(max_keys)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [time of the last line let through, lines suppressed since]
        self._keys: "OrderedDict[Hashable, list]" = OrderedDict()
        self.suppressed_total = 0
        self.emitted_total = 0

    def check(self, key: Hashable) -> Optional[int]:
        now = self._clock()
        with self._lock:
            entry = self._keys.get(key)
            if entry is not None:
                self._keys.move_to_end(key)
                if now - entry[0] < self.period_s:
                    entry[1] += 1
                    self.suppressed_total += 1
                    return None
                suppressed = entry[1]
                entry[0], entry[1] = now, 0
            else:
                suppressed = 0
                self._keys[key] = [now, 0]
                while len(self._keys) > self.max_keys:
                    self._keys.popitem(last=False)
            self.emitted_total += 1
            return suppressed

    def message(self, key: Hashable, text: str) -> Optional[str]:
        """`text` with the suppressed count appended, or None when the line is held back."""
        suppressed = self.check(key)
        return None if suppressed is None else text + self.suffix(suppressed)

    def suffix(self, suppressed: int) -> str:
        if not suppressed:
            return ""
        return f" ({suppressed} similar line{'s' if suppressed != 1 else ''} suppressed)"

    def pending(self) -> Dict[Hashable, int]:
        """Lines suppressed per key and not yet reported by a line let through."""
        with self._lock:
            return {key: entry[1] for key, entry in self._keys.items() if entry[1]}


class InputLog:
    """The node's log for the lines its input triggers (frames, inits, removals, targets).

    `log(level, text, kind=None)`, level info / warning / error: an error is counted
    (`count("errors")`); a line with a `kind` is throttled per kind (`LogThrottle`, at
    most one per `period_s`, the next one says how many were held back); and every line
    passes a token bucket (`rate` lines per second, bursts of `burst`), so that no mix of
    kinds can write more than about `rate` lines a second whatever arrives. Lines over
    the bucket are counted (`count("log_lines_suppressed")`), not written. `logger` has
    info / warning / error methods (rclpy's). Callers quote untrusted text
    (`quote_untrusted`) before it gets here.
    """

    def __init__(self, logger, count: Callable[..., None], period_s: float = 1.0, rate: float = 10.0,
                 burst: int = 50, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.count = count
        self.throttle = LogThrottle(period_s, clock)
        self.rate, self.burst = float(rate), float(burst)
        self._clock = clock
        self._tokens, self._filled = float(burst), clock()
        self._lock = threading.Lock()

    def _take_token(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._filled) * self.rate)
            self._filled = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def __call__(self, level: str, text: str, kind: Optional[Hashable] = None) -> None:
        if level == "error":
            self.count("errors")
        if kind is not None:
            text = self.throttle.message(kind, text)
            if text is None:
                return
        if not self._take_token():
            self.count("log_lines_suppressed")
            return
        text = one_line(text)
        if level == "error":       # one call site per severity (rclpy's logger requires it)
            self.logger.error(text)
        elif level == "warning":
            self.logger.warning(text)
        else:
            self.logger.info(text)
