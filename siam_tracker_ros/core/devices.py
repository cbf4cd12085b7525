"""Which torch device a tracker, a model or an engine runs on."""
from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" / "" / None -> cuda when present, else cpu; "cuda" without CUDA is an error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' requested but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device '{device}' requested but there are {torch.cuda.device_count()} CUDA "
                         f"device(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    return dev
