"""Loader for the published NanoTrack v2 checkpoint (nanotrackv2.pth).

The file is a training snapshot {"epoch", "state_dict", "optimizer"}; the
optimizer part holds numpy scalars, so it is read with
torch.load(weights_only=True) plus an allow-list of exactly the numpy types
that rebuild those scalars (no code runs while loading).

Key mapping (source prefix -> this project's NanoTrack module; the rules are
KEY_MAP below, first match wins):

    backbone.features.*               -> backbone.features.*  (same MobileNetV3 layout)
    ban_head.corr_pw_{cls,reg}.CA_layer.*     -> head.corr_{cls,reg}.attention.*
    ban_head.corr_pw_{cls,reg}.conv_kernel.*  -> head.corr_{cls,reg}.conv_kernel.*
    ban_head.corr_pw_{cls,reg}.conv_search.*  -> head.corr_{cls,reg}.conv_search.*
    ban_head.cls_pw_tower.*           -> head.cls_tower.*
    ban_head.bbox_pw_tower.*          -> head.reg_tower.*
    ban_head.cls_pred.0.*             -> head.cls_pred.*
    ban_head.bbox_pred.0.*            -> head.reg_pred.*
    neck.*                            -> dropped on purpose: NanoTrack v2 builds this
                                         64->64 adjust layer but never applies it
                                         (see nanotrack.py)

A key that no rule covers is "unexpected"; a module key that no source key
fills is "missing"; a shape that differs is a "shape mismatch". strict=True
(the default; config key `weights_strict`) raises NanoTrackWeightsError naming
every one of them; strict=False warns and returns what mapped.
"""
from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from . import registry

# (source regex, target template or None to drop). First match wins.
KEY_MAP: List[Tuple[str, Optional[str]]] = [
    (r"^backbone\.features\.(.+)$", r"backbone.features.\1"),
    (r"^ban_head\.corr_pw_(cls|reg)\.CA_layer\.(.+)$", r"head.corr_\1.attention.\2"),
    (r"^ban_head\.corr_pw_(cls|reg)\.(conv_kernel|conv_search)\.(.+)$", r"head.corr_\1.\2.\3"),
    (r"^ban_head\.cls_pw_tower\.(.+)$", r"head.cls_tower.\1"),
    (r"^ban_head\.bbox_pw_tower\.(.+)$", r"head.reg_tower.\1"),
    (r"^ban_head\.cls_pred\.0\.(.+)$", r"head.cls_pred.\1"),
    (r"^ban_head\.bbox_pred\.0\.(.+)$", r"head.reg_pred.\1"),
    (r"^neck\..+$", None),
]
_COMPILED = [(re.compile(src), dst) for src, dst in KEY_MAP]

HOW_TO_PASS = ("pass the file with weights=PATH: build_tracker('nanotrack', weights=PATH), "
               "siam-track --weights PATH, or the tracker node's 'weights' parameter")


class NanoTrackWeightsError(ValueError):
    """The NanoTrack weights file is missing, unreadable or does not fit the model."""


def map_key(key: str) -> Tuple[bool, Optional[str]]:
    """(covered by a rule, target key or None where the rule drops the key)."""
    for pattern, dst in _COMPILED:
        if pattern.match(key):
            return True, (pattern.sub(dst, key) if dst is not None else None)
    return False, None


def _numpy_scalar_globals() -> list:
    """Exactly what rebuilds the numpy float scalars in the snapshot's optimizer state
    (pickled as numpy.core.multiarray.scalar + numpy.dtype, numpy 1.x names)."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed = [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [dtypes.Float64DType, dtypes.Float32DType, dtypes.Int64DType]
    return allowed


def _load_raw(path: str) -> Any:
    if not os.path.isfile(path):
        raise NanoTrackWeightsError(f"NanoTrack weights not found: {path}; {HOW_TO_PASS}")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, pickled code, not a torch file...
        raise NanoTrackWeightsError(f"cannot read NanoTrack weights {path}: {exc}") from exc


def _source_state_dict(data: Any, path: str) -> Dict[str, torch.Tensor]:
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    elif isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not data or \
            not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise NanoTrackWeightsError(f"{path} holds no state dict of tensors")
    return {k[7:] if k.startswith("module.") else k: v for k, v in data.items()}


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The source state dict of a NanoTrack snapshot (or of a bare state dict)."""
    return _source_state_dict(_load_raw(path), path)


def convert_state_dict(source: Dict[str, torch.Tensor], expected: Dict[str, Any],
                       strict: bool = True, origin: str = "state dict") -> Dict[str, torch.Tensor]:
    """Map NanoTrack v2 keys onto this project's module, checked against `expected` shapes."""
    out: Dict[str, torch.Tensor] = {}
    unexpected, mismatched = [], []
    for key, value in source.items():
        covered, target = map_key(key)
        if not covered:
            unexpected.append(key)
            continue
        if target is None:
            continue
        if target not in expected:
            unexpected.append(f"{key} (-> {target}, not in the model)")
            continue
        if tuple(value.shape) != tuple(expected[target]):
            mismatched.append(f"{key} {tuple(value.shape)} vs model {target} {tuple(expected[target])}")
            continue
        out[target] = value
    missing = [k for k in expected if k not in out]
    problems = []
    if missing:
        # strict: every name (the error is for fixing the mapping); a warning is read in a
        # training log, where a partial init (init.only) leaves whole modules missing.
        problems.append(f"missing (no source key fills them): "
                        f"{', '.join(missing) if strict else _summarise_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected (no mapping rule): {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch: {'; '.join(mismatched)}")
    if problems:
        message = f"NanoTrack v2 weights from {origin} do not fit the model: " + " | ".join(problems)
        if strict:
            raise NanoTrackWeightsError(message)
        warnings.warn(message, stacklevel=2)
    return out


def _summarise_keys(keys: List[str], shown: int = 4) -> str:
    """'95 tensors of neck (30), head (65): neck.a.weight, ... and 91 more'."""
    per_module = Counter(k.split(".")[0] for k in keys)
    modules = ", ".join(f"{m} ({n})" for m, n in per_module.items())
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} tensors of {modules}: {', '.join(keys[:shown])}{more}"


def expected_shapes(model: torch.nn.Module) -> Dict[str, torch.Size]:
    return {k: v.shape for k, v in model.state_dict().items()}


def _looked_in(config: Dict[str, Any], path: str) -> List[str]:
    """The places registry.resolve_weights_path tried for config['weights']."""
    given = config.get("weights")
    looked = []
    if given and not os.path.isabs(given):
        if config.get("_source"):
            looked.append(os.path.join(os.path.dirname(config["_source"]), given))
        looked.append(os.path.join(registry.WEIGHTS_DIR, given))
        looked.append(os.path.abspath(given))
    looked = [os.path.normpath(p) for p in looked]
    if os.path.normpath(path) not in looked:
        looked.append(os.path.normpath(path))
    return looked


def load_nanotrack_v2(path: str, config: Dict[str, Any], strict: Optional[bool] = None
                      ) -> Dict[str, torch.Tensor]:
    """WEIGHT_LOADERS["nanotrack_v2"]: weights file -> state dict of the configured model.

    A project checkpoint (a fine-tuned NanoTrack saved by checkpoints.save_checkpoint)
    is accepted too and passed through unchanged.
    """
    if not os.path.isfile(path):
        looked = "\n  ".join(_looked_in(config, path))
        raise NanoTrackWeightsError(
            f"NanoTrack v2 weights not found. Looked in:\n  {looked}\n"
            f"The published file is nanotrackv2.pth (in shared/weights/nanotrack_v2 beside a "
            f"source checkout); {HOW_TO_PASS}.")
    if strict is None:
        strict = bool(config.get("weights_strict", True))
    from ..checkpoints import FORMAT
    data = _load_raw(path)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return data["state_dict"]
    model = registry.build_model(config["model"])
    return convert_state_dict(_source_state_dict(data, path), expected_shapes(model),
                              strict=strict, origin=path)


registry.WEIGHT_LOADERS["nanotrack_v2"] = load_nanotrack_v2
