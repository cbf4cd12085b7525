"""The tracker node's parameters: its own table, and the declarations, checks and params-file
reading that the node and the tools share.

Declared parameters:
- NODE_PARAMS below (config/tracker.yaml holds the same defaults; test_node_params.py
  checks they agree);
- `supervisor.<name>` for every row of core/tracking/params.py SUPERVISOR_PARAMS
  (runtime; `supervisor.enabled` is the node's own switch, a reload);
- `tracker.<name>` for the loaded tracker type's runtime rows of TRACKER_PARAMS,
  with the loaded model's values (declared at configure).
Every numeric parameter has a range and every parameter a description in its
descriptor (from the rows).

When a change takes effect:
- runtime (the default): at the next frame;
- reload (model, weights, allow_untrained, device, engine, precision, threads, image_transport,
  QoS, supervisor.enabled):
  accepted while the node is unconfigured (lifecycle: cleanup, set, configure),
  refused with that reason otherwise;
- read_only (diagnostics_period): at start only.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import yaml

from ..core.params import Param, table
from ..core.tracking.loading import shipped_trained_models
from ..core.tracking.params import SUPERVISOR_PARAMS, TRACKER_PARAMS, runtime_tracker_params

NODE_NAME = "siam_tracker"

RELOAD_REASON = ("needs a model reload: deactivate + cleanup the node (lifecycle), set it, "
                 "configure + activate, or restart the node")

# Former names: a params file still using them is refused with the new name.
RENAMED = {"lost_threshold": "supervisor.score_lost", "recover_threshold": "supervisor.recover_below"}
# Former names still accepted for one release (ros/topics.py applies them with a warning);
# config/tracker.yaml no longer lists them.
DEPRECATED = {"input": "image_transport", "qos.reliability": "qos_overrides.<image topic>.subscription.reliability",
              "qos.depth": "qos_overrides.<image topic>.subscription.depth"}
# Parameters rclpy declares on every node; QoS overrides (qos_overrides.<topic>...) belong to rclpy too.
ROS_BUILTIN = ("use_sim_time", "start_type_description_service")

NODE_PARAMS = table((
    Param("model", "default",
          "Model name (config/models/NAME.yaml), a model YAML path or a checkpoint file. Shipped trained: "
          + ", ".join(shipped_trained_models()) + "; any other model needs `weights` (or allow_untrained).",
          reload=True),
    Param("weights", "",
          "Weights file overriding the model config's; empty: the config's weights (a model without any is "
          "refused unless allow_untrained).", reload=True),
    Param("allow_untrained", False,
          "Run a model that has no trained weights with random weights instead of refusing to start "
          "(tests, architecture studies: such a tracker follows little).", reload=True),
    Param("device", "auto", "Torch device: auto, cpu, cuda or cuda:N.", reload=True,
          pattern=r"auto|cpu|cuda(:[0-9]{1,3})?"),
    Param("engine", "auto",
          "Inference engine: auto (onnxruntime on a CPU device when installed, the faster CPU path; else "
          "torch), torch (eager), onnxruntime (the model exported once as template + search ONNX parts, "
          "cached; see docs/DEPLOYMENT.md) or tensorrt (onnxruntime's TensorRT execution provider: refused "
          "at configure where onnxruntime has none).", reload=True,
          choices=("auto", "torch", "onnxruntime", "tensorrt")),
    Param("precision", "fp32",
          "Arithmetic of the engine: fp32, fp16 (torch on CUDA: autocast; tensorrt) or int8 (refused: "
          "measured far less accurate, docs/DEPLOYMENT.md). What the engine cannot run here is refused "
          "at configure with the reason.",
          reload=True, choices=("fp32", "fp16", "int8")),
    Param("image_transport", "raw",
          "Image transport, as image_pipeline's nodes name it: raw (sensor_msgs/Image on `image`) or "
          "compressed (sensor_msgs/CompressedImage, jpeg or png, on `image`'s name + '/compressed').",
          reload=True, choices=("raw", "compressed")),
    Param("input", "raw",
          "DEPRECATED (removed in the next release): the former name of image_transport; a value other "
          "than raw still applies, with a warning, unless image_transport is set.",
          reload=True, choices=("raw", "compressed")),
    Param("bearing.rectified", False,
          "The images are rectified (image_rect): ~/bearing uses camera_info's P and R instead of K and "
          "the distortion D (docs/ROS_NODE.md, Bearing).", reload=True),
    Param("supervisor.enabled", True,
          "Judge every target with the target supervisor (TRACKING / LOST, re-acquisition); false: the "
          "raw tracker results, never LOST (comparisons with siam-eval, debugging).", reload=True),
    Param("max_targets", 8, "Most targets tracked at once; an init for a further id is refused.",
          range=(1, 64)),
    Param("publish_debug_image", True,
          "Publish ~/debug_image (bgr8 overlay) while it has subscribers."),
    Param("frame_cache_size", 30,
          "Recent frames kept by stamp so an init box is applied to the frame it was drawn on.",
          range=(1, 1000)),
    Param("frame_cache_mb", 256,
          "Most megabytes (1e6 bytes) of image messages the frame cache keeps, as they came (compressed "
          "frames stay compressed); the oldest frames go first, the newest is always kept.",
          range=(1, 65536)),
    Param("max_image_pixels", 7680 * 4320,
          "Largest image accepted, in pixels (width x height; a compressed frame: as its header "
          "claims, checked before decoding); larger frames are dropped as unreadable.",
          range=(4, 1 << 29)),
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
    Param("qos.reliability", "best_effort",
          "DEPRECATED (removed in the next release): QoS reliability of the image subscription; use "
          "qos_overrides.<image topic>.subscription.reliability. A value other than best_effort still "
          "applies, with a warning.", reload=True, choices=("best_effort", "reliable")),
    Param("qos.depth", 1,
          "DEPRECATED (removed in the next release): keep-last depth of the image subscription; use "
          "qos_overrides.<image topic>.subscription.depth. A value other than 1 still applies, with a "
          "warning.", reload=True, range=(1, 1000)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages; 0 disables them.",
          read_only=True, range=(0.0, 3600.0)),
    Param("num_threads", 0, "CPU threads of the engine (torch or onnxruntime); 0 keeps its default.",
          reload=True, range=(0, 256)),
))


def row(name: str) -> Optional[Param]:
    """The row of a declared parameter name (node, supervisor.<name> or tracker.<name>)."""
    if name in NODE_PARAMS:
        return NODE_PARAMS[name]
    prefix, _, key = name.partition(".")
    if prefix == "supervisor":
        return SUPERVISOR_PARAMS.get(key)
    if prefix == "tracker":
        return TRACKER_PARAMS.get(key)
    return None


def defaults() -> Dict[str, Any]:
    """Every parameter declared at start (node and supervisor) with its default."""
    out = {name: p.default for name, p in NODE_PARAMS.items()}
    out.update({f"supervisor.{name}": p.default for name, p in SUPERVISOR_PARAMS.items()})
    return out


def needs_reload(name: str) -> bool:
    p = row(name)
    return p is not None and p.reload and not name.startswith("tracker.")


def check_change(name: str, value: Any) -> Optional[str]:
    """Why `value` is refused for parameter `name` (its row: type, range, choices, finite), or None."""
    p = row(name)
    if p is None:
        return None
    try:
        p.check(value)
    except ValueError as exc:            # the row names its key; the node parameter has a prefix
        return str(exc).replace(p.name, name, 1)
    return None


def supervisor_params(values: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The supervisor's keyword arguments from the node's parameter values; None when
    `supervisor.enabled` is false (no supervisor: raw results)."""
    if values.get("supervisor.enabled", True) is False:
        return None
    return {name: values[f"supervisor.{name}"] for name in SUPERVISOR_PARAMS if f"supervisor.{name}" in values}


def descriptor(name: str, p: Param):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    description = p.description + (" (needs a reload: set while unconfigured)" if needs_reload(name) else "")
    d = ParameterDescriptor(name=name, type=kinds[p.value_type], description=description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    if p.range is not None:
        lo, hi = p.range
        if p.value_type is float:
            d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
    return d


def declare(node) -> Dict[str, Any]:
    """Declare the node's and the supervisor's parameters; their values (params file or
    defaults). ValueError for a value its row refuses or a params-file key no row has."""
    values = {}
    for name, default in defaults().items():
        values[name] = node.declare_parameter(name, default, descriptor(name, row(name))).value
        reason = check_change(name, values[name])
        if reason:
            raise ValueError(reason)
    unknown = unknown_keys(getattr(node, "_parameter_overrides", {}) or {})
    if unknown:
        raise ValueError(unknown_text(unknown))
    return values


def declare_tracker(node, kind: str, current: Dict[str, Any]) -> Dict[str, Any]:
    """Declare `tracker.<name>` for the runtime rows of tracker type `kind` (defaults: the
    loaded model's values `current`); returns their values (params file overrides included)."""
    values = {}
    for key, p in runtime_tracker_params(kind).items():
        name = f"tracker.{key}"
        if not node.has_parameter(name) and current.get(key) is not None:
            node.declare_parameter(name, float(current[key]), descriptor(name, p))
        if node.has_parameter(name):
            values[name] = node.get_parameter(name).value
    return values


def known(name: str) -> bool:
    return (row(name) is not None and not (name.startswith("tracker.") and TRACKER_PARAMS[name[8:]].reload)
            or name in ROS_BUILTIN or name.startswith("qos_overrides."))


def unknown_keys(names) -> List[str]:
    return sorted(n for n in names if not known(n))


def unknown_text(unknown: List[str]) -> str:
    hints = [f"{n} (now {RENAMED[n]})" if n in RENAMED else n for n in unknown]
    return f"unknown parameter(s) {', '.join(hints)}; the parameters are listed in docs/ROS_NODE.md"


def read_params_file(path: str, node_name: str = NODE_NAME) -> Dict[str, Any]:
    """The node's section of a ROS params file (`NODE:` or `/**:` -> `ros__parameters`), nested keys
    flattened as `a.b`; ValueError for a key the node does not have (as the node refuses it)."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    section = doc.get(node_name) or doc.get(f"/{node_name}") or doc.get("/**") or {}
    flat: Dict[str, Any] = {}
    _flatten("", section.get("ros__parameters", {}), flat)
    if not flat:
        raise ValueError(f"{path}: no '{node_name}: ros__parameters:' section")
    unknown = unknown_keys(flat)
    if unknown:
        raise ValueError(f"{path}: {unknown_text(unknown)}")
    return flat


def _flatten(prefix: str, value, out: Dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


USAGE = """usage: tracker_node [-h] [--lifecycle [--autostart]] [--ros-args ...]

The siam_tracker node: tracks the targets given on ~/init in the images of `image`
(docs/ROS_NODE.md: topics, services, parameters).
  (no option)     configure and activate at start; exit 1 when the model cannot load
  --lifecycle     wait unconfigured for a lifecycle manager (`ros2 lifecycle set`)
  --autostart     with --lifecycle: configure and activate at once, stay alive on failure
  -h, --help      this text (ROS is not started)
examples:
  tracker_node --ros-args --params-file config/tracker.yaml -r image:=/camera/image_raw
  tracker_node --ros-args -p image_transport:=compressed -p engine:=onnxruntime -r image:=/cam/image_raw

parameters (-p NAME:=VALUE; also supervisor.* and tracker.*, see docs/ROS_NODE.md):"""


def usage() -> str:
    """`tracker_node --help`: the command line and every node parameter (default, description)."""
    import textwrap
    lines = [USAGE]
    for name, p in NODE_PARAMS.items():
        allowed = f" ({' | '.join(p.choices)})" if p.choices else (f" [{p.range[0]}, {p.range[1]}]" if p.range else "")
        lines.append(f"  {name} = {p.default!r}{allowed}")
        lines += textwrap.wrap(p.description, 96, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
