"""The tracker registry: tracker classes (post-processing per head family) by type.

A tracker module registers its class with @register_tracker("type"); every module
of core/tracking is imported on first lookup, so adding a tracker family is adding
a file. The model registry (core/models/registry.py) is its counterpart one
package below: models know nothing of trackers.
"""
from __future__ import annotations

from typing import Dict

from ..plugins import import_submodules

TRACKER_CLASSES: Dict[str, type] = {}


def register_tracker(name: str):
    def deco(cls):
        TRACKER_CLASSES[name] = cls
        return cls
    return deco


def import_all() -> None:
    """Import every module of core/tracking (each registers its classes)."""
    import_submodules(__name__.rpartition(".")[0])


def tracker_class(kind: str) -> type:
    import_all()
    if kind not in TRACKER_CLASSES:
        raise ValueError(f"unknown tracker type '{kind}'; registered: {sorted(TRACKER_CLASSES)}")
    return TRACKER_CLASSES[kind]
