"""siam-demo: the tracker node end to end on a real clip, through rosbag2 files.

1. builds a rosbag2 (sqlite3 or MCAP) of sensor_msgs/Image from a real clip:
   Debian opencv-doc's vtest.avi (pedestrians, 768x576, 10 fps) by default;
2. starts `tracker_node` as its own process (config/tracker.yaml);
3. replays the bag into it at the recorded rate (raw CDR bytes through rclpy),
   after sending a TargetInit whose stamp names the first frame;
4. records the node's TrackedObject messages into a results bag;
5. writes out/demo/annotated.mp4 (boxes drawn as the node published them) and
   a summary (printed and out/demo/summary.json).

    siam-demo [--video PATH] [--box X Y W H] [--max-frames 120] [--out out/demo]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from .args import deprecated_alias
from .boxes import BoxAction

# A clearly visible pedestrian on frame 0 of vtest.avi (man in a dark coat, left of centre),
# picked by looking at the frame: x, y, w, h in px.
VTEST_BOX = (253.0, 220.0, 30.0, 89.0)
IMAGE_TOPIC = "/camera/image_raw"
INIT_DELAY_FRAMES = 3   # the init for frame 0 is sent after this many frames (and a first answer)


def log(text: str) -> None:
    print(f"[siam-demo] {text}", flush=True)


def find_vtest(install: bool) -> Optional[str]:
    """vtest.avi of the Debian package opencv-doc, through the project's media finder
    (train/media.py); `install`: fetch the missing registry media (apt-get as root)."""
    from ..train import media

    def found(ms):
        return next((v for v in ms.videos if os.path.basename(v) == "vtest.avi"), None)
    path = found(media.find_media())
    if path is None and install:
        log("vtest.avi not found: fetching registry media (python -m siam_tracker_ros.train.media --install)")
        path = found(media.install_media(pip=False, log=log))
    return path


def choose_clip(args):
    """(path, init box, description)."""
    if args.video:
        if args.box is None:
            raise SystemExit("siam-demo: --video needs --box X Y W H (the target on the first frame)")
        return args.video, tuple(args.box), args.video
    path = find_vtest(install=not args.no_install)
    if path is None:
        raise SystemExit(
            "siam-demo: no demo clip: install Debian's opencv-doc (apt-get install -y opencv-doc, "
            "gives /usr/share/doc/opencv-doc/examples/data/vtest.avi) or pass --video PATH --box X Y W H")
    return path, tuple(args.box) if args.box else VTEST_BOX, "opencv-doc vtest.avi (Debian package opencv-doc)"


def percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else float("nan")


def run(args) -> Dict:
    from ..core.tracking.base import TrackState
    from ..ros import bags
    from ..ros.client import TrackerClient
    from ..ros.image_conversion import image_msg_to_bgr
    from ..ros.outputs import draw_label, draw_track_overlay, stamp_ns
    from ..ros.process import NodeProcess, apply_to_this_process, fresh_domain_id, ros_environment, share_file
    import cv2
    from rclpy.serialization import serialize_message

    started = time.monotonic()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    video, box, source = choose_clip(args)
    _, video_fps = bags.video_info(video)
    fps = args.fps or video_fps or 10.0

    # 1. input bag
    input_bag = os.path.join(out, "input_bag")
    n = bags.write_image_bag(input_bag, bags.video_frames(video, args.max_frames), fps, topic=IMAGE_TOPIC,
                             storage=args.storage, overwrite=True)
    log(f"input bag {input_bag}: {n} frames of {source} at {fps:g} fps ({args.storage})")

    # 2. the node, as its own process, configured as the launch file does
    domain = fresh_domain_id()
    env = ros_environment(domain, log_dir=os.path.join(out, "ros_log"))
    apply_to_this_process(env)
    ros_args = ["--params-file", share_file("config", "tracker.yaml"), "-r", f"image:={IMAGE_TOPIC}"]
    if args.model:
        ros_args += ["-p", f"model:={args.model}"]
    if args.weights:
        ros_args += ["-p", f"weights:={args.weights}"]
    if args.threads:
        ros_args += ["-p", f"num_threads:={args.threads}"]
    node = NodeProcess(ros_args, env, echo=args.verbose)
    client = TrackerClient(IMAGE_TOPIC, domain_id=domain, confidence_maps=False)
    code = None
    try:
        if not client.wait_ready(60.0, node_alive=lambda: node.proc.poll() is None):
            raise SystemExit(f"siam-demo: the tracker node did not start:\n{node.output}")
        model_line = node.wait_for_line(r"model '", 1.0) or ""
        log(f"node up (ROS_DOMAIN_ID={domain}): {model_line.split(']: ', 1)[-1]}")

        # 3. replay at the recorded rate; the init names frame 0 by its stamp
        stamps = []
        init_sent = 0
        t_bag0 = t_wall0 = None
        for _, t_bag, raw, msg in bags.read_image_bag(input_bag, IMAGE_TOPIC):
            if t_bag0 is None:
                t_bag0, t_wall0 = t_bag, time.monotonic()
            delay = t_wall0 + (t_bag - t_bag0) * 1e-9 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamps.append(stamp_ns(msg.header.stamp))
            client.publish_frame(None, stamps[-1], msg=bytes(raw))   # the recorded CDR bytes
            if not init_sent and len(stamps) > INIT_DELAY_FRAMES and client.objects:
                # As a user clicking on frame 0 a little later: the box names frame 0 by its
                # stamp; the node applies it there (frame cache) and catches up.
                client.send_init(box, stamp=stamps[0], target_id=1)
                init_sent = len(stamps)
        replay_s = time.monotonic() - t_wall0
        client.wait_for(lambda: client.objects_for(stamps[-1]), 15.0)
        time.sleep(0.5)
        diag = client.diagnostic_values()
    finally:
        client_objects = list(client.objects)
        client_published = dict(client.published)
        client.close()
        code = node.stop(signal.SIGINT)
    if code != 0:
        log(f"warning: tracker_node exited with {code}")
    if not init_sent:
        log("warning: the node never answered a frame: no init was sent")
    else:
        log(f"init (box {box} on frame 0) sent after frame {init_sent - 1} was published")

    # 4. results bag: the TrackedObject messages as received (log time = receive time)
    results_bag = os.path.join(out, "results_bag")
    store = bags.typestore()
    wall_offset = time.time_ns() - time.monotonic_ns()
    with bags.new_writer(results_bag, args.storage, overwrite=True) as writer:
        conn = writer.add_connection("/siam_tracker/tracked_object", "siam_tracker_ros/msg/TrackedObject",
                                     typestore=store)
        for r in client_objects:
            writer.write(conn, int(r.time * 1e9) + wall_offset, serialize_message(r.msg))

    # 5. annotated video: the node's box on the frames it tracked; on dropped
    #    frames the last box, thin and grey
    by_stamp = {r.stamp: r.msg for r in client_objects}
    video_path = os.path.join(out, "annotated.mp4")
    writer = None
    last = None
    for i, (_, _, _, msg) in enumerate(bags.read_image_bag(input_bag, IMAGE_TOPIC)):
        frame = image_msg_to_bgr(msg).copy()
        result = by_stamp.get(stamps[i])
        if result is not None:
            last = result
            rbox = (result.x, result.y, result.width, result.height)
            draw_track_overlay(frame, TrackState(result.state), rbox, result.score, f"frame {i}")
        else:
            if last is not None and last.state == TrackState.TRACKING:
                x, y, w, h = (int(round(v)) for v in (last.x, last.y, last.width, last.height))
                cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), (160, 160, 160), 1)
            draw_label(frame, f"frame {i}: dropped by the node (newest-frame policy)", (200, 200, 200))
        if i == 0:
            x, y, w, h = (int(round(v)) for v in box)
            cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), (255, 128, 0), 1)
            draw_label(frame, "init", (255, 128, 0), origin=(x, max(12, y - 4)))
        if writer is None:
            writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                     (frame.shape[1], frame.shape[0]))
            if not writer.isOpened():
                video_path = os.path.splitext(video_path)[0] + ".avi"
                writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"MJPG"), fps,
                                         (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    writer.release()

    # 6. summary
    replayed = set(stamps)
    answered = [r for r in client_objects if r.stamp in replayed]
    # A stamp can be answered twice (the init frame: its IDLE acknowledgement, then its
    # tracked result): frames are counted by stamp, messages by message.
    answered_stamps = {r.stamp for r in answered}
    tracked = [r for r in answered if r.msg.state != TrackState.IDLE]   # the tracker ran on these
    latencies = [r.time - client_published[r.stamp] for r in tracked]
    states = {name: sum(1 for r in answered if r.msg.state == value)
              for name, value in (("IDLE", 0), ("TRACKING", 1), ("LOST", 2))}
    span = (tracked[-1].time - tracked[0].time) if len(tracked) > 1 else 0.0
    summary = {
        "clip": source, "video": video, "init_box_xywh": list(box), "fps_input": fps,
        "frames_published": len(stamps), "frames_answered": len(answered_stamps),
        "messages_answered": len(answered),
        "frames_tracked": len({r.stamp for r in tracked}), "frames_dropped": len(replayed - answered_stamps),
        "node_reported_dropped": int(diag.get("frames_dropped", -1)) if diag else None,
        "tracking_fps": (len(tracked) - 1) / span if span > 0 else 0.0,
        "latency_p50_ms": percentile(latencies, 50) * 1e3, "latency_p95_ms": percentile(latencies, 95) * 1e3,
        "latency_definition": "tracked frames: publish of the frame -> reception of its TrackedObject, "
                              "both in this process",
        "node_latency_p50_ms": percentile([r.msg.latency for r in tracked], 50) * 1e3,
        "node_latency_p95_ms": percentile([r.msg.latency for r in tracked], 95) * 1e3,
        "node_track_time_p50_ms": float(diag.get("track_time_p50_ms", "nan")) if diag else None,
        "states": states,
        "model": diag.get("model") if diag else None, "weights": diag.get("weights") if diag else None,
        "device": diag.get("device") if diag else None,
        "init_sent_after_frame": init_sent - 1 if init_sent else None,
        "node_exit_code": code, "replay_seconds": replay_s, "storage": args.storage,
        "input_bag": input_bag, "results_bag": results_bag, "annotated_video": video_path,
        "total_seconds": time.monotonic() - started,
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siam-demo", description=__doc__.split("\n")[0])
    parser.add_argument("--video", help="video file or image folder (default: opencv-doc's vtest.avi)")
    parser.add_argument("--box", nargs="+", action=BoxAction, metavar="X,Y,W,H",
                        help=f"target on the first frame (default for vtest.avi: {VTEST_BOX})")
    parser.add_argument("--max-frames", type=int, default=120, help="frames of the clip to use (default 120)")
    parser.add_argument("--fps", type=float, default=0.0, help="replay rate (default: the clip's)")
    parser.add_argument("--model", default="", help="override the params file's model")
    parser.add_argument("--weights", default="", help="override the model's weights")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads of the node (default: the params file's; 1 helps on busy machines)")
    deprecated_alias(parser, "--num-threads", new="--threads", dest="threads", type=int)
    parser.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"))
    parser.add_argument("--out", default=os.path.join("out", "demo"))
    parser.add_argument("--no-install", action="store_true",
                        help="do not fetch missing registry media (apt-get install opencv-doc as root)")
    parser.add_argument("--verbose", action="store_true", help="echo the node's log")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    # SIGTERM (timeout, CI) must unwind like Ctrl-C so the node process is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    args = build_parser().parse_args(argv)
    summary = run(args)
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if isinstance(value, float):
            value = f"{value:.1f}"
        print(f"  {key:<{width}}  {value}")
    log(f"summary: {os.path.join(os.path.abspath(args.out), 'summary.json')}")
    ok = summary["frames_tracked"] > 0 and summary["node_exit_code"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
