"""Which image topic the node reads, with which QoS, and the deprecated parameters behind them.

QoS is ROS 2's standard way: every subscription and result publisher is created with
`QoSOverridingOptions.with_default_policies()`, so a params file sets
`qos_overrides./<topic>.subscription.reliability` (or `.depth`, `.history`; `publisher`
for the results), as for any rclcpp / rclpy node. The defaults: the image subscription
best effort, keep last 1 (a tracker wants the newest frame); results reliable, keep last 10.

For one release the former parameters still work, with a warning at activate:
`input` (now `image_transport`, image_pipeline's name), `qos.reliability` and
`qos.depth` (now the QoS overrides of the image subscription). A former parameter at its
default changes nothing and is not reported.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from .params import DEPRECATED, NODE_PARAMS

# ~/init, ~/remove and ~/init_target requests held until the executor takes them: a burst
# of 100 is not lost (rclpy's default keeps 10)
REQUEST_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)


def image_transport(values: Dict[str, Any]) -> Tuple[str, List[str]]:
    """The transport to subscribe (raw | compressed) and the deprecation warnings."""
    transport, former = values["image_transport"], values["input"]
    if former == NODE_PARAMS["input"].default:
        return transport, []
    if transport != NODE_PARAMS["image_transport"].default:
        return transport, [f"parameter 'input' is deprecated and ignored here: image_transport={transport} "
                           f"is set (remove input:={former})"]
    return former, [f"parameter 'input' is deprecated (removed in the next release): use "
                    f"image_transport:={former}"]


def image_qos(values: Dict[str, Any], topic: str):
    """(QoSProfile, warnings): the image subscription's profile before the standard overrides."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    warnings = []
    reliability, depth = values["qos.reliability"], values["qos.depth"]
    for name, value in (("qos.reliability", reliability), ("qos.depth", depth)):
        if value != NODE_PARAMS[name].default:
            override = DEPRECATED[name].replace("<image topic>", topic)
            warnings.append(f"parameter '{name}' is deprecated (removed in the next release): use "
                            f"{override}:={value} (ROS 2 QoS overrides)")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                                   else ReliabilityPolicy.BEST_EFFORT)), warnings


def overridable() -> Dict[str, Any]:
    """Keyword arguments for create_subscription / create_publisher: the standard QoS overrides."""
    from rclpy.qos_overriding_options import QoSOverridingOptions
    return {"qos_overriding_options": QoSOverridingOptions.with_default_policies()}

