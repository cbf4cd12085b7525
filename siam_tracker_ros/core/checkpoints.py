"""Checkpoints that carry the config that built them.

Format: a plain dict saved with torch.save and read with
torch.load(weights_only=True), so loading never executes pickled code:
    {"format": FORMAT, "config": {...model YAML as a dict...},
     "state_dict": {name: tensor}, "meta": {...free-form, JSON-like...}}
A path alone therefore rebuilds the tracker (core/tracking/loading.py).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import torch

FORMAT = "siam_tracker_ros/checkpoint-v1"


class CheckpointError(ValueError):
    """The file is not a readable checkpoint of this project."""


def save_checkpoint(path: str, model: torch.nn.Module, config: Dict[str, Any],
                    meta: Optional[Dict[str, Any]] = None) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = f"{path}.tmp"
    torch.save({"format": FORMAT, "config": config, "state_dict": state, "meta": meta or {}}, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_checkpoint(path: str) -> Tuple[Dict[str, Any], Dict[str, torch.Tensor], Dict[str, Any]]:
    """Return (config, state_dict, meta); raise CheckpointError with the reason."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, truncated download...
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a {FORMAT} checkpoint (foreign checkpoints go through the "
            "loaders in siam_tracker_ros.core.models.loaders)")
    return data["config"], data["state_dict"], data.get("meta", {})
