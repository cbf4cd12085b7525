"""pysot SiamRPN++ ResNet-50 checkpoints -> Ta-ASiam (weights_format: pysot_siamrpn_r50).

Key naming relied on (pysot, github.com/STVIR/pysot, config
experiments/siamrpn_r50_l234_dwxcorr: backbone resnet50 used_layers [2, 3, 4],
AdjustAllLayer [512, 1024, 2048] -> 256, MultiRPN weighted, 5 anchors):
- models/model_builder.py: the ModelBuilder attributes are `backbone`, `neck`,
  `rpn_head` (plus mask_head/refine_head only for SiamMask);
- models/backbone/resnet_atrous.py: conv1, bn1, layer1..layer4 of Bottleneck
  blocks (conv1..3, bn1..3, downsample.0 conv / downsample.1 BN);
- models/neck/neck.py: AdjustAllLayer names its layers `downsample{i+2}` (list
  position + 2, = backbone layer for used_layers [2, 3, 4]), each an AdjustLayer
  whose Sequential is `downsample` = [0] 1x1 conv (no bias), [1] BN;
- models/head/rpn.py: MultiRPN names `rpn{i+2}`, each DepthwiseRPN has `cls` and
  `loc` DepthwiseXCorr with conv_kernel/conv_search = [0] 3x3 conv, [1] BN and
  head = [0] 1x1 conv, [1] BN, [3] 1x1 conv with bias; `cls_weight`,
  `loc_weight` are length-3 vectors, softmax-normalised in forward;
- utils/model_load.py: a file is either {"state_dict": ..., "epoch", "optimizer"}
  or the state dict itself, keys possibly prefixed "module."; old checkpoints
  may lack BN `num_batches_tracked` (pysot ignores those as missing).

Mapping table (first matching rule wins; `{L}` is a level the target model has).
Ta-ASiam uses the paper's third and fourth ResNet blocks = pysot layer2 and
layer3 (levels [2, 3]), so from a siamrpn_r50_l234 file the loader maps:
    backbone.{conv1,bn1,layer1,layer2,layer3}.<rest> -> backbone.<same>
    backbone.layer{above the model's top}.*  -> dropped (layer4: the fifth block,
                                              which the paper removes)
    neck.downsample{L}.<rest>              -> neck.downsample{L}.<rest>  (L = 2, 3)
    rpn_head.rpn{L}.<rest>                 -> rpn_head.rpn{L}.<rest>     (L = 2, 3)
    rpn_head.cls_weight / loc_weight [3]   -> same name, the entries of the model's
                                              levels ([0, 1] for levels 2, 3)
    neck.downsample{other}.*, rpn_head.rpn{other}.*  -> dropped (layer 4)
    anything else                          -> unknown
Fusion weights: softmax over the kept entries equals pysot's softmax weights
of those layers renormalised to sum 1 (the layer-4 share is spread pro rata).
Note that pysot's layer3 is dilated 2 and its layer4 dilated 4 in SiamRPN++;
Ta-ASiam keeps layer3 as it is there.

Attention (not in pysot) starts neutral: the last layer of every channel MLP
and every spatial conv gets zero weights and a bias so that each sigmoid gate
is sigmoid(neutral_logit) for any input; default logit 10 -> gate 0.99995,
so C(z) * f and P(x) * f equal f to 5e-5 relative and the network computes
SiamRPN++ (layers 3+4) exactly up to that factor (checked in the tests). The
gates are then saturated (sigmoid' ~ 5e-5): to fine-tune the attention from
this start, pass a smaller logit (weights_options: {neutral_logit: 4} -> 0.982)
so gradients flow; with the zero weights every gate still starts input-independent.

Strictness: strict (default) raises PysotMappingError on any unknown source key,
any missing target key (other than the attention, which is by design, and BN
num_batches_tracked) and any shape mismatch. Non-strict fills what is missing
from the freshly built model's initialisation, skips unknown/mismatched keys,
and logs the report. In YAML:
    weights: /path/model.pth
    weights_format: pysot_siamrpn_r50
    weights_options: {strict: true, neutral_logit: 10.0}
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Tuple

import torch

from .registry import WEIGHT_LOADERS, build_model

LOG = logging.getLogger(__name__)

PYSOT_LEVELS = (2, 3, 4)   # siamrpn_r50_l234: list position i <-> name / layer i + 2


class PysotMappingError(ValueError):
    """A pysot checkpoint does not map onto the model (strict mode)."""


def place_tensor(out: Dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], report, key: str,
                 new: str, value: torch.Tensor) -> bool:
    """Source tensor `key` -> out[new] when the model has `new` with the same shape (a copy in
    the model's dtype); otherwise recorded in report.unknown / report.shape_mismatch."""
    if new not in target:
        report.unknown.append(key)
        return False
    if tuple(target[new].shape) != tuple(value.shape):
        report.shape_mismatch.append((key, tuple(value.shape), tuple(target[new].shape)))
        return False
    out[new] = value.detach().clone().to(target[new].dtype)
    report.mapped.append((key, new))
    return True


@dataclass
class MappingReport:
    mapped: List[Tuple[str, str]] = field(default_factory=list)   # (pysot key, model key)
    dropped: List[Tuple[str, str]] = field(default_factory=list)  # (pysot key, reason)
    unknown: List[str] = field(default_factory=list)              # pysot keys no rule matches
    missing: List[str] = field(default_factory=list)              # model keys with no source
    shape_mismatch: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    neutral_init: List[str] = field(default_factory=list)         # attention keys set neutral
    defaulted: List[str] = field(default_factory=list)            # num_batches_tracked filled

    @property
    def ok(self) -> bool:
        return not (self.unknown or self.missing or self.shape_mismatch)

    def summary(self, limit: int = 20) -> str:
        def show(items):
            items = [str(i) for i in items]
            more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
            return ", ".join(items[:limit]) + more
        lines = [f"pysot -> model: {len(self.mapped)} mapped, {len(self.dropped)} dropped "
                 f"(layers not in the model), {len(self.neutral_init)} attention tensors set neutral, "
                 f"{len(self.defaulted)} num_batches_tracked defaulted"]
        if self.unknown:
            lines.append(f"{len(self.unknown)} unknown checkpoint keys: {show(self.unknown)}")
        if self.missing:
            lines.append(f"{len(self.missing)} model keys missing from the checkpoint: {show(self.missing)}")
        if self.shape_mismatch:
            lines.append(f"{len(self.shape_mismatch)} shape mismatches (key, checkpoint, model): "
                         f"{show(self.shape_mismatch)}")
        return "\n".join(lines)


def _rules(levels):
    """The mapping table: (regex on the pysot key, target template or None, reason)."""
    lv = "|".join(str(l) for l in levels)
    above = "|".join(str(l) for l in range(max(levels) + 1, 5)) or "x"
    return [
        (re.compile(rf"^backbone\.layer({above})\..+$"), None, "backbone layer the model does not build"),
        (re.compile(r"^backbone\.(.+)$"), r"backbone.\1", None),
        (re.compile(rf"^neck\.downsample({lv})\.(.+)$"), r"neck.downsample\1.\2", None),
        (re.compile(r"^neck\.downsample(\d+)\..+$"), None, "neck of a layer the model does not use"),
        (re.compile(rf"^rpn_head\.rpn({lv})\.(.+)$"), r"rpn_head.rpn\1.\2", None),
        (re.compile(r"^rpn_head\.rpn(\d+)\..+$"), None, "RPN of a layer the model does not use"),
    ]


def unwrap_pysot_checkpoint(obj: Any) -> Dict[str, torch.Tensor]:
    """The state dict inside a pysot file: obj["state_dict"] or obj, "module." removed."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise PysotMappingError(f"not a pysot checkpoint: top level is {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        k = k[len("module."):] if k.startswith("module.") else k
        out[k] = v
    return out


def map_pysot_siamrpn_r50(source: Mapping[str, torch.Tensor], model: torch.nn.Module,
                          strict: bool = True, neutral_logit: float = 10.0
                          ) -> Tuple[Dict[str, torch.Tensor], MappingReport]:
    """Map a pysot SiamRPN++ r50 state dict onto `model` (a TaASiam).

    Returns (a complete state dict for model.load_state_dict(strict=True), report).
    `model` provides the target names, shapes and the initial values of what the
    checkpoint lacks; its attention modules are set neutral in place.
    """
    source = unwrap_pysot_checkpoint(source)
    levels = list(getattr(model, "levels", PYSOT_LEVELS))
    if hasattr(model, "init_attention_neutral"):
        model.init_attention_neutral(neutral_logit)
    target = model.state_dict()
    report = MappingReport()
    out: Dict[str, torch.Tensor] = {}
    rules = _rules(levels)

    for key, value in source.items():
        if not torch.is_tensor(value):
            report.unknown.append(key)
            continue
        if key in ("rpn_head.cls_weight", "rpn_head.loc_weight"):
            if key not in target:
                report.unknown.append(key)
                continue
            if value.dim() != 1 or value.numel() != len(PYSOT_LEVELS):
                report.shape_mismatch.append((key, tuple(value.shape), (len(PYSOT_LEVELS),)))
                continue
            idx = [PYSOT_LEVELS.index(l) for l in levels if l in PYSOT_LEVELS]
            if len(idx) != len(levels):
                report.shape_mismatch.append((key, tuple(value.shape), tuple(target[key].shape)))
                continue
            out[key] = value[idx].clone()
            report.mapped.append((key, key))
            continue
        for pattern, template, reason in rules:
            m = pattern.match(key)
            if not m:
                continue
            if template is None:
                report.dropped.append((key, reason))
            else:
                place_tensor(out, target, report, key, m.expand(template), value)
            break
        else:
            report.unknown.append(key)

    for key, value in target.items():
        if key in out:
            continue
        out[key] = value.detach().clone()
        if key.startswith(("channel_attention.", "spatial_attention.")):
            report.neutral_init.append(key)
        elif key.endswith("num_batches_tracked"):
            report.defaulted.append(key)
        else:
            report.missing.append(key)

    if strict and not report.ok:
        raise PysotMappingError("pysot checkpoint does not match the model (strict):\n" + report.summary())
    if not report.ok:
        LOG.warning("pysot checkpoint loaded non-strictly:\n%s", report.summary())
    else:
        LOG.info("%s", report.summary())
    return out, report


def load_pysot_siamrpn_r50(path: str, config: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """WEIGHT_LOADERS entry: the file at `path` mapped onto config['model']."""
    options = dict(config.get("weights_options") or {})
    strict = bool(options.get("strict", True))
    neutral_logit = float(options.get("neutral_logit", 10.0))
    try:
        # weights_only: a foreign file never runs pickled code (pysot files hold
        # tensors, ints and the optimizer's dicts, which this accepts).
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PysotMappingError(f"cannot read pysot checkpoint {path}: {exc}") from exc
    model = build_model(config["model"])
    state, _ = map_pysot_siamrpn_r50(obj, model, strict=strict, neutral_logit=neutral_logit)
    return state


WEIGHT_LOADERS["pysot_siamrpn_r50"] = load_pysot_siamrpn_r50
