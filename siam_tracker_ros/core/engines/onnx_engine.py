"""onnxruntime engine: the two exported graphs behind the model contract.

    engine = OnnxRuntimeEngine(folder)          # template.onnx, search.onnx, engine.json
    state = engine.template(z)                  # tuple of numpy arrays (opaque to the tracker)
    out = engine.track(state, x)                # {"cls": torch.Tensor, ...} like model.track()

Inputs may be torch tensors (any device) or numpy arrays; outputs are CPU
float32 torch tensors, which every tracker reads as it reads a model's.
The model attributes the trackers look up (exemplar_size, stride, anchor_num
...) come from engine.json. `to()` / `eval()` exist so that Tracker.__init__
(model.to(device).eval()) works unchanged; the device for onnxruntime is the
execution provider, chosen when the sessions are created.

Execution providers (`providers`): None picks from `device`: "cpu" ->
CPUExecutionProvider; "cuda"/"auto" -> CUDAExecutionProvider when the installed
onnxruntime has it (the onnxruntime-gpu wheel), then CPU. TensorRT is used only
when asked for ("tensorrt" / "TensorrtExecutionProvider"; it builds an engine
per graph on the first run: minutes on a Jetson, cache it with
trt_engine_cache_enable, see docs/DEPLOYMENT.md). Short names: cpu, cuda,
tensorrt, openvino, coreml, dml; full names pass through, and a
(name, options) pair gives provider options.

Session options: graph optimisation level ALL, sequential execution,
intra-op threads = `threads` (None: onnxruntime's default, one per core; for
the small models 1 is often fastest on a busy 2-core machine), inter-op 1.
`allow_spinning=False` stops idle pool threads from spinning (helps when the
machine is shared, costs a little latency).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .export import ExportError, read_meta

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}


def _import_ort():
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("engine 'onnxruntime' needs the onnxruntime package "
                          "(pip install onnxruntime, or onnxruntime-gpu for CUDA/TensorRT)") from exc
    return ort


def resolve_providers(providers: Optional[Sequence[Union[str, Tuple[str, Dict[str, Any]]]]] = None,
                      device: Union[str, torch.device, None] = "cpu") -> List[Any]:
    """Execution providers to ask onnxruntime for (CPU always last as the fallback)."""
    ort = _import_ort()
    available = set(ort.get_available_providers())
    if providers:
        out = []
        for p in providers:
            name, opts = (p if isinstance(p, (tuple, list)) else (p, None))
            full = PROVIDER_ALIASES.get(str(name).lower(), str(name))
            if full not in available:
                raise ValueError(f"onnxruntime execution provider {full} is not available in this "
                                 f"onnxruntime build; available: {', '.join(sorted(available))}")
            out.append((full, dict(opts)) if opts else full)
    else:
        kind = torch.device(device).type if device not in (None, "", "auto") else "auto"
        out = []
        if kind in ("cuda", "auto") and "CUDAExecutionProvider" in available:
            out.append("CUDAExecutionProvider")
        elif kind == "cuda":
            raise ValueError("device 'cuda' requested but this onnxruntime has no "
                             "CUDAExecutionProvider (install onnxruntime-gpu); available: "
                             + ", ".join(sorted(available)))
    names = [p if isinstance(p, str) else p[0] for p in out]
    if "CPUExecutionProvider" not in names:
        out.append("CPUExecutionProvider")
    return out


def session_options(threads: Optional[int] = None, allow_spinning: Optional[bool] = None,
                    optimization: str = "all"):
    ort = _import_ort()
    so = ort.SessionOptions()
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {sorted(levels)}, got {optimization!r}")
    so.graph_optimization_level = levels[optimization]
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:
        so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    # Idle pool threads do not spin by default (onnxruntime's own default is to spin): a
    # tracker alternates network runs with OpenCV crops and Python, which spinning
    # threads starve on a small CPU (docs/DEPLOYMENT.md, "onnxruntime-spin").
    if allow_spinning is None:
        allow_spinning = False
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    so.log_severity_level = 3
    return so


def _to_numpy(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.float().numpy()
    return np.ascontiguousarray(t, dtype=np.float32)


class OnnxRuntimeEngine:
    """template.onnx + search.onnx run by onnxruntime, with the model contract."""

    engine_kind = "onnxruntime"
    # The export fixes the shapes: template batch 1 and the tracker's search batch
    # (export.py). Several targets therefore cannot share one search.onnx call:
    # MultiTargetTracker (core/tracking/multi.py) runs one call per target here.
    supports_target_batch = False

    def __init__(self, directory: str, device: Union[str, torch.device, None] = "cpu",
                 threads: Optional[int] = None, providers=None, allow_spinning: Optional[bool] = None,
                 optimization: str = "all"):
        ort = _import_ort()
        self.directory = os.path.abspath(directory)
        self.meta = read_meta(self.directory)
        self.providers = resolve_providers(providers, device)
        self.threads = threads
        so = session_options(threads, allow_spinning, optimization)
        self._template = ort.InferenceSession(os.path.join(self.directory, self.meta["template"]["file"]),
                                              so, providers=self.providers)
        self._search = ort.InferenceSession(os.path.join(self.directory, self.meta["search"]["file"]),
                                            so, providers=self.providers)
        self.state_names = list(self.meta["template"]["outputs"])
        self.output_names = list(self.meta["search"]["outputs"])
        self.z_shape = tuple(self.meta["template"]["inputs"]["z"])
        self.x_shape = tuple(self.meta["search"]["inputs"]["x"])
        for k, v in self.meta.get("attributes", {}).items():
            setattr(self, k, v)
        self.device = torch.device("cpu")

    # -- what Tracker.__init__ calls -------------------------------------------------
    def to(self, device=None, *args, **kwargs):
        return self

    def eval(self):
        return self

    def parameters(self):
        return iter(())

    @property
    def active_providers(self) -> List[str]:
        return list(self._search.get_providers())

    # -- the model contract ----------------------------------------------------------
    def template(self, z) -> Tuple[np.ndarray, ...]:
        arr = _to_numpy(z)
        if arr.shape != self.z_shape:
            raise ValueError(f"onnxruntime engine ({self.directory}): template input {arr.shape}, "
                             f"exported for {self.z_shape}")
        return tuple(self._template.run(self.state_names, {"z": arr}))

    def track(self, state, x) -> Dict[str, torch.Tensor]:
        arr = _to_numpy(x)
        if arr.shape != self.x_shape:
            raise ValueError(
                f"onnxruntime engine ({self.directory}): search input {arr.shape}, exported for "
                f"{self.x_shape} (the search batch is fixed at export: re-export with "
                f"search_batch={arr.shape[0]} / `siam-export --search-batch {arr.shape[0]}`)")
        if not isinstance(state, tuple) or len(state) != len(self.state_names):
            raise ValueError("onnxruntime engine: the state must come from this engine's template()")
        feeds = dict(zip(self.state_names, state))
        feeds["x"] = arr
        outs = self._search.run(self.output_names, feeds)
        return {k: torch.from_numpy(v) for k, v in zip(self.output_names, outs)}

    def __call__(self, z, x) -> Dict[str, torch.Tensor]:
        return self.track(self.template(z), x)

    def __repr__(self) -> str:
        return (f"OnnxRuntimeEngine({self.meta.get('name')!r}, providers={self.active_providers}, "
                f"threads={self.threads})")


__all__ = ["OnnxRuntimeEngine", "resolve_providers", "session_options", "ExportError"]
