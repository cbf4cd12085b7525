"""Registries fill themselves by import: every module of a package registers what it defines
(model builders, weight loaders, tracker classes) with a decorator when it is imported."""
from __future__ import annotations

import functools
import importlib
import pkgutil


@functools.lru_cache(maxsize=None)
def import_submodules(package: str) -> None:
    """Import every module of `package` once."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{info.name}")
