"""Run one node until SIGINT / SIGTERM, and tear it down in an order that does not crash.

rclpy's own signal handlers shut the context down under a running node; destroying
the node after that segfaulted now and then (rclpy#178 class). Here a signal only
ends the spin loop; then the node's worker stops (`stop_worker`), the node is
destroyed, and only then is rclpy shut down.
"""
from __future__ import annotations

import signal
import threading
from typing import Callable, List

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from .logging_utils import LogThrottle, one_line

_CALLBACK_ERRORS = LogThrottle(1.0)     # a callback failing at the message rate: one line a second


def spin_contained(executor, name: str) -> None:
    """One spin step; an exception a callback let through is logged (at most once a second),
    not raised: one bad message must not end the node."""
    try:
        executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        raise
    except Exception as exc:  # noqa: BLE001
        text = _CALLBACK_ERRORS.message(name, one_line(f"callback failed: {type(exc).__name__}: {exc}", 300))
        if text is not None:
            rclpy.logging.get_logger(name).error(text)


def run(argv: List[str], make_node: Callable, start: Callable, name: str) -> int:
    """0 after a signal; 1 when `make_node()` raises or `start(node)` says False."""
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            node = make_node()
        except Exception as exc:  # parameter values
            rclpy.logging.get_logger(name).fatal(f"cannot start: {exc}")
            return 0 if stop.is_set() else 1     # a signal during start-up is not an error
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            if not start(node):
                return 0 if stop.is_set() else 1
            while not stop.is_set() and rclpy.ok():
                spin_contained(executor, name)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            node.stop_worker()
            executor.remove_node(node)
            node.destroy_node()
            executor.shutdown()
        return 0
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
