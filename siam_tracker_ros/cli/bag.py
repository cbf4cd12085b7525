"""siam-bag: rosbag2 tools (pure Python, `rosbags`; sqlite3 or MCAP).

    siam-bag from-video VIDEO_OR_IMAGE_FOLDER OUT_BAG [--fps 30] [--topic /camera/image_raw]
             [--encoding bgr8] [--max-frames N] [--storage sqlite3|mcap] [--overwrite]
    siam-bag info BAG
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def from_video(args) -> int:
    from ..ros import bags
    count, video_fps = bags.video_info(args.input)
    fps = args.fps or video_fps or 30.0
    n = bags.write_image_bag(args.output, bags.video_frames(args.input, args.max_frames, args.start),
                             fps, topic=args.topic, frame_id=args.frame_id, encoding=args.encoding,
                             storage=args.storage, overwrite=args.overwrite)
    print(f"{args.output}: {n} frames of {args.input} as {args.encoding} on {args.topic} at {fps:g} fps "
          f"({args.storage})")
    return 0


def info(args) -> int:
    from rosbags.rosbag2 import Reader
    with Reader(args.bag) as reader:
        print(f"{args.bag}: {reader.message_count} messages, {reader.duration * 1e-9:.2f} s")
        for c in reader.connections:
            print(f"  {c.topic}  {c.msgtype}  {c.msgcount} msgs")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="siam-bag", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("from-video", help="video file (.gz ok) or image folder -> rosbag2 of sensor_msgs/Image")
    p.add_argument("input")
    p.add_argument("output", help="bag folder to create")
    p.add_argument("--fps", type=float, default=0.0, help="frame rate (default: the video's, else 30)")
    p.add_argument("--topic", default="/camera/image_raw")
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--encoding", default="bgr8", choices=("bgr8", "rgb8", "mono8"))
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"))
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=from_video)
    p = sub.add_parser("info", help="topics and message counts of a bag")
    p.add_argument("bag")
    p.set_defaults(func=info)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"siam-bag: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
