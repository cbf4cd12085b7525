"""siam-bag: rosbag2 tools (pure Python, `rosbags`; sqlite3 or MCAP).

    siam-bag from-video INPUT OUT_BAG [--fps 30] [--topic /camera/image_raw] [--encoding bgr8 | --compress jpeg]
             [--start N] [--max-frames N] [--groundtruth FILE | --no-groundtruth]
             [--init auto|none|X,Y,W,H] [--storage sqlite3|mcap] [--overwrite]
        INPUT: a video file (.gz ok), an image folder, or a labelled sequence folder
        (NAME/img/*.jpg + groundtruth.txt or groundtruth_rect.txt: the shared and OTB layouts;
        NAME/*.jpg + groundtruth.txt [+ absence.label, cover.label]: GOT-10k, VOT).
        Ground truth -> siam_tracker_ros/TrackedObject on /groundtruth (stamps = the images');
        init -> siam_tracker_ros/TargetInit for the first frame on /siam_tracker/init.
    siam-bag replay BAG [--rate 1.0] [--lockstep TOPIC] [--loop] [--record OUT_BAG]
        publishes a bag into the ROS graph (for machines without `ros2 bag play`).
    siam-bag eval BAG [--model default] [--params-file config/tracker.yaml] [-p NAME=VALUE]
             [--no-supervisor] [--results-bag OUT] [--metrics-json F]
        the tracker over the bag offline (no ROS graph), with the node's target supervisor and
        thresholds: results bag + metrics when the bag has ground truth.
    siam-bag score RESULTS_BAG [--groundtruth-bag BAG]
        metrics of a results bag (e.g. recorded from the live node) against ground truth.
    siam-bag info BAG
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .boxes import box_argument, parse_box


def from_video(args) -> int:
    from ..ros import bags
    source = bags.find_sequence(args.input)
    count, video_fps = bags.video_info(source.frames)
    fps = args.fps or video_fps or 30.0
    gt = absent = None
    gt_file = None if args.no_groundtruth else (args.groundtruth or source.groundtruth)
    if gt_file:
        gt = bags.read_groundtruth(gt_file)
        absent = source.absent if not args.groundtruth else None
        stop = None if args.max_frames is None else args.start + args.max_frames
        gt = gt[args.start:stop]
        absent = None if absent is None else absent[args.start:stop]
    if args.init == "none":
        init = None
    elif args.init == "auto":
        init = gt[0] if gt is not None and len(gt) and bags.valid_box(gt[0]) else None
    else:
        init = list(parse_box(args.init))
    topic = args.topic or ("/camera/image_raw/compressed" if args.compress else "/camera/image_raw")
    frames = bags.video_frames(source.frames, args.max_frames, args.start)
    if not args.no_progress:
        from tqdm import tqdm
        todo = max(count - args.start, 0) if count else None
        if todo is not None and args.max_frames is not None:
            todo = min(todo, args.max_frames)
        frames = tqdm(frames, total=todo, unit="frame", file=sys.stderr, desc="writing")
    n = bags.write_image_bag(args.output, frames,
                             fps, topic=topic, frame_id=args.frame_id, encoding=args.encoding,
                             compression=args.compress, jpeg_quality=args.jpeg_quality,
                             storage=args.storage, overwrite=args.overwrite, groundtruth=gt, absent=absent,
                             groundtruth_topic=args.groundtruth_topic, init_box=init,
                             init_topic=args.init_topic, target_id=args.target_id)
    extra = []
    if gt is not None:
        extra.append(f"ground truth of {min(n, len(gt))} frames from {gt_file} on {args.groundtruth_topic}")
        if len(gt) < n:
            extra.append(f"{n - len(gt)} frames have no annotation row")
    if init is not None:
        extra.append(f"init ({', '.join(f'{v:g}' for v in init)}) for target {args.target_id} "
                     f"on {args.init_topic}")
    kind = f"{args.compress} (CompressedImage)" if args.compress else args.encoding
    print(f"{args.output}: {n} frames of {source.frames} as {kind} on {topic} at {fps:g} fps "
          f"({args.storage})" + "".join(f"; {e}" for e in extra))
    return 0


def info(args) -> int:
    from rosbags.rosbag2 import Reader
    with Reader(args.bag) as reader:
        print(f"{args.bag}: {reader.message_count} messages, {reader.duration * 1e-9:.2f} s")
        for c in reader.connections:
            print(f"  {c.topic}  {c.msgtype}  {c.msgcount} msgs")
    return 0


def replay(args) -> int:
    try:
        import rclpy  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, missing typesupport
        raise ValueError(f"replay needs rclpy and the ROS 2 message packages ({type(exc).__name__}: {exc}); "
                         "source env.sh (. ./env.sh) or a ROS 2 install") from None
    from ..ros.replay import BagReplay, parse_remaps
    player = BagReplay(args.bag, rate=args.rate, topics=args.topics or None, remap=parse_remaps(args.remap),
                       lockstep=args.lockstep, lockstep_timeout=args.lockstep_timeout,
                       init_timeout=args.init_timeout, loop=args.loop, record=args.record,
                       record_topics=args.record_topic or None, wait_subscribers=args.wait_subscribers,
                       reliability=args.qos_reliability, storage=args.storage, overwrite=args.overwrite)
    stats = player.run()
    return 0 if stats.get("error") is None else 1


def evaluate(args) -> int:
    from ..core.tracking.loading import check_model
    from ..ros import bag_eval
    try:
        check_model(args.model, args.weights or None, args.allow_untrained)
    except (ValueError, FileNotFoundError) as exc:
        print(f"siam-bag eval: {exc}", file=sys.stderr)
        return 2
    results_bag = None if args.no_results_bag else (args.results_bag or args.bag.rstrip("/") + "_results")
    sup_params = None
    if not args.no_supervisor:
        sup_params = bag_eval.node_supervisor_params(args.params_file, overrides=bag_eval.parse_params(args.param))
        if sup_params is not None:       # None: the params file switches the supervisor off
            sup_params.update(bag_eval.parse_params(args.supervisor_param))
    summary = bag_eval.evaluate(
        args.bag, model=args.model, device=args.device, weights=args.weights or None, engine=args.engine,
        threads=args.threads, supervisor=sup_params is not None,
        supervisor_params=sup_params, init_box=args.init_box,
        target_id=args.target_id, image_topic=args.image_topic, results_bag=results_bag,
        storage=args.storage, overwrite=args.overwrite, progress=not args.no_progress,
        allow_untrained=args.allow_untrained)
    print(f"{args.bag}: {summary['frames']} frames, model {args.model} on {summary['device']}, "
          f"supervisor {'on' if summary['supervisor'] else 'off'}, {summary['fps']:.1f} fps, "
          f"{summary['lost_frames']} frames LOST" + (f"; results: {results_bag}" if results_bag else ""))
    if "metrics" in summary:
        bag_eval.print_metrics(summary["metrics"])
    else:
        print("  no ground truth in the bag: no metrics")
    metrics_json = args.metrics_json or (results_bag + ".metrics.json" if results_bag else None)
    if metrics_json:
        bag_eval.write_json(metrics_json, summary)
        print(f"  summary: {metrics_json}")
    return 0


def score(args) -> int:
    from ..ros import bag_eval
    out = bag_eval.score_bags(args.results_bag, args.groundtruth_bag, args.target_id,
                              results_topic=args.results_topic, groundtruth_topic=args.groundtruth_topic)
    print(f"{args.results_bag}: target {out['target_id']} against {out['groundtruth_bag']}")
    bag_eval.print_metrics(out["metrics"])
    if args.metrics_json:
        bag_eval.write_json(args.metrics_json, out)
        print(f"  summary: {args.metrics_json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ..ros import bags
    parser = argparse.ArgumentParser(prog="siam-bag", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("from-video", help="video, image folder or labelled sequence -> rosbag2 "
                                          "(images, ground truth, init)")
    p.add_argument("input", help="video file (.gz ok), image folder, or sequence folder (img/ + groundtruth.txt)")
    p.add_argument("output", help="bag folder to create")
    p.add_argument("--fps", type=float, default=0.0, help="frame rate (default: the video's, else 30)")
    p.add_argument("--topic", default=None,
                   help="image topic (default /camera/image_raw; /camera/image_raw/compressed with --compress)")
    p.add_argument("--frame-id", default="camera")
    p.add_argument("--encoding", default="bgr8", choices=("bgr8", "rgb8", "mono8"))
    p.add_argument("--compress", default=None, choices=bags.COMPRESSIONS,
                   help="write sensor_msgs/CompressedImage (as image_transport's compressed plugin) "
                        "instead of raw images; the node reads them with input:=compressed")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--groundtruth", default=None,
                   help="annotation file (x,y,w,h per line; default: the sequence folder's groundtruth.txt "
                        "or groundtruth_rect.txt); rows are taken as they are (no 1-based shift)")
    p.add_argument("--no-groundtruth", action="store_true", help="do not write the ground truth topic")
    p.add_argument("--groundtruth-topic", default=bags.GROUNDTRUTH_TOPIC)
    p.add_argument("--init", default="auto",
                   help="TargetInit for the first frame: auto (the first ground-truth box, if any), none, "
                        "or X,Y,W,H")
    p.add_argument("--init-topic", default=bags.INIT_TOPIC)
    p.add_argument("--target-id", type=int, default=1)
    p.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"))
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (tqdm, on stderr)")
    p.set_defaults(func=from_video)

    p = sub.add_parser("replay", help="publish a bag into the ROS graph (recorded rate, --rate, --lockstep)")
    p.add_argument("bag")
    p.add_argument("--rate", type=float, default=1.0,
                   help="speed factor of the recorded timing (2 = twice as fast); 0 = no pacing")
    p.add_argument("--topics", nargs="+", help="only these topics (default: all)")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                   help="publish topic FROM as TO (repeatable)")
    p.add_argument("--lockstep", metavar="TOPIC", default=None,
                   help="after each image, wait for a message on TOPIC stamped with the image's stamp "
                        "(e.g. /siam_tracker/tracked_object); after a TargetInit, for its answer")
    p.add_argument("--lockstep-timeout", type=float, default=10.0,
                   help="seconds to wait for an image's answer before going on (counted)")
    p.add_argument("--init-timeout", type=float, default=2.0,
                   help="seconds to wait for the node's answer to an init in lockstep mode")
    p.add_argument("--loop", action="store_true",
                   help="replay again and again (each pass shifts the header stamps by the bag's length)")
    p.add_argument("--record", metavar="OUT_BAG", default=None,
                   help="record topics while replaying (default topics: the lockstep topic or "
                        f"{bags.RESULTS_TOPIC})")
    p.add_argument("--record-topic", action="append", default=[], help="topic to record (repeatable)")
    p.add_argument("--wait-subscribers", type=float, default=30.0,
                   help="seconds to wait for subscribers of the image and init topics before starting "
                        "(0 = start at once)")
    p.add_argument("--qos-reliability", default="reliable", choices=("reliable", "best_effort"),
                   help="publishers' reliability (reliable reaches best-effort and reliable subscribers)")
    p.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"))
    p.add_argument("--overwrite", action="store_true", help="overwrite the --record bag")
    p.set_defaults(func=replay)

    p = sub.add_parser("eval", help="the tracker over a bag offline: results bag + metrics")
    p.add_argument("bag")
    p.add_argument("--model", default="default", help="model name, YAML or checkpoint (as siam-eval)")
    p.add_argument("--weights", default="")
    p.add_argument("--allow-untrained", action="store_true",
                   help="run a model that has no trained weights (random init) instead of refusing it")
    p.add_argument("--device", default="cpu")
    p.add_argument("--engine", default=None, choices=(None, "torch", "onnxruntime"))
    p.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads (siam-eval's default: 1)")
    p.add_argument("--no-supervisor", action="store_true",
                   help="raw tracker boxes, never LOST (as siam-eval; the node with its supervisor off)")
    p.add_argument("--params-file", default=None,
                   help="the node's params file (e.g. config/tracker.yaml): the supervisor gets the "
                        "thresholds the node would use (default: the node's parameter defaults)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="node parameter on top of the params file, e.g. supervisor.score_lost=0.3 or "
                        "supervisor.lost_frames=5 (repeatable)")
    p.add_argument("--supervisor-param", action="append", default=[], metavar="KEY=VALUE",
                   help="TargetSupervisor parameter by its own name (core/tracking/params.py; repeatable)")
    p.add_argument("--init-box", type=box_argument, default=None, metavar="X,Y,W,H",
                   help="init on the first frame (default: the bag's TargetInit, else the ground truth)")
    p.add_argument("--target-id", type=int, default=1)
    p.add_argument("--image-topic", default=None, help="default: the bag's only image topic")
    p.add_argument("--results-bag", default=None, help="default: BAG_results")
    p.add_argument("--no-results-bag", action="store_true")
    p.add_argument("--metrics-json", default=None, help="default: RESULTS_BAG.metrics.json")
    p.add_argument("--storage", default="sqlite3", choices=("sqlite3", "mcap"))
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (tqdm, on stderr)")
    p.set_defaults(func=evaluate)

    p = sub.add_parser("score", help="metrics of a results bag against ground truth")
    p.add_argument("results_bag")
    p.add_argument("--groundtruth-bag", default=None,
                   help="bag with the ground truth (e.g. the input bag); default: the results bag itself")
    p.add_argument("--target-id", type=int, default=None, help="default: the init's target")
    p.add_argument("--results-topic", default=bags.RESULTS_TOPIC)
    p.add_argument("--groundtruth-topic", default=bags.GROUNDTRUTH_TOPIC)
    p.add_argument("--metrics-json", default=None)
    p.set_defaults(func=score)

    p = sub.add_parser("info", help="topics and message counts of a bag")
    p.add_argument("bag")
    p.set_defaults(func=info)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"siam-bag: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
