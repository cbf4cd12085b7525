"""Inference engines: objects with the model contract, so every Tracker runs on them.

    state = engine.template(z)        once per target
    out = engine.track(state, x)      per frame -> the model's output dict

Engines:
    "torch"        TorchEngine: the PyTorch model with deployment options
                   (CUDA fp16 autocast, channels_last, torch.compile of the
                   search branch, CPU thread count); see torch_engine.py.
    "onnxruntime"  OnnxRuntimeEngine: the model exported as template.onnx +
                   search.onnx (export.py), run by onnxruntime with the
                   CPU / CUDA / TensorRT execution providers; see onnx_engine.py.

    engine = wrap_engine(model, config, "onnxruntime", device="cpu", threads=1)
    tracker = loading.build_tracker_from_config(config, model=engine, device="cpu")

or in one step `loading.build_tracker(name, engine="onnxruntime",
engine_options={"threads": 1})`. Engines carry `engine_kind`; wrap_engine
returns an object that already is an engine unchanged.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

ENGINES = ("torch", "onnxruntime")
ENGINE_ALIASES = {"torch": "torch", "pytorch": "torch",
                  "onnxruntime": "onnxruntime", "onnx": "onnxruntime", "ort": "onnxruntime"}
# Options each engine takes (wrap_engine rejects others, naming these).
TORCH_OPTIONS = ("fp16", "channels_last", "compile", "compile_mode", "threads")
ONNX_OPTIONS = ("threads", "providers", "allow_spinning", "optimization", "precision",  # runtime
                "onnx_dir", "cache_dir", "search_batch", "opset", "exporter", "verify")  # export


# Named engine + options, so "NAME@onnxruntime-int8" sits beside "NAME@onnxruntime" in one
# siam-eval / siam-bench run (core/engines/quantize.py).
ENGINE_VARIANTS = {"onnxruntime-int8": ("onnxruntime", {"precision": "int8"})}


def auto_engine(device: str = "auto") -> str:
    """The engine "auto" stands for: onnxruntime for a CPU device when it is installed (the
    faster CPU path: docs/BENCHMARKS.md), else torch (CUDA devices, or no onnxruntime)."""
    from ..devices import resolve_device
    if str(resolve_device(device)) != "cpu":
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnxruntime"


def canonical_engine(name: Optional[str]) -> str:
    key = "torch" if name in (None, "") else str(name).lower()
    if key not in ENGINE_ALIASES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINE_ALIASES[key]


def split_engine_spec(spec: str):
    """'default@onnxruntime' -> ('default', 'onnxruntime'); a plain name or an existing
    path -> (spec, None). The CLIs take this form to compare engines in one run."""
    if "@" in spec and not os.path.exists(spec):
        name, engine = spec.rsplit("@", 1)
        return name, engine.lower() if engine.lower() in ENGINE_VARIANTS else canonical_engine(engine)
    return spec, None


def is_engine(obj: Any) -> bool:
    return getattr(obj, "engine_kind", None) in ENGINES


def tracker_device(engine: str, device: str = "auto") -> str:
    """The device the Tracker itself should use with `engine`: onnxruntime takes
    numpy on the host (its accelerator is the execution provider), so its
    trackers keep their crops on the CPU."""
    engine = ENGINE_VARIANTS.get(engine, (engine,))[0]
    return "cpu" if canonical_engine(engine) == "onnxruntime" else device


def wrap_engine(model, config: Dict[str, Any], engine: str = "torch", device: str = "auto",
                **opts):
    """`model` (an nn.Module with template/track, or None for onnxruntime with an
    existing export in onnx_dir) behind `engine`.

    torch options: fp16, channels_last, compile, compile_mode, threads.
    onnxruntime options: threads, providers, allow_spinning, optimization
    (session); onnx_dir (use / write this export folder), cache_dir (else
    exports are cached by weights hash under ~/.cache/siam_tracker_ros/onnx),
    search_batch, opset, exporter ("torchscript" | "dynamo"), verify (export).
    For onnxruntime `device` picks the execution providers (cpu -> CPU,
    cuda/auto -> CUDA when present, then CPU) unless `providers` is given.
    """
    if is_engine(model):
        return model
    if engine in ENGINE_VARIANTS:
        engine, variant = ENGINE_VARIANTS[engine]
        opts = {**variant, **opts}
    kind = canonical_engine(engine)
    allowed = TORCH_OPTIONS if kind == "torch" else ONNX_OPTIONS
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(f"engine {kind!r}: unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(allowed)}")
    if kind == "torch":
        from .torch_engine import TorchEngine
        if model is None:
            raise ValueError("engine 'torch' needs the model")
        return TorchEngine(model, device=device, **opts)

    from . import export
    from .onnx_engine import OnnxRuntimeEngine
    runtime = {k: opts.pop(k) for k in ("threads", "providers", "allow_spinning", "optimization")
               if k in opts}
    precision = opts.pop("precision", "fp32")
    if precision not in ("fp32", "int8"):
        raise ValueError(f"engine 'onnxruntime': precision must be fp32 or int8, got {precision!r}")
    onnx_dir = opts.pop("onnx_dir", None)
    if model is None:
        if not onnx_dir:
            raise ValueError("engine 'onnxruntime' needs the model or an export folder (onnx_dir)")
        directory = onnx_dir
    else:
        directory, _ = export.ensure_exported(model, config, directory=onnx_dir, **opts)
    if precision == "int8":
        from .quantize import int8_copy
        directory = int8_copy(directory)
    return OnnxRuntimeEngine(directory, device=device, **runtime)


__all__ = ["ENGINES", "canonical_engine", "split_engine_spec", "is_engine", "tracker_device", "wrap_engine"]
