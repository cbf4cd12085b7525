"""Which torch device a tracker, a model or an engine runs on."""
from __future__ import annotations

import torch


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" / "" / None -> cuda when present, else cpu; "cuda" without CUDA is an error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use 'cpu' or 'auto'")
    return dev
