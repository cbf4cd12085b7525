"""The tracker registry: tracker classes (post-processing per head family) by type.

A tracker module registers its class with @register_tracker("type"); every module
of core/tracking is imported on first lookup, so adding a tracker family is adding
a file. The model registry (core/models/registry.py) is its counterpart one
package below: models know nothing of trackers.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Dict

TRACKER_CLASSES: Dict[str, type] = {}
_imported = False


def register_tracker(name: str):
    def deco(cls):
        TRACKER_CLASSES[name] = cls
        return cls
    return deco


def import_all() -> None:
    """Import every module of core/tracking (each registers its classes)."""
    global _imported
    if _imported:
        return
    pkg = importlib.import_module(__name__.rpartition(".")[0])
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")
    _imported = True


def tracker_class(kind: str) -> type:
    import_all()
    if kind not in TRACKER_CLASSES:
        raise ValueError(f"unknown tracker type '{kind}'; registered: {sorted(TRACKER_CLASSES)}")
    return TRACKER_CLASSES[kind]
