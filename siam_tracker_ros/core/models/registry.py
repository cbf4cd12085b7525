"""The model registry: model builders, weight loaders and model configs.

Model modules register a builder with @register_model("type") and foreign weight
formats with WEIGHT_LOADERS; every module in core/models is imported on first
use, so adding a model is adding a file. Trackers have their own registry one
package up (core/tracking/registry.py); a tracker is built from a model by
core/tracking/loading.py, the one loading path (model, weights, engine, device).

A model config (config/models/NAME.yaml, or the "config" inside a checkpoint):
    name: siamfc
    model:   {type: siamfc, ...builder kwargs...}
    tracker: {type: siamfc, ...tracking hyper-parameters...}
    weights: optional path (absolute, or relative to the YAML / package weights dir)
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, List, Optional

import torch
import yaml

from .. import package_files
from ..plugins import import_submodules

MODEL_BUILDERS: Dict[str, Callable[..., torch.nn.Module]] = {}

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEIGHTS_DIR = os.path.join(PACKAGE_DIR, "weights")


def register_model(name: str):
    def deco(fn):
        MODEL_BUILDERS[name] = fn
        return fn
    return deco


def import_all() -> None:
    """Import every module of core/models once, so their builders and weight loaders register."""
    import_submodules(__name__.rpartition(".")[0])


def config_dirs() -> List[str]:
    """Where model YAMLs are looked up, first match wins: $SIAM_TRACKER_CONFIG_DIR/models,
    then config/models of the package's data folders (package_files.share_dirs: the source
    checkout it runs from, else its install prefix's share/siam_tracker_ros, then the
    AMENT_PREFIX_PATH prefixes and sys.prefix)."""
    dirs = []
    if os.environ.get("SIAM_TRACKER_CONFIG_DIR"):
        dirs.append(os.path.join(os.environ["SIAM_TRACKER_CONFIG_DIR"], "models"))
    dirs.extend(os.path.join(share, "config", "models") for share in package_files.share_dirs())
    return [d for d in dirs if os.path.isdir(d)]


def available_models() -> List[str]:
    names = set()
    for d in config_dirs():
        names.update(f[:-5] for f in os.listdir(d) if f.endswith(".yaml"))
    return sorted(names)


def load_model_config(name_or_path: str) -> Dict[str, Any]:
    path = name_or_path
    if not os.path.isfile(path):
        for d in config_dirs():
            candidate = os.path.join(d, f"{name_or_path}.yaml")
            if os.path.isfile(candidate):
                path = candidate
                break
        else:
            raise ValueError(f"unknown model '{name_or_path}'; available: {', '.join(available_models())}")
    with open(path) as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or "model" not in config or "tracker" not in config:
        raise ValueError(f"{path}: a model config needs 'model' and 'tracker' sections")
    config.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    config["_source"] = os.path.abspath(path)
    return config


def resolve_weights_path(weights: Optional[str], config: Dict[str, Any]) -> Optional[str]:
    if not weights:
        return None
    if os.path.isabs(weights):
        return weights
    candidates = [os.path.join(WEIGHTS_DIR, weights)]
    if config.get("_source"):
        candidates.insert(0, os.path.join(os.path.dirname(config["_source"]), weights))
    candidates.append(os.path.abspath(weights))
    for c in candidates:
        if os.path.isfile(c):
            return c
    return candidates[-1]


def build_model(model_config: Dict[str, Any]) -> torch.nn.Module:
    import_all()
    cfg = dict(model_config)
    kind = cfg.pop("type")
    if kind not in MODEL_BUILDERS:
        raise ValueError(f"unknown model type '{kind}'; registered: {sorted(MODEL_BUILDERS)}")
    return MODEL_BUILDERS[kind](**cfg)


def is_checkpoint_path(path_or_name: str) -> bool:
    """A file that is not a model YAML: load_model reads it as a checkpoint."""
    return os.path.isfile(path_or_name) and not path_or_name.endswith((".yaml", ".yml"))


def load_model(path_or_name: str, weights: Optional[str] = None, strict: bool = True):
    """(config, model with weights loaded, weights path or None)."""
    from ..checkpoints import load_checkpoint
    if is_checkpoint_path(path_or_name):
        config, state_dict, meta = load_checkpoint(path_or_name)
        config = copy.deepcopy(config)
        config["_weights"] = os.path.abspath(path_or_name)
        model = build_model(config["model"])
        model.load_state_dict(state_dict, strict=strict)
        return config, model, config["_weights"]
    config = load_model_config(path_or_name)
    model = build_model(config["model"])
    path = resolve_weights_path(weights or config.get("weights"), config)
    if path:
        state_dict = load_weights_file(path, config)
        model.load_state_dict(state_dict, strict=strict)
    config["_weights"] = path
    return config, model, path


WEIGHT_LOADERS: Dict[str, Callable[[str, Dict[str, Any]], Dict[str, torch.Tensor]]] = {}


def load_weights_file(path: str, config: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """A project checkpoint, or a foreign one through config['weights_format']."""
    from ..checkpoints import load_checkpoint
    fmt = config.get("weights_format", "native")
    if fmt == "native":
        _, state_dict, _ = load_checkpoint(path)
        return state_dict
    import_all()
    if fmt not in WEIGHT_LOADERS:
        raise ValueError(f"unknown weights_format '{fmt}'; known: native, {sorted(WEIGHT_LOADERS)}")
    return WEIGHT_LOADERS[fmt](path, config)
