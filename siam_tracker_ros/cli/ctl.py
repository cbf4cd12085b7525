"""siam-ctl: talk to a running tracker node without the `ros2` command line (the venv flow
has rclpy but no ros2cli). Each subcommand does what the `ros2` command beside it does:

    siam-ctl init 2 120 80 40 60 [--stamp NS]   ros2 topic pub --once /siam_tracker/init siam_tracker_ros/msg/TargetInit "{...}"
    siam-ctl remove 2                           ros2 topic pub --once /siam_tracker/remove std_msgs/msg/UInt32 "{data: 2}"
    siam-ctl reset                              ros2 service call /siam_tracker/reset std_srvs/srv/Trigger
    siam-ctl param max_targets 3                ros2 param set /siam_tracker max_targets 3
    siam-ctl param max_targets                  ros2 param get /siam_tracker max_targets
    siam-ctl lifecycle configure                ros2 lifecycle set /siam_tracker configure
    siam-ctl lifecycle                          ros2 lifecycle get /siam_tracker
    siam-ctl echo [--count N]                   ros2 topic echo /siam_tracker/tracked_object

`--node` names the node (default /siam_tracker; /drone1/siam_tracker for a namespaced one).
The domain is ROS_DOMAIN_ID's, as for every ROS program (env.sh sets one per checkout).
Exit code 0 on success, 1 when the node refused, 2 when it did not answer in --timeout s.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

NODE = "/siam_tracker"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siam-ctl", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("--node", default=NODE, help="full name of the tracker node (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the node (discovery, answer); default %(default)s")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="add a target (a new id) or initialise it again (a known id)")
    p.add_argument("target_id", type=int)
    for name in ("x", "y", "width", "height"):
        p.add_argument(name, type=float, help="box in pixels, top-left corner and size")
    p.add_argument("--stamp", type=int, default=0,
                   help="stamp (ns) of the frame the box was drawn on; 0 = the newest frame")
    p.add_argument("--frame-id", default="", help="header.frame_id")
    p = sub.add_parser("remove", help="drop one target")
    p.add_argument("target_id", type=int)
    sub.add_parser("reset", help="drop every target")
    p = sub.add_parser("param", help="get a parameter, or set it when a value is given")
    p.add_argument("name")
    p.add_argument("value", nargs="?", help="YAML value, typed as `ros2 param set` types it (3, 0.5, true, text)")
    p = sub.add_parser("lifecycle", help="lifecycle node: the state, or a transition")
    p.add_argument("transition", nargs="?",
                   help="configure, activate, deactivate, cleanup, shutdown; none: print the state")
    p = sub.add_parser("echo", help="print the node's TrackedObject messages")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (0: until Ctrl-C)")
    return parser


class _Session:
    """An rclpy node of our own, spun on demand."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("siam_ctl", context=self.context, start_parameter_services=False)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def call(self, client, request, timeout: float):
        if not self.spin_until(client.service_is_ready, timeout):
            return None
        future = client.call_async(request)
        self.spin_until(future.done, timeout)
        return future.result() if future.done() else None

    def publish_once(self, msg_type, topic: str, msg, timeout: float) -> bool:
        """Publish when the node's subscription is matched; wait until it is delivered."""
        publisher = self.node.create_publisher(msg_type, topic, 10)
        if not self.spin_until(lambda: publisher.get_subscription_count() > 0, timeout):
            return False
        publisher.publish(msg)
        from rclpy.duration import Duration
        return publisher.wait_for_all_acked(Duration(seconds=timeout))

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.context.try_shutdown()


def _parameter_text(value) -> str:
    from rcl_interfaces.msg import ParameterType
    fields = {ParameterType.PARAMETER_BOOL: "bool_value", ParameterType.PARAMETER_INTEGER: "integer_value",
              ParameterType.PARAMETER_DOUBLE: "double_value", ParameterType.PARAMETER_STRING: "string_value"}
    if value.type == ParameterType.PARAMETER_NOT_SET:
        return "not set"
    return str(getattr(value, fields.get(value.type, "string_value")))


def _init(s: _Session, args) -> int:
    from siam_tracker_ros.msg import TargetInit
    msg = TargetInit(target_id=args.target_id, x=args.x, y=args.y, width=args.width, height=args.height)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(args.stamp, 1_000_000_000)
    msg.header.frame_id = args.frame_id
    return 0 if s.publish_once(TargetInit, f"{args.node}/init", msg, args.timeout) else 2


def _remove(s: _Session, args) -> int:
    from std_msgs.msg import UInt32
    return 0 if s.publish_once(UInt32, f"{args.node}/remove", UInt32(data=args.target_id), args.timeout) else 2


def _reset(s: _Session, args) -> int:
    from std_srvs.srv import Trigger
    result = s.call(s.node.create_client(Trigger, f"{args.node}/reset"), Trigger.Request(), args.timeout)
    if result is None:
        return 2
    print(result.message)
    return 0 if result.success else 1


def _param(s: _Session, args) -> int:
    from rcl_interfaces.srv import GetParameters, SetParameters
    if args.value is None:
        result = s.call(s.node.create_client(GetParameters, f"{args.node}/get_parameters"),
                        GetParameters.Request(names=[args.name]), args.timeout)
        if result is None:
            return 2
        print(_parameter_text(result.values[0]))
        return 0
    import yaml
    from rclpy.parameter import Parameter
    try:
        value = yaml.safe_load(args.value)
    except yaml.YAMLError:
        value = args.value
    if not isinstance(value, (bool, int, float, str)):
        value = args.value
    request = SetParameters.Request(parameters=[Parameter(args.name, value=value).to_parameter_msg()])
    result = s.call(s.node.create_client(SetParameters, f"{args.node}/set_parameters"), request, args.timeout)
    if result is None:
        return 2
    outcome = result.results[0]
    print("Set parameter successful" if outcome.successful else f"Setting parameter failed: {outcome.reason}")
    return 0 if outcome.successful else 1


def _lifecycle(s: _Session, args) -> int:
    from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
    if not args.transition:
        result = s.call(s.node.create_client(GetState, f"{args.node}/get_state"), GetState.Request(), args.timeout)
        if result is None:
            return 2
        print(f"{result.current_state.label} [{result.current_state.id}]")
        return 0
    # as `ros2 lifecycle set`: the transition whose label is given, among those available now
    available = s.call(s.node.create_client(GetAvailableTransitions, f"{args.node}/get_available_transitions"),
                       GetAvailableTransitions.Request(), args.timeout)
    if available is None:
        return 2
    matches = [t.transition for t in available.available_transitions if t.transition.label == args.transition]
    if not matches:
        labels = sorted({t.transition.label for t in available.available_transitions})
        print(f"Unknown transition requested, available ones are: {', '.join(labels)}", file=sys.stderr)
        return 1
    result = s.call(s.node.create_client(ChangeState, f"{args.node}/change_state"),
                    ChangeState.Request(transition=matches[0]), args.timeout)
    if result is None:
        return 2
    print("Transitioning successful" if result.success else "Transitioning failed")
    return 0 if result.success else 1


def _echo(s: _Session, args) -> int:
    from siam_tracker_ros.msg import TrackedObject
    count = [0]

    def show(msg):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        print(f"stamp {stamp} target {msg.target_id} state {msg.state} box "
              f"{msg.x:.1f},{msg.y:.1f},{msg.width:.1f},{msg.height:.1f} score {msg.score:.3f}", flush=True)
        count[0] += 1
    s.node.create_subscription(TrackedObject, f"{args.node}/tracked_object", show, 10)
    try:
        while not args.count or count[0] < args.count:
            s.executor.spin_once(timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    return 0


COMMANDS = {"init": _init, "remove": _remove, "reset": _reset, "param": _param, "lifecycle": _lifecycle,
            "echo": _echo}


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    args.node = "/" + args.node.strip("/")
    session = _Session()
    try:
        code = COMMANDS[args.command](session, args)
    finally:
        session.close()
    if code == 2:
        print(f"siam-ctl: no answer from {args.node} within {args.timeout} s (is it running, on "
              f"ROS_DOMAIN_ID {os.environ.get('ROS_DOMAIN_ID', '0')}?)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
