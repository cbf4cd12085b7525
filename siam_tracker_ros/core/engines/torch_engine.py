"""PyTorch engine: the model itself, run with deployment options.

    engine = TorchEngine(model, device="cuda", fp16=True, channels_last=True)
    state = engine.template(z); out = engine.track(state, x)     # the model contract

Options:
    fp16            torch.autocast(float16) on CUDA (outputs returned as float32).
                    Ignored with a warning on the CPU (CPU half precision is slower).
    channels_last   model and inputs in NHWC memory format (faster convolutions
                    with cuDNN / oneDNN on some hardware; measure).
    compile         torch.compile the search branch (model.track) on first use.
                    False (default); True compiles on CUDA only (on the CPU it is
                    skipped with a warning: compiling takes minutes on small
                    machines and needs a C++ compiler); "force" compiles anywhere.
    compile_mode    torch.compile mode ("reduce-overhead", "max-autotune", ...).
    threads         torch intra-op threads while the engine runs on the CPU
                    (restored afterwards); None: torch's setting.

Every call runs under torch.inference_mode(); the template branch runs once
per target (the tracker keeps the state), only track() runs per frame.
Attributes the trackers read (exemplar_size, stride, anchor_num ...) are the
model's.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Dict, Optional, Union

import torch

from ..devices import resolve_device


class TorchEngine:
    engine_kind = "torch"

    def __init__(self, model: torch.nn.Module, device: Union[str, torch.device] = "auto",
                 fp16: bool = False, channels_last: bool = False,
                 compile: Union[bool, str] = False, compile_mode: Optional[str] = None,
                 threads: Optional[int] = None):
        self.model = model
        self.fp16 = bool(fp16)
        self.channels_last = bool(channels_last)
        self.compile = compile
        self.compile_mode = compile_mode
        self.threads = int(threads) if threads else None
        self.compiled = False
        self._track_fn = None
        self.device = torch.device("cpu")
        self.to(resolve_device(device if not isinstance(device, torch.device) else str(device)))

    # -- nn.Module-like surface (Tracker.__init__ calls model.to(device).eval()) -------
    def to(self, device=None, *args, **kwargs):
        if device is not None and not isinstance(device, torch.dtype):
            self.device = torch.device(device)
        self.model = self.model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._track_fn = None          # recompile for the new device
        self.compiled = False
        return self

    def eval(self):
        self.model.eval()
        return self

    def parameters(self):
        return self.model.parameters()

    def __getattr__(self, name: str):
        # Only called for names not found on the engine: model attributes.
        model = self.__dict__.get("model")
        if model is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(model, name)

    # -- options -------------------------------------------------------------------
    @property
    def autocast_active(self) -> bool:
        return self.fp16 and self.device.type == "cuda"

    def _autocast(self):
        if self.fp16 and self.device.type != "cuda":
            if not getattr(self, "_warned_fp16", False):
                warnings.warn("TorchEngine: fp16 is for CUDA; running fp32 on the CPU", stacklevel=3)
                self._warned_fp16 = True
            return contextlib.nullcontext()
        if self.autocast_active:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _threads(self):
        if not self.threads or self.device.type != "cpu":
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _prepare(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        if self.channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _get_track_fn(self):
        if self._track_fn is None:
            fn = self.model.track
            if self.compile:
                if self.device.type != "cuda" and self.compile != "force":
                    warnings.warn("TorchEngine: torch.compile skipped on the CPU "
                                  "(compile='force' compiles anyway)", stacklevel=3)
                else:
                    kwargs = {"dynamic": False}
                    if self.compile_mode:
                        kwargs["mode"] = self.compile_mode
                    fn = torch.compile(fn, **kwargs)
                    self.compiled = True
            self._track_fn = fn
        return self._track_fn

    @staticmethod
    def _as_float(out: Dict[str, Any]) -> Dict[str, Any]:
        return {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                for k, v in out.items()}

    # -- the model contract ----------------------------------------------------------
    def template(self, z: torch.Tensor):
        with torch.inference_mode(), self._threads(), self._autocast():
            return self.model.template(self._prepare(z))

    def track(self, state, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        fn = self._get_track_fn()
        with torch.inference_mode(), self._threads(), self._autocast():
            out = fn(state, self._prepare(x))
        return self._as_float(out) if self.autocast_active else out

    def __call__(self, z, x):
        return self.track(self.template(z), x)

    def __repr__(self) -> str:
        return (f"TorchEngine({type(self.model).__name__}, device={self.device}, fp16={self.fp16}, "
                f"channels_last={self.channels_last}, compiled={self.compiled}, threads={self.threads})")
