"""The one loading path: model config + weights + engine + device -> trackers.

    loaded = load("default", device="cpu")               # name, YAML path or checkpoint
    tracker = loaded.new_tracker()                       # one per target, all on loaded.model
    tracker = build_tracker("nanotrack", weights=PATH)   # the two steps in one

Every front end (the node, the CLIs, evaluation, training's validation) comes
through here, so a rule about loading (which weights, which engine, which
device, what is refused) is written once, in `load` / `from_config`.

engine: None (the model as it is), "torch" or "onnxruntime" (core/engines: the
model behind that engine, `engine_options` its options). A model that already
is an engine (engines.wrap_engine) is used as it is. The tracker's device is the
engine's (onnxruntime trackers crop on the CPU) and is resolved once here
("auto" -> cuda when present).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..devices import resolve_device
from ..engines import is_engine, tracker_device, wrap_engine
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


def from_config(config: Dict[str, Any], model=None, device: str = "auto", engine: Optional[str] = None,
                engine_options: Optional[Dict[str, Any]] = None, weights: Optional[str] = None) -> LoadedModel:
    """LoadedModel for `config`; `model` None builds it (random init: load() loads weights)."""
    if model is None:
        model = model_registry.build_model(config["model"])
    if engine is not None or engine_options:
        model = wrap_engine(model, config, engine or "torch", device=device, **(engine_options or {}))
    if is_engine(model):
        engine = model.engine_kind
        device = tracker_device(engine, device)
    return LoadedModel(config, model, weights, str(resolve_device(device)), engine)


def load(model: str = "default", weights: Optional[str] = None, device: str = "auto",
         engine: Optional[str] = None, engine_options: Optional[Dict[str, Any]] = None) -> LoadedModel:
    """The model named by `model` (config/models NAME, a YAML path or a checkpoint) with its
    weights (`weights` overrides the config's), behind `engine`, on `device`."""
    config, net, path = model_registry.load_model(model, weights=weights)
    return from_config(config, net, device=device, engine=engine, engine_options=engine_options,
                       weights=path)


def build_tracker(path_or_name: str = "default", device: str = "auto", weights: Optional[str] = None,
                  engine: Optional[str] = None, engine_options: Optional[Dict[str, Any]] = None,
                  **overrides):
    """One tracker from a model name, a YAML path or a checkpoint (see load)."""
    return load(path_or_name, weights=weights, device=device, engine=engine,
                engine_options=engine_options).new_tracker(**overrides)


def build_tracker_from_config(config: Dict[str, Any], model=None, device: str = "auto",
                              engine: Optional[str] = None, engine_options: Optional[Dict[str, Any]] = None,
                              **overrides):
    """One tracker for `config`; pass `model` to share one model between trackers."""
    return from_config(config, model, device=device, engine=engine,
                       engine_options=engine_options).new_tracker(**overrides)
