"""SiamBAN r50 checkpoints -> SiamCAN / SiamAF-MSA (weights_format: siamban_r50).

Both papers build on SiamBAN (SiamCAN names it its baseline; SiamAF-MSA's head
is SiamBAN's), so a SiamBAN ResNet-50 model initialises everything except the
attention modules. Use in a model YAML:

    weights: /path/to/siamban_r50_l234/model.pth
    weights_format: siamban_r50
    weights_options: {strict: true, attention: neutral}   # the defaults

Where the SiamBAN key names come from (hqucv/siamban, experiments/siamban_r50_l234):
- models/model_builder.py: top-level modules `backbone`, `neck`, `head`;
- config.yaml: ResNet-50 used_layers [2, 3, 4]; AdjustAllLayer in [512, 1024,
  2048] -> out [256, 256, 256]; MultiBAN in [256]*3, cls_out_channels 2,
  weighted true;
- models/head/ban.py: MultiBAN registers `box{i+2}` (box2/3/4), Parameters
  `cls_weight`, `loc_weight` (weighted only) and `loc_scale` (3 each);
  DepthwiseBAN has `cls`/`loc` DepthwiseXCorr; DepthwiseXCorr has
  `conv_kernel` / `conv_search` = Sequential(Conv2d 3x3 no bias, BN, ReLU) and
  `head` = Sequential(Conv2d 1x1 no bias, BN, ReLU, Conv2d 1x1 with bias), so
  parameter indices 0, 1 and 0, 1, 3;
- pysot's neck.py (SiamBAN vendors it): AdjustAllLayer registers
  `downsample{i+2}`, each an AdjustLayer with `downsample` = Sequential(Conv2d
  1x1 no bias, BN) -> neck.downsample2.downsample.{0,1}.*;
- pysot's resnet_atrous.py: conv1, bn1, layer1..layer4 with `downsample.{0,1}`;
  models/resnet.py keeps these names (see its docstring).
SiamBAN saves `{'epoch', 'state_dict', 'optimizer'}` during training and the
released model.pth as a bare state dict; both are accepted, as is a
DataParallel `module.` prefix (pysot's load_pretrain strips it too).

Attention modules have no SiamBAN counterpart. attention="neutral" (default)
sets them so that the loaded model computes exactly SiamBAN's outputs:
- SiamAF-MSA SAE: last conv of the SE transform = 0, so z = x;
- SiamCAN ECA: conv1d weights = 0, so V = sigmoid(0) = 0.5 for every channel,
  and the factor 2 is folded into the next linear, bias-free layer (both
  branches' conv_search 3x3 weight x 2);
- SiamCAN self-spatial attention: conv = 0, so the gate is 0.5 everywhere, and
  the factor 2 is folded into the head's first 1x1 conv (bias-free) weight.
Gradients still reach the attention weights, so fine-tuning starts from SiamBAN.
attention="fresh" keeps the modules' random initialisation instead (the model
then no longer reproduces SiamBAN until trained).

strict=True (default) raises on any SiamBAN key the table does not map, any
model parameter the table should fill but the file lacks, and any shape
mismatch, naming every offending key. strict=False logs them and keeps the
model's own initialisation for what is missing. BatchNorm `num_batches_tracked`
counters (absent in checkpoints from PyTorch < 0.4.1, unused in eval) are never
required. Declared drops (SiamBAN's loc_weight when SiamCAN shares one alpha)
are reported, not errors.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from . import registry

LOG = logging.getLogger(__name__)

# SiamBAN key (regex) -> model key (template). Every SiamBAN r50 key matches exactly one rule.
SIAMBAN_KEY_MAP: List[Tuple[str, str]] = [
    # pysot ResNet-50 -> models/resnet.py (same names)
    (r"^backbone\.((?:conv1|bn1)\..+)$", r"backbone.\1"),
    (r"^backbone\.(layer[1-4]\.\d+\.(?:conv[1-3]|bn[1-3]|downsample\.[01])\..+)$", r"backbone.\1"),
    # AdjustAllLayer -> models/necks.py (same names)
    (r"^neck\.downsample([2-4])\.downsample\.([01])\.(.+)$", r"neck.downsample\1.downsample.\2.\3"),
    # MultiBAN boxes -> heads.MultiLevelAnchorFreeHead boxes
    (r"^head\.box([2-4])\.(cls|loc)\.(conv_kernel|conv_search)\.([01])\.(.+)$", r"head.box\1.\2.\3.\4.\5"),
    (r"^head\.box([2-4])\.(cls|loc)\.head\.([013])\.(.+)$", r"head.box\1.\2.head.\3.\4"),
    # fusion and loc scale
    (r"^head\.cls_weight$", r"head.cls_weight"),
    (r"^head\.loc_weight$", r"head.loc_weight"),
    (r"^head\.loc_scale$", r"head.loc_scale"),
]

# Model keys that SiamBAN has no counterpart for (filled per `attention`).
ATTENTION_KEY_PATTERNS = [
    r"^cross_attention\.",          # SiamCAN ECA
    r"^head\.box\d\.(cls|loc)\.spatial\.",  # SiamCAN self-spatial attention
    r"^sae\.",                      # SiamAF-MSA SAE blocks
]

SUPPORTED_MODELS = ("siamcan", "siamaf_msa")


class SiamBANLoadError(ValueError):
    """The file does not map onto the model (strict mode); the message names the keys."""


@dataclass
class LoadReport:
    mapped: List[Tuple[str, str]] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)         # SiamBAN keys with no rule / no target
    missing: List[str] = field(default_factory=list)         # model keys the table should fill, not in file
    mismatched: List[str] = field(default_factory=list)      # "key: file shape vs model shape"
    dropped: List[str] = field(default_factory=list)         # declared, intentional drops
    attention: List[str] = field(default_factory=list)       # model keys set by the attention policy

    def problems(self) -> List[str]:
        out = []
        if self.unknown:
            out.append("unknown SiamBAN keys (not mapped): " + ", ".join(self.unknown))
        if self.missing:
            out.append("missing from the file: " + ", ".join(self.missing))
        if self.mismatched:
            out.append("shape mismatch: " + "; ".join(self.mismatched))
        return out


def map_key(key: str) -> Optional[str]:
    for pattern, template in SIAMBAN_KEY_MAP:
        if re.match(pattern, key):
            return re.sub(pattern, template, key)
    return None


def _is_attention(key: str) -> bool:
    return any(re.match(p, key) for p in ATTENTION_KEY_PATTERNS)


def source_state_dict(data: Any) -> Dict[str, torch.Tensor]:
    """Unwrap {'state_dict': ...} and strip a DataParallel 'module.' prefix."""
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise SiamBANLoadError("not a SiamBAN state dict (expected {name: tensor} or {'state_dict': ...})")
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module."):]: v for k, v in data.items()}
    return data


def convert_siamban_state_dict(src: Dict[str, torch.Tensor], model: nn.Module, attention: str = "neutral",
                               strict: bool = True) -> Tuple[Dict[str, torch.Tensor], LoadReport]:
    """A full state dict for `model` (SiamCAN or SiamAF-MSA) from a SiamBAN r50 one."""
    if attention not in ("neutral", "fresh"):
        raise ValueError(f"attention must be 'neutral' or 'fresh', got {attention!r}")
    target = {k: v.detach().clone() for k, v in model.state_dict().items()}
    report = LoadReport()
    shared = getattr(getattr(model, "head", None), "share_weights", False)
    filled, attempted = set(), set()
    for key, value in src.items():
        dest = map_key(key)
        if dest is not None and shared and dest in ("head.cls_weight", "head.loc_weight"):
            if dest == "head.loc_weight":
                report.dropped.append(f"{key} (the model shares one fusion weight for cls and reg; "
                                      "head.fusion_weight <- head.cls_weight)")
                continue
            dest = "head.fusion_weight"
        if dest is None or dest not in target:
            report.unknown.append(key)
            continue
        if tuple(value.shape) != tuple(target[dest].shape):
            report.mismatched.append(f"{key}: {tuple(value.shape)} vs {dest}: {tuple(target[dest].shape)}")
            attempted.add(dest)
            continue
        target[dest] = value.detach().to(target[dest].dtype).clone()
        filled.add(dest)
        report.mapped.append((key, dest))
    for dest in target:
        if dest in filled or dest in attempted:
            continue
        if _is_attention(dest):
            report.attention.append(dest)
        elif not dest.endswith("num_batches_tracked"):
            report.missing.append(dest)
    problems = report.problems()
    if problems:
        if strict:
            raise SiamBANLoadError("SiamBAN r50 -> " + type(model).__name__ + ": " + " | ".join(problems))
        for p in problems:
            LOG.warning("SiamBAN r50 -> %s: %s", type(model).__name__, p)
    if attention == "neutral":
        _neutralise(target, model)
    return target, report


def _neutralise(sd: Dict[str, torch.Tensor], model: nn.Module) -> None:
    """Attention that is the identity on SiamBAN's computation (see the module docstring)."""
    for key in list(sd):
        if re.match(r"^sae\.level\d+\.transform\.3\.(weight|bias)$", key):
            sd[key] = torch.zeros_like(sd[key])
    levels = getattr(model, "levels", [])
    if any(k.startswith("cross_attention.") for k in sd):
        for level in levels:
            sd[f"cross_attention.level{level}.conv.weight"].zero_()
            for branch in ("cls", "loc"):
                sd[f"head.box{level}.{branch}.conv_search.0.weight"] *= 2.0
    for level in levels:
        for branch in ("cls", "loc"):
            prefix = f"head.box{level}.{branch}.spatial.conv."
            if prefix + "weight" in sd:
                sd[prefix + "weight"].zero_()
                sd[prefix + "bias"].zero_()
                sd[f"head.box{level}.{branch}.head.0.weight"] *= 2.0


def load_siamban_r50(path: str, config: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """WEIGHT_LOADERS['siamban_r50']: file -> state dict for config['model']."""
    kind = config["model"].get("type")
    if kind not in SUPPORTED_MODELS:
        raise SiamBANLoadError(f"siamban_r50 weights load into {SUPPORTED_MODELS}, not '{kind}'")
    options = dict(config.get("weights_options") or {})
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SiamBANLoadError(f"cannot read SiamBAN checkpoint {path}: {exc}") from exc
    model = registry.build_model(config["model"])
    state, report = convert_siamban_state_dict(source_state_dict(data), model,
                                               attention=options.get("attention", "neutral"),
                                               strict=bool(options.get("strict", True)))
    LOG.info("SiamBAN r50 %s -> %s: %d tensors mapped, %d attention tensors %s, %d dropped",
             path, kind, len(report.mapped), len(report.attention), options.get("attention", "neutral"),
             len(report.dropped))
    for d in report.dropped:
        LOG.info("dropped: %s", d)
    return state


registry.WEIGHT_LOADERS["siamban_r50"] = load_siamban_r50
