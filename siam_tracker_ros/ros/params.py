"""The tracker node's parameters: one table gives name, default, description,
range and when a change takes effect.

config/tracker.yaml holds the same defaults in the ROS params-file format
(`siam_tracker: ros__parameters: ...`); test_node_params.py checks they agree.

Three kinds of parameter:
- runtime (the default): a change takes effect at the next frame;
- reload (`reload=True`: model, weights, device, engine, threads, input, QoS):
  in the plain node they are read-only (restart the node); in the lifecycle
  node they can be set while the node is unconfigured (cleanup, set,
  configure) and are refused with that reason otherwise;
- start-only (`read_only=True`, diagnostics_period): read-only in both modes.

Declared on top of this table by the node (not in config/tracker.yaml, which
can still set them): `supervisor.<name>` for every supervisor parameter
without a node parameter of its own (core/tracking/monitor.py
SUPERVISOR_DEFAULTS; lost_threshold / recover_threshold map onto the
supervisor's thresholds), and `tracker.<name>` for the loaded model's tracking
hyper-parameters in RUNTIME_TRACKER_KEYS (runtime).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

NODE_NAME = "siam_tracker"


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    read_only: bool = False            # True: takes effect only at start (both modes)
    range: Optional[Tuple[float, float]] = None   # inclusive
    choices: Optional[Tuple[str, ...]] = None
    reload: bool = False               # needs a model reload / new subscription (see module doc)


RELOAD_REASON = ("needs a model reload: restart the node, or in lifecycle mode deactivate + "
                 "cleanup, set it, configure + activate")

PARAMS = (
    Param("model", "default",
          "Model name (config/models/NAME.yaml), a model YAML path or a checkpoint file. "
          "'default' falls back to 'siamfc' while no default model config exists.", reload=True),
    Param("weights", "",
          "Weights file overriding the model config's; empty: the config's weights (or none: random init).",
          reload=True),
    Param("device", "auto", "Torch device: auto, cpu, cuda or cuda:N.", reload=True),
    Param("engine", "torch",
          "Inference engine: torch (eager) or onnxruntime (the model exported once as "
          "template + search ONNX parts, cached; see docs/DEPLOYMENT.md).", reload=True,
          choices=("torch", "onnxruntime")),
    Param("input", "raw",
          "Image input: raw (sensor_msgs/Image on `image`) or compressed (sensor_msgs/"
          "CompressedImage, jpeg or png, on `image`'s name + '/compressed', as image_transport names it).",
          reload=True, choices=("raw", "compressed")),
    Param("lost_threshold", 0.3,
          "Target supervisor's score_lost: a frame whose score is below it counts as bad "
          "(supervisor.lost_frames bad frames in a row -> LOST, box zero). The supervisor also "
          "judges the confidence map's entropy, score drop and box jumps (supervisor.*).",
          range=(0.0, 1.0)),
    Param("recover_threshold", 0.7,
          "Target supervisor's recover_below: a LOST target's re-found candidate must have a "
          "badness at or below it (on supervisor.recover_frames frames) to be TRACKING again; "
          "lower = stricter.", range=(0.0, 1.0)),
    Param("max_targets", 8, "Most targets tracked at once; an init for a further id is refused.",
          range=(1, 64)),
    Param("publish_debug_image", True,
          "Publish ~/debug_image (bgr8 overlay) while it has subscribers."),
    Param("frame_cache_size", 30,
          "Recent frames kept by stamp so an init box is applied to the frame it was drawn on.",
          range=(1, 1000)),
    Param("catch_up_max_frames", 5,
          "After an init on a cached frame, track at most this many of the cached frames "
          "between it and the newest (evenly spaced) before the newest.", range=(0, 1000)),
    Param("clock_jump_threshold", 3.0,
          "A frame whose stamp is older than the newest seen is dropped (out of order) unless it "
          "is older by at least this many seconds: then the source clock was reset (bag loop, "
          "sim restart, driver restart): reported, the frame cache cleared, the frame accepted.",
          range=(0.0, 86400.0)),
    Param("input_timeout", 1.0,
          "Seconds without an image after which /diagnostics reports ERROR (targets set) or WARN "
          "(no target).", range=(0.05, 3600.0)),
    Param("drop_warn_ratio", 0.5,
          "/diagnostics WARN when more than this fraction of the frames received in the last 5 s "
          "were dropped (busy, out of order, unreadable).", range=(0.0, 1.0)),
    Param("mono16_mode", "percentile",
          "16-bit mono images (mono16, 16UC1) to 8 bit: percentile (per-frame 1st..99th "
          "percentile stretch) or shift (the high byte).", choices=("percentile", "shift")),
    Param("qos.reliability", "best_effort", "QoS reliability of the image subscription.",
          reload=True, choices=("best_effort", "reliable")),
    Param("qos.depth", 1, "QoS history depth of the image subscription (keep last N).",
          reload=True, range=(1, 1000)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages; 0 disables them.",
          read_only=True, range=(0.0, 3600.0)),
    Param("num_threads", 0, "CPU threads of the engine (torch or onnxruntime); 0 keeps its default.",
          reload=True, range=(0, 256)),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}
RELOAD_PARAMS = tuple(p.name for p in PARAMS if p.reload)

# Tracking hyper-parameters read by the trackers at every frame (safe to change while tracking);
# declared as `tracker.<name>` when the loaded model's tracker has them. Geometry (exemplar /
# instance size, stride, anchors, context amount) needs a reload and is not exposed.
RUNTIME_TRACKER_KEYS = ("penalty_k", "window_influence", "lr", "scale_penalty", "scale_lr")


def defaults() -> Dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def descriptor(param: Param, lifecycle: bool = False):
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    read_only = param.read_only or (param.reload and not lifecycle)
    description = param.description
    if param.reload:
        description += (" (lifecycle node: set while unconfigured)" if lifecycle else " (restart)")
    d = ParameterDescriptor(name=param.name, type=kinds[type(param.default)],
                            description=description, read_only=read_only)
    if param.choices:
        d.additional_constraints = "one of: " + ", ".join(param.choices)
    if param.range is not None:
        lo, hi = param.range
        if isinstance(param.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return d


def check_value(name: str, value: Any) -> Optional[str]:
    """Reason why `value` is not acceptable for `name`, or None.

    rclpy enforces types and ranges from the descriptors; this adds the
    string choices (the descriptor can only describe those).
    """
    p = PARAMS_BY_NAME.get(name)
    if p is not None and p.choices and value not in p.choices:
        return f"{name} must be one of {', '.join(p.choices)}, got '{value}'"
    return None


def declare(node, lifecycle: bool = False) -> Dict[str, Any]:
    """Declare every parameter of the table on `node`; return their values (from the params
    file or defaults). `lifecycle`: reload parameters stay writable (see the module doc)."""
    values = {}
    for p in PARAMS:
        values[p.name] = node.declare_parameter(p.name, p.default, descriptor(p, lifecycle)).value
        reason = check_value(p.name, values[p.name])
        if reason:
            raise ValueError(reason)
    return values


def declare_extra(node, prefix: str, entries: Dict[str, Any], description: str) -> Dict[str, Any]:
    """Declare `prefix.<name>` runtime parameters (bool / int / float defaults) that are not
    declared yet; returns the values of all of them (params file overrides included)."""
    from rcl_interfaces.msg import ParameterDescriptor, ParameterType
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE}
    values = {}
    for key, default in entries.items():
        name = f"{prefix}.{key}"
        if type(default) not in kinds:
            continue
        if not node.has_parameter(name):
            node.declare_parameter(name, default, ParameterDescriptor(
                name=name, type=kinds[type(default)], description=description.format(key=key)))
        values[name] = node.get_parameter(name).value
    return values
