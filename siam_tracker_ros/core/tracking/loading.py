"""The one loading path: model config + weights + engine + device -> trackers.

    loaded = load("default", device="cpu")               # name, YAML path or checkpoint
    tracker = loaded.new_tracker()                       # one per target, all on loaded.model
    tracker = build_tracker("nanotrack", weights=PATH)   # the two steps in one

Every front end (the node, the CLIs, evaluation, training's validation) comes
through here, so a rule about loading (which weights, which engine, which
device, what is refused) is written once, in `load` / `from_config`.

A model without trained weights is refused (UntrainedModelError, saying what to
pass instead) unless `allow_untrained=True`: random weights follow little, and a
user who names `siamcan` must not get a toy silently. Tests, training and
architecture studies pass allow_untrained.

engine: None (the model as it is), "torch", "onnxruntime" (core/engines: the
model behind that engine, `engine_options` its options) or "auto" (onnxruntime on
a CPU device when installed, else torch: engines.auto_engine). A model that already
is an engine (engines.wrap_engine) is used as it is. The tracker's device is the
engine's (onnxruntime trackers crop on the CPU) and is resolved once here
("auto" -> cuda when present).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..devices import resolve_device
from ..engines import auto_engine, is_engine, tracker_device, wrap_engine
from ..models import registry as model_registry
from .registry import tracker_class


@dataclass
class LoadedModel:
    """A model ready for tracking: its config, the (engine-wrapped) model that every
    tracker built from it shares, the weights file it holds and the resolved device."""
    config: Dict[str, Any]
    model: Any
    weights: Optional[str]
    device: str
    engine: Optional[str] = None

    @property
    def name(self) -> str:
        return str(self.config.get("name", "model"))

    def describe(self) -> str:
        used = f"weights {self.weights}" if self.weights else "no weights: random init (the tracker follows little)"
        return (f"model '{self.name}' from {self.config.get('_source', self.name)}, {used}, "
                f"device {self.device}, engine {self.engine or 'none (the model as it is)'}")

    def new_tracker(self, **overrides):
        """A fresh tracker (one target) on the shared model; `overrides` replace entries of the
        config's tracker section (checked against core/tracking/params.py)."""
        params = dict(self.config["tracker"])
        params.update(overrides)
        kind = params.pop("type")
        tracker = tracker_class(kind)(self.model, params, device=self.device)
        tracker.config = self.config
        return tracker


class UntrainedModelError(ValueError):
    """A model with no trained weights was asked for without allow_untrained."""


def shipped_trained_models() -> List[str]:
    """config/models names whose weights file is package data (siam_tracker_ros/weights)."""
    inside = os.path.realpath(model_registry.WEIGHTS_DIR) + os.sep
    out = []
    for name in model_registry.available_models():
        try:
            config = model_registry.load_model_config(name)
        except Exception:  # noqa: BLE001 - a broken YAML is reported when it is used
            continue
        path = model_registry.resolve_weights_path(config.get("weights"), config)
        if path and os.path.isfile(path) and os.path.realpath(path).startswith(inside):
            out.append(name)
    return out


def weights_formats() -> List[str]:
    """Every `weights_format` a model YAML may name (native = a siam-train checkpoint)."""
    model_registry.import_all()
    return ["native"] + sorted(model_registry.WEIGHT_LOADERS)


def untrained_refusal(name: str) -> str:
    """Why a model is refused, and what to do instead."""
    shipped = shipped_trained_models()
    light = f"{name}_light"
    instead = (f"use its trained light variant '{light}' (model:={light})" if light in shipped
               else f"use a trained model ({', '.join(shipped) or 'none ships'})")
    return (f"model '{name}' has no trained weights: it would track with random weights. Pass "
            f"weights:=PATH (--weights PATH in the CLIs): a siam-train checkpoint, or a file in one "
            f"of the formats the model YAML's weights_format names ({', '.join(weights_formats())}); "
            f"or {instead}. allow_untrained:=true (--allow-untrained) runs it untrained anyway "
            f"(tests, training, architecture studies).")


def check_model(model: str, weights: Optional[str] = None, allow_untrained: bool = False) -> None:
    """Without building anything: ValueError for an unknown model name or a bad YAML,
    UntrainedModelError for a model that would get no weights (unless allow_untrained)."""
    if model_registry.is_checkpoint_path(model):
        return
    config = model_registry.load_model_config(model)
    if not allow_untrained and not weights and not model_registry.resolve_weights_path(config.get("weights"), config):
        raise UntrainedModelError(untrained_refusal(str(config.get("name", model))))


def from_config(config: Dict[str, Any], model=None, device: str = "auto", engine: Optional[str] = None,
                engine_options: Optional[Dict[str, Any]] = None, weights: Optional[str] = None,
                allow_untrained: bool = False) -> LoadedModel:
    """LoadedModel for `config`; `model` None builds it with random weights, which is refused
    unless allow_untrained (load() loads the config's weights)."""
    if model is None:
        if not allow_untrained:
            raise UntrainedModelError(untrained_refusal(str(config.get("name", "model"))))
        model = model_registry.build_model(config["model"])
    if engine == "auto":
        engine = auto_engine(device)
    if engine is not None or engine_options:
        model = wrap_engine(model, config, engine or "torch", device=device, **(engine_options or {}))
    if is_engine(model):
        engine = model.engine_kind
        device = tracker_device(engine, device)
    return LoadedModel(config, model, weights, str(resolve_device(device)), engine)


def load(model: str = "default", weights: Optional[str] = None, device: str = "auto",
         engine: Optional[str] = None, engine_options: Optional[Dict[str, Any]] = None,
         allow_untrained: bool = False) -> LoadedModel:
    """The model named by `model` (config/models NAME, a YAML path or a checkpoint) with its
    weights (`weights` overrides the config's), behind `engine`, on `device`. A model with
    no weights is refused (UntrainedModelError) unless allow_untrained."""
    check_model(model, weights, allow_untrained)       # before the network is built
    config, net, path = model_registry.load_model(model, weights=weights)
    return from_config(config, net, device=device, engine=engine, engine_options=engine_options,
                       weights=path)


def build_tracker(path_or_name: str = "default", device: str = "auto", weights: Optional[str] = None,
                  engine: Optional[str] = None, engine_options: Optional[Dict[str, Any]] = None,
                  allow_untrained: bool = False, **overrides):
    """One tracker from a model name, a YAML path or a checkpoint (see load)."""
    return load(path_or_name, weights=weights, device=device, engine=engine,
                engine_options=engine_options, allow_untrained=allow_untrained).new_tracker(**overrides)


def build_tracker_from_config(config: Dict[str, Any], model=None, device: str = "auto",
                              engine: Optional[str] = None, engine_options: Optional[Dict[str, Any]] = None,
                              allow_untrained: bool = False, **overrides):
    """One tracker for `config`; pass `model` to share one model between trackers (no model:
    random weights, refused unless allow_untrained)."""
    return from_config(config, model, device=device, engine=engine, engine_options=engine_options,
                       allow_untrained=allow_untrained).new_tracker(**overrides)
