"""Soak benchmark of the tracker node (issue 6): N minutes of 30 Hz 640x480 input with a
target tracked, the node in its own process as the launch file starts it.

    python -m siam_tracker_ros.ros.soak --minutes 10 [--fps 30] [--size 640x480]
        [--sequence VOT_bag] [--json out.json] [--markdown docs/benchmarks/soak.md]
    python -m siam_tracker_ros.ros.soak --search-cost    # TRACKING vs LOST cost per frame

Input: a labelled shared sequence (default VOT_bag, 196 frames; $SIAM_SHARED_DIR or
../shared/data/sequences), every frame resized to --size and sent as bgr8 sensor_msgs/Image
at --fps on a steady schedule (best-effort QoS, as a camera driver does; the node's
config/tracker.yaml unchanged). At the start of every pass over the sequence the target is
initialised again on frame 0 with its ground-truth box (scaled), so the node always has a
target: tracking (and, where the supervisor says LOST, searching) runs the whole time, and
the init path is exercised every pass too.

Measured per minute: frames sent, results received, TRACKING / LOST results, latency
p50 / p95 from publishing a frame to receiving its TrackedObject (client side, so it
includes DDS transport both ways) and the node's own latency field (frame arrival to
publish), frames the node dropped (its /diagnostics), and the node's resident memory
(VmRSS of its process, /proc/PID/status) at the end of the minute. At the end: RSS after
minute 1 vs at the end (ratio; the acceptance bound is within 5%).

The node runs with OMP_NUM_THREADS=1 unless set (shared 2-core machines); say so with the
figures. No ROS imports at module level beyond what the node client needs.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import sys
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from ..evaluation.speed import read_status_kb


def load_frames(sequence: str, size, root: Optional[str] = None):
    """(frames resized to `size`, init box on frame 0 in the resized pixels, source text)."""
    import cv2

    from ..evaluation.datasets import open_dataset
    if root is None:
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        shared = os.environ.get("SIAM_SHARED_DIR") or os.path.join(os.path.dirname(repo), "shared")
        root = os.path.join(shared, "data", "sequences")
    if not os.path.isdir(os.path.join(root, sequence)):
        raise SystemExit(f"soak: sequence {sequence} not found under {root} (set SIAM_SHARED_DIR)")
    seq = open_dataset(root, "shared", names=[sequence])[0]
    w, h = size
    frames = []
    for i in range(len(seq)):
        img = seq.frame(i)
        frames.append(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
    oh, ow = seq.frame(0).shape[:2]
    box = np.asarray(seq.init_box, dtype=np.float64)
    if sequence.startswith("OTB"):
        box = box - np.array([1.0, 1.0, 0.0, 0.0])
    box = box * np.array([w / ow, h / oh, w / ow, h / oh])
    return frames, box, f"{sequence} ({len(frames)} frames {ow}x{oh} -> {w}x{h}) from {root}"


class Minute:
    def __init__(self):
        self.sent = 0
        self.results = 0
        self.tracking = 0
        self.lost = 0
        self.latency: List[float] = []       # publish -> result received (s)
        self.node_latency: List[float] = []  # the node's field: arrival -> publish (s)
        self.rss_kb = float("nan")
        self.node_dropped = 0

    def row(self, index: int) -> Dict[str, float]:
        lat = np.array(self.latency) * 1e3 if self.latency else np.array([np.nan])
        nl = np.array(self.node_latency) * 1e3 if self.node_latency else np.array([np.nan])
        return {"minute": index, "sent": self.sent, "results": self.results,
                "tracking": self.tracking, "lost": self.lost,
                "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p95_ms": float(np.percentile(lat, 95)),
                "node_latency_p50_ms": float(np.percentile(nl, 50)),
                "node_latency_p95_ms": float(np.percentile(nl, 95)),
                "node_dropped": self.node_dropped, "rss_mb": self.rss_kb / 1024.0}


def run(args) -> Dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from siam_tracker_ros.msg import TargetInit, TrackedObject

    from .client import make_header
    from .image_conversion import numpy_to_image_msg
    from .inbox import stamp_ns
    from .process import NodeProcess, apply_to_this_process, fresh_domain_id, ros_environment, share_file

    w, h = (int(v) for v in args.size.lower().split("x"))
    frames, init_box, source = load_frames(args.sequence, (w, h))
    print(f"soak: {source}; {args.minutes} min at {args.fps} Hz", flush=True)
    messages = [numpy_to_image_msg(f, "bgr8") for f in frames]
    del frames

    domain = fresh_domain_id()
    log_dir = args.log_dir or os.path.join("log", "soak")
    env = ros_environment(domain, log_dir=log_dir)
    env.setdefault("OMP_NUM_THREADS", "1")
    apply_to_this_process(env)
    topic = "/soak/image"
    ros_args = ["--params-file", args.params or share_file("config", "tracker.yaml"), "-r", f"image:={topic}"]
    for p in args.param:
        ros_args += ["-p", p]
    proc = NodeProcess(ros_args, env, echo=args.echo)

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = Node("soak_client", context=ctx, start_parameter_services=False)
    pub = node.create_publisher(Image, topic, qos_profile_sensor_data)
    pub_init = node.create_publisher(TargetInit, "/siam_tracker/init", 10)
    lock = threading.Lock()
    published: Dict[int, tuple] = {}        # stamp -> (time, minute index)
    minutes: List[Minute] = [Minute()]
    diag = {"dropped": 0}
    answered = threading.Event()

    init_stamps = set()

    def on_object(msg):
        now = time.monotonic()
        stamp = stamp_ns(msg.header.stamp)
        with lock:
            if stamp in init_stamps and msg.score == 1.0 and msg.state == 1:
                init_stamps.discard(stamp)      # the init acknowledgement, not a tracking result
                diag["acks"] = diag.get("acks", 0) + 1
                return
            sent = published.pop(stamp, None)
            answered.set()
            if sent is None:
                return
            m = minutes[sent[1]] if sent[1] < len(minutes) else minutes[-1]
            m.results += 1
            m.tracking += msg.state == 1
            m.lost += msg.state == 2
            m.latency.append(now - sent[0])
            m.node_latency.append(float(msg.latency))

    def on_diag(msg):
        for s in msg.status:
            if s.name.endswith(": tracker"):
                values = {kv.key: kv.value for kv in s.values}
                with lock:
                    diag["dropped"] = int(values.get("frames_dropped", 0))
                    diag["values"] = values

    node.create_subscription(TrackedObject, "/siam_tracker/tracked_object", on_object, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    result: Dict = {}
    try:
        deadline = time.monotonic() + 120
        while pub.get_subscription_count() == 0 or pub_init.get_subscription_count() == 0:
            if time.monotonic() > deadline or proc.proc.poll() is not None:
                raise SystemExit(f"soak: the node did not come up\n{proc.output}")
            time.sleep(0.05)
        time.sleep(0.5)
        pid = proc.proc.pid
        period = 1.0 / args.fps
        t0_stamp = 1_800_000_000 * 1_000_000_000
        # First frame until the node answers (discovery of our subscription too).
        k = 0
        while not answered.is_set():
            msg = messages[0]
            msg.header = make_header(t0_stamp + k)
            pub.publish(msg)
            k += 1
            answered.wait(0.2)
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: no answer from the node\n{proc.output}")
        start = time.monotonic()
        end = start + args.minutes * 60.0
        next_minute = start + 60.0
        i = 0
        drops_before = 0
        reinit = 0
        while True:
            now = time.monotonic()
            if now >= next_minute or now >= end:
                with lock:
                    m = minutes[-1]
                    m.rss_kb = read_status_kb(pid)
                    m.node_dropped = diag["dropped"] - drops_before
                    drops_before = diag["dropped"]
                row = m.row(len(minutes))
                print(f"minute {row['minute']:2d}: sent {row['sent']}, results {row['results']} "
                      f"(TRACKING {row['tracking']}, LOST {row['lost']}), latency p50 {row['latency_p50_ms']:.1f} "
                      f"p95 {row['latency_p95_ms']:.1f} ms (node {row['node_latency_p50_ms']:.1f} / "
                      f"{row['node_latency_p95_ms']:.1f}), node dropped {row['node_dropped']}, "
                      f"RSS {row['rss_mb']:.1f} MB", flush=True)
                if now >= end:
                    break
                with lock:
                    minutes.append(Minute())
                next_minute += 60.0
            if proc.proc.poll() is not None:
                raise SystemExit(f"soak: the node died (exit {proc.proc.returncode})\n{proc.output}")
            index = i % len(messages)
            stamp = t0_stamp + 1_000_000_000 + i * int(round(period * 1e9))
            msg = messages[index]
            msg.header = make_header(stamp)
            with lock:
                published[stamp] = (time.monotonic(), len(minutes) - 1)
                minutes[-1].sent += 1
                if len(published) > 10_000:     # unanswered (dropped) frames: forget the oldest
                    for s in sorted(published)[:5_000]:
                        published.pop(s, None)
            if index == 0:
                with lock:
                    init_stamps.add(stamp)
            pub.publish(msg)
            if index == 0:
                init = TargetInit(header=make_header(stamp), target_id=1)
                init.x, init.y, init.width, init.height = (float(v) for v in init_box)
                pub_init.publish(init)
                reinit += 1
            i += 1
            sleep = start + i * period - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
        rows = [m.row(n + 1) for n, m in enumerate(minutes)]
        first, last = rows[0]["rss_mb"], rows[-1]["rss_mb"]
        with lock:
            values = dict(diag.get("values", {}))
        result = {
            "command": "python -m siam_tracker_ros.ros.soak " + " ".join(sys.argv[1:]),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_text(), "source": source, "fps": args.fps, "size": f"{w}x{h}",
            "minutes": args.minutes, "inits": reinit, "init_acks": diag.get("acks", 0), "rows": rows,
            "rss_after_minute_1_mb": first, "rss_end_mb": last,
            "rss_ratio": last / first if first else float("nan"),
            "node_model": values.get("model"), "node_device": values.get("device"),
            "node_weights": values.get("weights"),
            "omp_num_threads": env.get("OMP_NUM_THREADS"),
        }
        print(f"RSS after minute 1 {first:.1f} MB, at the end {last:.1f} MB: ratio {result['rss_ratio']:.4f} "
              f"({'within' if abs(result['rss_ratio'] - 1) <= 0.05 else 'OUTSIDE'} 5%)", flush=True)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        code = proc.stop(signal.SIGINT)
        if result:
            result["node_exit_code"] = code
    return result


def machine_text() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"{cpu}, {os.cpu_count()} cores, load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"


def markdown(result: Dict) -> str:
    lines = [
        "# Soak benchmark: the tracker node under 30 Hz 640x480 input",
        "",
        f"Command: `{result['command']}`  ",
        f"Date: {result['date_utc']}  ",
        f"Machine: {result['machine']} (CPU only; node with OMP_NUM_THREADS={result['omp_num_threads']})  ",
        f"Input: {result['source']}, {result['fps']} Hz bgr8 {result['size']}, best-effort QoS, "
        f"config/tracker.yaml; target re-initialised on frame 0 of every pass ({result['inits']} inits; "
        f"{result.get('init_acks', 0)} init acknowledgements received: frame 0's TrackedObject "
        "published again by the node when the init was applied after that frame had been answered; "
        "not counted as results)  ",
        f"Node: model {result['node_model']} ({result['node_weights']}), device {result['node_device']}",
        "",
        "Latency: publish -> TrackedObject received by the client (includes DDS both ways); "
        "node = the message's own latency field (frame arrival at the node -> publish). "
        "Dropped: frames the node overwrote before tracking them (busy) per minute, from /diagnostics.",
        "",
        "| minute | sent | results | TRACKING | LOST | latency p50 ms | latency p95 ms | node p50 ms | "
        "node p95 ms | dropped | node RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['minute']} | {r['sent']} | {r['results']} | {r['tracking']} | {r['lost']} | "
                     f"{r['latency_p50_ms']:.1f} | {r['latency_p95_ms']:.1f} | {r['node_latency_p50_ms']:.1f} | "
                     f"{r['node_latency_p95_ms']:.1f} | {r['node_dropped']} | {r['rss_mb']:.1f} |")
    ratio = result["rss_ratio"]
    p95 = [r["latency_p95_ms"] for r in result["rows"]]
    lines += [
        "",
        f"Resident memory of the node: {result['rss_after_minute_1_mb']:.1f} MB after minute 1, "
        f"{result['rss_end_mb']:.1f} MB at the end: ratio {ratio:.4f} "
        f"({'within' if abs(ratio - 1) <= 0.05 else 'NOT within'} the 5% bound).  ",
        f"Latency p95 per minute: min {min(p95):.1f} ms, max {max(p95):.1f} ms, median {np.median(p95):.1f} ms.  ",
        f"Node exit code after SIGINT: {result.get('node_exit_code')}.",
        "",
    ]
    if result.get("notes"):
        lines += [result["notes"], ""]
    return "\n".join(lines)


def search_cost(sequence: str = "VOT_bag", size=(640, 480), frames_each: int = 40) -> Dict[str, float]:
    """Per-frame cost of one target through its supervisor, TRACKING vs LOST (searching), in
    this process with 1 torch thread: the default model on `sequence` resized to `size`;
    `frames_each` frames tracked normally, then `frames_each` frames with the target's area
    (3x its box) greyed out, which makes it LOST. What the node's worker pays per LOST target."""
    import torch

    from ..core.tracking import loading
    from ..core.tracking.monitor import TargetSupervisor
    from . import params
    torch.set_num_threads(1)
    frames, box, source = load_frames(sequence, size)
    sup = TargetSupervisor(loading.load("default", device="cpu", engine="torch").new_tracker(),
                           **params.supervisor_params(params.defaults()))
    sup.init(frames[0], box)
    tracking, lost, states = [], [], []
    for i in range(1, frames_each + 1):
        t = time.perf_counter()
        r = sup.step(frames[i])
        (tracking if int(r.state) == 1 else lost).append(time.perf_counter() - t)
    x, y, w, h = (int(round(v)) for v in sup.tracker.box)
    for i in range(frames_each):
        f = frames[frames_each + 1 + i].copy()
        f[max(0, y - h):y + 2 * h, max(0, x - w):x + 2 * w] = 127
        t = time.perf_counter()
        r = sup.step(f)
        d = time.perf_counter() - t
        states.append(int(r.state))
        if int(r.state) == 2:
            lost.append(d)
    ms = lambda v, q: float(np.percentile(v, q) * 1e3) if v else float("nan")  # noqa: E731
    out = {"source": source, "tracking_frames": len(tracking), "tracking_p50_ms": ms(tracking, 50),
           "tracking_p95_ms": ms(tracking, 95), "lost_frames": len(lost), "lost_p50_ms": ms(lost, 50),
           "lost_p95_ms": ms(lost, 95), "first_lost_frame": states.index(2) + 1 if 2 in states else -1,
           "search_tiles": sup.params.get("search_tiles")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--sequence", default="VOT_bag")
    ap.add_argument("--params", help="node params file (default config/tracker.yaml)")
    ap.add_argument("--param", action="append", default=[], help="extra node parameter NAME:=VALUE")
    ap.add_argument("--log-dir", help="ROS_LOG_DIR for the node (default log/soak)")
    ap.add_argument("--json", help="write the figures as JSON here")
    ap.add_argument("--markdown", help="write a Markdown report here")
    ap.add_argument("--echo", action="store_true", help="print the node's output")
    ap.add_argument("--render", metavar="JSON", help="only write the Markdown (--markdown / stdout) of a "
                    "finished run's --json file")
    ap.add_argument("--search-cost", action="store_true",
                    help="instead of the soak: per-frame cost of one target TRACKING vs LOST (searching)")
    args = ap.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            text = markdown(json.load(f))
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(text)
        print(text)
        return 0
    if args.search_cost:
        w, h = (int(v) for v in args.size.lower().split("x"))
        out = search_cost(args.sequence, (w, h))
        out["machine"] = machine_text()
        print(json.dumps(out, indent=2))
        return 0
    result = run(args)
    if not result:
        return 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    text = markdown(result)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(text)
    print(text)
    return 0 if abs(result["rss_ratio"] - 1.0) <= 0.05 else 2


if __name__ == "__main__":
    sys.exit(main())
