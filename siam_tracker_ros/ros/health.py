"""Book-keeping behind the node's /diagnostics: counters, dropped frames by
reason, latency percentiles, input gaps and recent faults, and the level rules.

No ROS imports (unit-tested on its own); the node turns `report()` into
diagnostic_msgs/DiagnosticStatus.

Levels (diagnostic_msgs/DiagnosticStatus):
- ERROR: no model (start-up / configure failed: the reason is the message),
  no image for more than `input_timeout` s while targets exist (a control loop
  would act on nothing), or frames arriving but none of the window readable.
- WARN: a target is LOST; more than `drop_warn_ratio` of the frames received in
  the last `window` s were dropped; frames dropped for a reason other than
  "the node was busy" (out of order, unreadable) in the window; a fault event in
  the window (image size change, clock reset, encoding change, input resumed
  after a gap, init flood); no image for more than
  `input_timeout` s with no target.
- OK otherwise.
"""
from __future__ import annotations

import collections
import functools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Iterable, List, Optional, Tuple

import numpy as np

OK, WARN, ERROR = 0, 1, 2          # = diagnostic_msgs/DiagnosticStatus.OK / WARN / ERROR
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR"}

# Reasons a received frame is not tracked.
DROP_BUSY = "busy"                 # overwritten by a newer frame before the worker took it
DROP_OUT_OF_ORDER = "out_of_order"  # stamp older than the newest seen (and not a clock reset)
DROP_UNREADABLE = "unreadable"     # unsupported encoding, malformed data, undecodable compressed
DROP_INACTIVE = "no_model"         # arrived while no model was loaded
DROP_REASONS = (DROP_BUSY, DROP_OUT_OF_ORDER, DROP_UNREADABLE, DROP_INACTIVE)


@dataclass
class Event:
    time: float
    kind: str
    text: str
    level: int = WARN


def _locked(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class NodeHealth:
    """Thread-safe: every public method holds the object's own lock (the executor thread
    records arrivals and inits, the worker processing, the timer reports)."""

    def __init__(self, window: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 latency_samples: int = 600):
        self.window = float(window)
        self.clock = clock
        self.started = clock()
        self.counts = collections.Counter()        # received, processed, errors, inits_*, faults
        self.dropped = collections.Counter()       # reason -> frames
        self.latencies: Deque[float] = collections.deque(maxlen=latency_samples)
        self.track_times: Deque[float] = collections.deque(maxlen=latency_samples)
        self._received_times: Deque[float] = collections.deque()
        self._drop_times: Deque[Tuple[float, str]] = collections.deque()
        self._processed_times: Deque[float] = collections.deque()
        self._init_times: Deque[float] = collections.deque()
        self.events: Deque[Event] = collections.deque(maxlen=100)
        self.last_input: Optional[float] = None
        self.model_error: Optional[str] = None
        self._lock = threading.RLock()

    # ---- recording ----------------------------------------------------
    def _trim(self, now: float) -> None:
        edge = now - self.window
        for q in (self._received_times, self._processed_times, self._init_times):
            while q and q[0] < edge:
                q.popleft()
        while self._drop_times and self._drop_times[0][0] < edge:
            self._drop_times.popleft()

    @_locked
    def received(self, now: Optional[float] = None) -> Optional[float]:
        """A frame arrived. Returns the seconds since the previous one (None for the first):
        the caller reports a gap longer than its input timeout."""
        now = self.clock() if now is None else now
        gap = None if self.last_input is None else now - self.last_input
        self.last_input = now
        self.counts["received"] += 1
        self._received_times.append(now)
        self._trim(now)
        return gap

    @_locked
    def drop(self, reason: str, now: Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        self.dropped[reason] += 1
        self._drop_times.append((now, reason))

    @_locked
    def processed(self, latency: float, track_time: Optional[float] = None,
                  now: Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        self.counts["processed"] += 1
        self.latencies.append(float(latency))
        if track_time is not None:
            self.track_times.append(float(track_time))
        self._processed_times.append(now)

    @_locked
    def init_received(self, now: Optional[float] = None) -> int:
        """Counts an init message; returns how many arrived in the last second."""
        now = self.clock() if now is None else now
        self.counts["inits_received"] += 1
        self._init_times.append(now)
        while self._init_times and self._init_times[0] < now - 1.0:
            self._init_times.popleft()
        return len(self._init_times)

    @_locked
    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n

    @_locked
    def event(self, kind: str, text: str, level: int = WARN, now: Optional[float] = None) -> None:
        now = self.clock() if now is None else now
        self.counts[kind] += 1
        self.events.append(Event(now, kind, text, level))

    @_locked
    def reset_input_clock(self, now: Optional[float] = None) -> None:
        """(Re)start the no-input timer (node start, lifecycle activate)."""
        self.started = self.clock() if now is None else now
        self.last_input = None

    # ---- figures ------------------------------------------------------
    def fps(self, now: float) -> float:
        t = [x for x in self._processed_times if x >= now - self.window]
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    @staticmethod
    def percentile_ms(values: Iterable[float], q: float) -> float:
        v = np.fromiter(values, dtype=np.float64)
        return float(np.percentile(v, q) * 1e3) if v.size else 0.0

    def input_age(self, now: float) -> float:
        """Seconds since the last frame (since start / activation when none came yet)."""
        return now - (self.last_input if self.last_input is not None else self.started)

    @_locked
    def report(self, *, targets: Dict[int, str], active: bool, input_timeout: float,
               drop_warn_ratio: float, topic: str = "image",
               now: Optional[float] = None) -> Tuple[int, str, Dict[str, str]]:
        """(level, message, key/values). `targets`: id -> state name (TRACKING / LOST)."""
        now = self.clock() if now is None else now
        self._trim(now)
        problems: List[Tuple[int, str]] = []
        if self.model_error:
            problems.append((ERROR, f"no model: {self.model_error}"))
        age = self.input_age(now)
        if active and age > input_timeout:
            what = "no image yet" if self.last_input is None else "no image"
            if targets:
                problems.append((ERROR, f"{what} for {age:.1f} s on {topic} while {len(targets)} "
                                        f"target(s) are set"))
            else:
                problems.append((WARN, f"{what} for {age:.1f} s on {topic}"))
        lost = sorted(i for i, s in targets.items() if s == "LOST")
        if lost:
            problems.append((WARN, "LOST: target " + ", ".join(str(i) for i in lost)))
        received = len(self._received_times)
        recent_drops = collections.Counter(r for _, r in self._drop_times)
        dropped = sum(recent_drops.values())
        if received and dropped / received > drop_warn_ratio:
            problems.append((WARN, f"{100.0 * dropped / received:.0f}% of the frames of the last "
                                   f"{self.window:.0f} s dropped ({_counts_text(recent_drops)})"))
        unreadable = recent_drops[DROP_UNREADABLE]
        if received and unreadable >= received and not self._processed_times:
            # frames arrive but none can be read (wrong encoding, corrupt or refused data): to a
            # control loop that is as blind as no input at all
            problems.append((ERROR, f"no readable frame in the last {self.window:.0f} s: all {received} "
                                    f"received frames were unreadable"))
        bad = {r: n for r, n in recent_drops.items() if r in (DROP_OUT_OF_ORDER, DROP_UNREADABLE)}
        if bad and not (received and dropped / received > drop_warn_ratio):
            problems.append((WARN, f"frames dropped: {_counts_text(bad)}"))
        # one entry per kind of event, the latest, with how many came in the window (a hostile
        # input repeated at the frame rate would otherwise make the message grow with it)
        recent_events: Dict[str, List[Event]] = {}
        for e in self.events:
            if e.time >= now - self.window:
                recent_events.setdefault(e.kind, []).append(e)
        for kind_events in recent_events.values():
            e, n = kind_events[-1], len(kind_events)
            repeats = f" (x{n} in {self.window:.0f} s)" if n > 1 else ""
            problems.append((max(x.level for x in kind_events), e.text + repeats))
        level = max((lvl for lvl, _ in problems), default=OK)
        if problems:
            # the worst first, then in order of appearance
            message = "; ".join(t for _, t in sorted(problems, key=lambda p: -p[0]))
        elif not active:
            message = "inactive"
        elif targets:
            message = f"tracking {len(targets)} target(s)"
        else:
            message = "idle: no target (send ~/init)"
        lat = list(self.latencies)
        values = {
            "fps": f"{self.fps(now):.1f}",
            "latency_p50_ms": f"{self.percentile_ms(lat, 50):.1f}",
            "latency_p95_ms": f"{self.percentile_ms(lat, 95):.1f}",
            "track_time_p50_ms": f"{self.percentile_ms(self.track_times, 50):.1f}",
            "frames_received": str(self.counts["received"]),
            "frames_processed": str(self.counts["processed"]),
            "frames_dropped": str(sum(self.dropped.values())),
        }
        for r in DROP_REASONS:
            values[f"dropped_{r}"] = str(self.dropped[r])
        values["errors"] = str(self.counts["errors"])
        values["input_age_s"] = f"{age:.2f}" if self.last_input is not None else "never"
        for k in ("inits_received", "inits_applied", "inits_refused", "inits_coalesced",
                  "size_changes", "clock_resets", "encoding_changes", "input_gaps", "init_floods",
                  "invalid_results", "decoder_warnings", "log_lines_suppressed"):
            values[k] = str(self.counts[k])
        recent = [e for e in self.events if e.time >= now - 60.0]
        if recent:
            values["last_fault"] = f"{now - recent[-1].time:.1f} s ago: {recent[-1].text}"
        return level, message, values


def _counts_text(counts) -> str:
    return ", ".join(f"{n} {r}" for r, n in sorted(counts.items()))
