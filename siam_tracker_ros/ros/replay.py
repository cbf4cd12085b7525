"""siam-bag replay: publish a rosbag2 into the ROS graph (for machines without `ros2 bag play`).

Every message is published as recorded (its raw CDR bytes through an rclpy publisher
of its type) at the recorded timing scaled by `rate` (0: no pacing). Messages with
equal log times go images first, so an init logged at its frame's time follows it.

Lockstep (`lockstep=TOPIC`, e.g. /siam_tracker/tracked_object): after each image the
replay waits until a message stamped with that image's header stamp arrives on TOPIC
(after a TargetInit: for an answer stamped with the init's stamp, `init_timeout`),
then goes on with the recorded gap to the next message (scaled by `rate`). The node
then never has two frames waiting, drops none, and a replay gives the same results on
a slow machine as on a fast one. An answer that does not come within
`lockstep_timeout` is counted and the replay goes on.

Loop: the bag again and again; each pass adds the bag's length (plus one frame
interval) to the header stamps of messages that start with a std_msgs/Header (patched
in the CDR bytes), so a node that drops older stamps keeps tracking; inits are
re-sent on every pass.

Record (`record=OUT_BAG`): the given topics (default: the lockstep topic, else the
node's tracked_object) are written to a new bag while replaying, log time = receive
time.

Ctrl-C (or SIGTERM) stops the replay cleanly: the record bag is closed, the summary
printed.
"""
from __future__ import annotations

import collections
import importlib
import queue
import signal
import struct
import threading
import time
from typing import Callable, Dict, Optional, Sequence

from . import bags

DEFAULT_DEPTH = 10


def parse_remaps(items: Sequence[str]) -> Dict[str, str]:
    out = {}
    for item in items or ():
        if ":=" not in item:
            raise ValueError(f"a remap is FROM:=TO, got '{item}'")
        a, b = item.split(":=", 1)
        out[a.strip()] = b.strip()
    return out


def absolute_topic(topic: Optional[str]) -> Optional[str]:
    """Graph names are absolute: 'a/b' -> '/a/b'."""
    return topic if not topic or topic.startswith("/") else "/" + topic


def message_class(msgtype: str):
    """'pkg/msg/Name' -> the rclpy message class (ImportError when not installed)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def has_header(msgtype: str, store) -> bool:
    fields = store.fielddefs.get(msgtype)
    return bool(fields) and fields[1][0][0] == "header" and fields[1][0][1][1] == "std_msgs/msg/Header"


def shift_header_stamp(raw: bytes, offset_ns: int) -> bytes:
    """CDR bytes of a message that starts with a std_msgs/Header, its stamp moved by `offset_ns`."""
    if not offset_ns:
        return raw
    little = raw[1] == 1      # encapsulation: 0x0001 CDR_LE, 0x0000 CDR_BE
    fmt = "<iI" if little else ">iI"
    sec, nsec = struct.unpack_from(fmt, raw, 4)
    total = sec * 1_000_000_000 + nsec + offset_ns
    out = bytearray(raw)
    struct.pack_into(fmt, out, 4, total // 1_000_000_000, total % 1_000_000_000)
    return bytes(out)


def header_stamp(raw: bytes) -> int:
    little = raw[1] == 1
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", raw, 4)
    return sec * 1_000_000_000 + nsec


class BagRecorder:
    """Writes messages to a new bag from a thread of its own (a sqlite3 bag may only be used
    by the thread that opened it): `add(topic, msgtype)` then `write(topic, raw)` from any
    thread; `close()` writes what is queued and closes the bag."""

    def __init__(self, path: str, storage: str = "sqlite3", overwrite: bool = False):
        self.path = path
        self.counts = collections.Counter()
        self._queue: "queue.Queue" = queue.Queue()
        self._offset = time.time_ns() - time.monotonic_ns()
        self._error: Optional[BaseException] = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(storage, overwrite), daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error:
            raise self._error

    def _run(self, storage, overwrite):
        try:
            writer = bags.new_writer(self.path, storage, overwrite)
            writer.open()
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        store = bags.typestore()
        conns = {}
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                kind, topic, value, stamp = item
                if kind == "add":
                    conns[topic] = writer.add_connection(topic, value, typestore=store)
                else:
                    writer.write(conns[topic], stamp, value)
                    self.counts[topic] += 1
        finally:
            writer.close()

    def add(self, topic: str, msgtype: str) -> None:
        self._queue.put(("add", topic, msgtype, 0))

    def write(self, topic: str, raw: bytes) -> None:
        self._queue.put(("msg", topic, bytes(raw), time.monotonic_ns() + self._offset))

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class BagReplay:
    def __init__(self, bag: str, rate: float = 1.0, topics: Optional[Sequence[str]] = None,
                 remap: Optional[Dict[str, str]] = None, lockstep: Optional[str] = None,
                 lockstep_timeout: float = 10.0, init_timeout: float = 2.0, loop: bool = False,
                 record: Optional[str] = None, record_topics: Optional[Sequence[str]] = None,
                 wait_subscribers: float = 30.0, reliability: str = "reliable", depth: int = DEFAULT_DEPTH,
                 domain_id: Optional[int] = None, storage: str = "sqlite3", overwrite: bool = False,
                 max_loops: Optional[int] = None, log: Callable[[str], None] = None):
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.bag = bag
        self.rate = float(rate)
        self.topics = list(topics) if topics else None
        self.remap = dict(remap or {})
        lockstep = absolute_topic(lockstep)
        record_topics = [absolute_topic(t) for t in record_topics or ()]
        self.lockstep = lockstep
        self.lockstep_timeout = float(lockstep_timeout)
        self.init_timeout = float(init_timeout)
        self.loop = loop
        self.max_loops = max_loops
        self.record = record
        self.record_topics = list(record_topics) if record_topics else (
            [lockstep] if lockstep else [bags.RESULTS_TOPIC]) if record else []
        self.wait_subscribers = float(wait_subscribers)
        self.reliability = reliability
        self.depth = int(depth)
        self.domain_id = domain_id
        self.storage = storage
        self.overwrite = overwrite
        self.log = log or (lambda text: print(f"[siam-bag replay] {text}", flush=True))
        self.stats = collections.Counter()
        self._answers = collections.Counter()     # lockstep topic: stamp -> messages received
        self._cond = threading.Condition()
        self._stop = threading.Event()

    # ------------------------------------------------------------------ set-up
    def _start_ros(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        try:
            from rclpy.signals import SignalHandlerOptions
            extra = {"signal_handler_options": SignalHandlerOptions.NO}
        except ImportError:   # older rclpy
            extra = {}
        self.context = rclpy.Context()
        kwargs = {} if self.domain_id is None else {"domain_id": int(self.domain_id)}
        rclpy.init(context=self.context, **kwargs, **extra)
        self.node = Node("siam_bag_replay", context=self.context, start_parameter_services=False)
        self.qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self.depth,
                              reliability=ReliabilityPolicy.RELIABLE if self.reliability == "reliable"
                              else ReliabilityPolicy.BEST_EFFORT)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self):
        while not self._stop.is_set():
            try:
                self.executor.spin()
                return
            except Exception as exc:  # noqa: BLE001 - a callback failed, or the context went away
                if self._stop.is_set() or not self.context.ok():
                    return
                self.log(f"callback error: {type(exc).__name__}: {exc}")

    def _graph_type(self, topic: str) -> Optional[str]:
        for name, types in self.node.get_topic_names_and_types():
            if name == topic and types:
                return types[0]
        return None

    def _subscribe_answers(self, msgtype: str):
        def on_answer(msg):
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with self._cond:
                self._answers[stamp] += 1
                self._cond.notify_all()
        self.node.create_subscription(message_class(msgtype), self.lockstep, on_answer, 100)

    def _subscribe_record(self, topic: str, msgtype: str):
        self._recorder.add(topic, msgtype)
        self.node.create_subscription(message_class(msgtype), topic,
                                      lambda raw: self._recorder.write(topic, raw), 100, raw=True)

    def _wait_graph(self, publishers: Dict[str, object]) -> Dict[str, str]:
        """Wait for subscribers of the image and init topics and for publishers of the lockstep
        and record topics (their types come from the graph). Returns {topic: type} found."""
        needs_subscriber = [t for t, (pub, msgtype) in publishers.items()
                            if msgtype in bags.IMAGE_TYPES + (bags.TARGET_INIT_TYPE,)]
        wanted = ([self.lockstep] if self.lockstep else []) + list(self.record_topics)
        deadline = time.monotonic() + self.wait_subscribers
        types: Dict[str, str] = {}
        while True:
            for t in wanted:
                if t not in types:
                    found = self._graph_type(t)
                    if found and self.node.count_publishers(t) > 0:
                        types[t] = found
            missing = [t for t in needs_subscriber if publishers[t][0].get_subscription_count() == 0]
            missing += [t for t in wanted if t not in types]
            if not missing or time.monotonic() >= deadline or self._stop.is_set():
                break
            time.sleep(0.05)
        if missing and self.wait_subscribers > 0:
            self.log(f"after {self.wait_subscribers:g} s still nobody on: {', '.join(missing)} (going on)")
        return types

    # ------------------------------------------------------------------ replay
    def _wait_answer(self, stamp: int, before: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._answers[stamp] <= before:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def _sleep_until(self, t: float):
        while not self._stop.is_set():
            left = t - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def run(self) -> Dict:
        from rosbags.rosbag2 import Reader
        with Reader(self.bag) as reader:
            conns = [c for c in reader.connections if self.topics is None or c.topic in self.topics]
            counts = {c.topic: c.msgcount for c in reader.connections}
        if not conns:
            raise ValueError(f"{self.bag}: no messages on {self.topics}")
        store = bags.typestore()
        restore = {}
        if threading.current_thread() is threading.main_thread():
            def on_term(signum, frame):
                raise KeyboardInterrupt
            restore[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)
        self._start_ros()
        self._recorder = None
        started = time.monotonic()
        passes = 0
        try:
            publishers = {}
            for c in conns:
                topic = self.remap.get(c.topic, c.topic)
                try:
                    publishers[c.topic] = (self.node.create_publisher(message_class(c.msgtype), topic, self.qos),
                                           c.msgtype)
                except (ImportError, AttributeError) as exc:
                    self.log(f"skipping {c.topic}: type {c.msgtype} not available here ({exc})")
            types = self._wait_graph({self.remap.get(t, t): p for t, p in publishers.items()})
            if self.lockstep:
                self._subscribe_answers(types.get(self.lockstep, bags.TRACKED_OBJECT_TYPE))
            if self.record:
                self._recorder = BagRecorder(self.record, self.storage, self.overwrite)
                for t in self.record_topics:
                    msgtype = types.get(t) or (bags.TRACKED_OBJECT_TYPE if t == self.lockstep else None)
                    if msgtype is None:
                        self.log(f"not recording {t}: no publisher seen, type unknown")
                        continue
                    self._subscribe_record(t, msgtype)
            time.sleep(0.3)    # let the new subscriptions match their publishers
            self.log(f"replaying {self.bag}: {', '.join(f'{t} ({counts[t]})' for t in publishers)}"
                     f"{f' at rate {self.rate:g}' if self.rate else ' unpaced'}"
                     f"{f', lockstep on {self.lockstep}' if self.lockstep else ''}"
                     f"{f', recording {self.record_topics} to {self.record}' if self.record else ''}")
            headers = {c.msgtype: has_header(c.msgtype, store) for c in conns}
            offset, step = 0, None
            while True:
                first, last, images = self._play_once(publishers, headers, offset)
                passes += 1
                if step is None and first is not None:
                    # the next pass: one bag length plus one frame interval later (1 s for one message)
                    span = last - first
                    step = span + span // (images - 1) if images > 1 and span > 0 else 1_000_000_000
                if not self.loop or self._stop.is_set() or (self.max_loops and passes >= self.max_loops):
                    break
                offset += step or 0
            if self.record and not self.lockstep:
                time.sleep(1.0)    # the answers to the last messages
            elif self.record:
                time.sleep(0.3)
        except KeyboardInterrupt:
            self._stop.set()
            self.stats["interrupted"] = 1
            self.log("interrupted")
        finally:
            self._close()
            for sig, handler in restore.items():
                signal.signal(sig, handler)
        self.stats["passes"] = passes
        self.stats["seconds"] = round(time.monotonic() - started, 3)
        summary = dict(self.stats)
        self.log("; ".join(f"{k}: {v}" for k, v in summary.items()))
        return summary

    def _play_once(self, publishers, headers, offset: int):
        """One pass; returns (first log time, last log time, images) of the bag."""
        t_bag0 = t_wall0 = last_bag = last_wall = None
        images = 0
        for conn, t_bag, raw in bags.read_bag_messages(self.bag, list(publishers)):
            if self._stop.is_set():
                break
            pub, msgtype = publishers[conn.topic]
            if t_bag0 is None:
                t_bag0, t_wall0 = t_bag, time.monotonic()
            elif self.rate > 0:
                if self.lockstep:   # keep the recorded gaps after waiting for answers
                    self._sleep_until(last_wall + (t_bag - last_bag) * 1e-9 / self.rate)
                else:
                    self._sleep_until(t_wall0 + (t_bag - t_bag0) * 1e-9 / self.rate)
            if headers[msgtype]:
                raw = shift_header_stamp(bytes(raw), offset)
            wait = None
            if self.lockstep and msgtype in bags.IMAGE_TYPES + (bags.TARGET_INIT_TYPE,) and headers[msgtype]:
                stamp = header_stamp(raw)
                if stamp:   # an init stamped 0 ("newest frame") has no answer to match
                    with self._cond:
                        wait = (stamp, self._answers[stamp])
            pub.publish(bytes(raw))
            last_bag, last_wall = t_bag, time.monotonic()
            self.stats["published"] += 1
            if msgtype in bags.IMAGE_TYPES:
                self.stats["images"] += 1
                images += 1
            if wait is not None:
                is_init = msgtype == bags.TARGET_INIT_TYPE
                if self._wait_answer(wait[0], wait[1], self.init_timeout if is_init else self.lockstep_timeout):
                    self.stats["init answers" if is_init else "answers"] += 1
                elif not self._stop.is_set():
                    self.stats["init not answered" if is_init else "answer timeouts"] += 1
                    if not is_init:
                        self.log(f"no answer on {self.lockstep} for stamp {wait[0]} within "
                                 f"{self.lockstep_timeout:g} s: going on")
                last_wall = time.monotonic()
        return t_bag0, last_bag, images

    def _close(self):
        self._stop.set()
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        except Exception:   # already gone
            pass
        import rclpy
        rclpy.try_shutdown(context=self.context)
        self._spinner.join(timeout=2.0)
        if self._recorder is not None:
            self._recorder.close()
            for topic, n in self._recorder.counts.items():
                self.stats[f"recorded {topic}"] = n
