"""The tracker node's parameters: one table gives name, default, description,
range and whether a change needs a restart (read-only).

config/tracker.yaml holds the same defaults in the ROS params-file format
(`siam_tracker: ros__parameters: ...`); test_node_params.py checks they agree.
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
    read_only: bool = False            # True: takes effect only at start (model, QoS, ...)
    range: Optional[Tuple[float, float]] = None   # inclusive
    choices: Optional[Tuple[str, ...]] = None


PARAMS = (
    Param("model", "default",
          "Model name (config/models/NAME.yaml), a model YAML path or a checkpoint file. "
          "'default' falls back to 'siamfc' while no default model config exists.", read_only=True),
    Param("weights", "",
          "Weights file overriding the model config's; empty: the config's weights (or none: random init).",
          read_only=True),
    Param("device", "auto", "Torch device: auto, cpu, cuda or cuda:N.", read_only=True),
    Param("engine", "torch",
          "Inference engine: torch (eager) or onnxruntime (the model exported once as "
          "template + search ONNX parts, cached; see docs/DEPLOYMENT.md).", read_only=True,
          choices=("torch", "onnxruntime")),
    Param("lost_threshold", 0.2,
          "Score below which the target is reported LOST (box zero).", range=(0.0, 1.0)),
    Param("recover_threshold", 0.3,
          "Score a LOST target must reach to be reported TRACKING again (hysteresis; "
          "values below lost_threshold act as lost_threshold).", range=(0.0, 1.0)),
    Param("publish_debug_image", True,
          "Publish ~/debug_image (bgr8 overlay) while it has subscribers."),
    Param("frame_cache_size", 30,
          "Recent frames kept by stamp so an init box is applied to the frame it was drawn on.",
          range=(1, 1000)),
    Param("catch_up_max_frames", 5,
          "After an init on a cached frame, track at most this many of the cached frames "
          "between it and the newest (evenly spaced) before the newest.", range=(0, 1000)),
    Param("qos.reliability", "best_effort", "QoS reliability of the image subscription.",
          read_only=True, choices=("best_effort", "reliable")),
    Param("qos.depth", 1, "QoS history depth of the image subscription (keep last N).",
          read_only=True, range=(1, 1000)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages; 0 disables them.",
          read_only=True, range=(0.0, 3600.0)),
    Param("num_threads", 0, "CPU threads of the engine (torch or onnxruntime); 0 keeps its default.", read_only=True,
          range=(0, 256)),
)

PARAMS_BY_NAME = {p.name: p for p in PARAMS}


def defaults() -> Dict[str, Any]:
    return {p.name: p.default for p in PARAMS}


def descriptor(param: Param):
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    d = ParameterDescriptor(name=param.name, type=kinds[type(param.default)],
                            description=param.description, read_only=param.read_only)
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


def declare(node) -> Dict[str, Any]:
    """Declare every parameter on `node`; return their values (from the params file or defaults)."""
    values = {}
    for p in PARAMS:
        values[p.name] = node.declare_parameter(p.name, p.default, descriptor(p)).value
        reason = check_value(p.name, values[p.name])
        if reason:
            raise ValueError(reason)
    return values
