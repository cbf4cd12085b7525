"""Engine + precision as one choice (the node's `engine` and `precision` parameters), refused
with the reason where this machine or the engine cannot run it.

    engine, options = engine_setup("tensorrt", "fp16", device="cuda")
    loading.load(name, device=device, engine=engine, engine_options=options)

- auto: onnxruntime on a CPU device when installed, else torch (engines.auto_engine);
- torch: fp32; fp16 = autocast on CUDA only (on the CPU torch's half precision is slower,
  so it is refused rather than silently ignored).
- onnxruntime: fp32 (the export is fp32).
- tensorrt: onnxruntime's TensorRT execution provider (CUDA as its fallback), fp32 or
  fp16 (`trt_fp16_enable`); refused where the installed onnxruntime has no TensorRT.
- int8: not offered: issue 15 allows it only if onnxruntime's quantization of the shipped
  model stays within 0.01 AUC of fp32 on the shared sequences; the recorded run
  (docs/DEPLOYMENT.md, "int8") shows dynamic int8 far outside that.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

NODE_ENGINES = ("auto", "torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")

INT8_REFUSAL = ("precision int8 is not offered: onnxruntime's int8 quantization of the shipped model lost far "
                "more than the allowed 0.01 AUC against fp32, and ran slower (docs/DEPLOYMENT.md, int8); "
                "use fp32 or fp16")


def _available_providers():
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    return set(ort.get_available_providers())


def engine_setup(engine: str, precision: str = "fp32", device: str = "auto",
                 threads: int = 0) -> Tuple[str, Dict[str, Any]]:
    """(engine name for wrap_engine / loading.load, its options); ValueError with the reason
    when `engine` cannot run `precision` here."""
    if engine not in NODE_ENGINES:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(NODE_ENGINES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if precision == "int8":
        raise ValueError(INT8_REFUSAL)
    if engine == "auto":                  # onnxruntime on a CPU device when installed, else torch
        from . import auto_engine
        engine = auto_engine(device)
    if engine == "torch":
        if precision == "fp16":
            from ..devices import resolve_device
            resolved = str(resolve_device(device))
            if not resolved.startswith("cuda"):
                raise ValueError(f"precision fp16 with engine torch needs a CUDA device (device {device!r} is "
                                 f"{resolved} here): torch's half precision on the CPU is slower than fp32")
            return "torch", {"fp16": True}
        return "torch", {}
    options: Dict[str, Any] = {"threads": int(threads)} if threads > 0 else {}
    if engine == "onnxruntime":
        if precision == "fp16":
            raise ValueError("precision fp16 with engine onnxruntime is not offered: the ONNX export is fp32; "
                             "use engine tensorrt (fp16) or torch on CUDA (fp16)")
        return "onnxruntime", options
    available = _available_providers()                       # tensorrt
    if available is None:
        raise ValueError("engine tensorrt needs onnxruntime with the TensorRT execution provider "
                         "(onnxruntime-gpu built with TensorRT); onnxruntime is not installed")
    if "TensorrtExecutionProvider" not in available:
        raise ValueError("engine tensorrt needs onnxruntime's TensorrtExecutionProvider (onnxruntime-gpu "
                         f"built with TensorRT); this onnxruntime has: {', '.join(sorted(available))}")
    trt = ("tensorrt", {"trt_fp16_enable": True}) if precision == "fp16" else "tensorrt"
    options["providers"] = [trt] + (["cuda"] if "CUDAExecutionProvider" in available else [])
    return "onnxruntime", options
