"""ImageNet backbones that users bring, in torchvision's state-dict layouts.

The full-size recipes start from an ImageNet-trained backbone (Ta-ASiam,
SiamCAN, SiamAF-MSA: ResNet-50; RASNet / SiamFC train AlexNet from scratch, an
ImageNet AlexNet is an option). No such file ships or is downloaded here: a
training config names the file under `init:` (config/train/*.yaml):

    init: {path: ~/.cache/torch/hub/checkpoints/resnet50-0676ba61.pth,
           format: torchvision_resnet50, only: [backbone], strict: true}

weights_format            file                                   target
------------------------  -------------------------------------  ----------------------------------
torchvision_resnet50      torchvision.models.resnet50 state dict  model.backbone: the SiamRPN++ ResNet-50
                          (conv1, bn1, layer1-4.N.{conv,bn}1-3,   of resnet.py (pysot's names)
                          layerL.0.downsample.{0,1}, fc)
torchvision_alexnet       torchvision.models.alexnet state dict   model.backbone: AlexNet(widths=
                          (features.{0,3,6,8,10}, classifier.*)   "torchvision") (backbone:
                                                                  alexnet_torchvision in the model YAML)

What the mapping does (each checked in test_imagenet_loader.py):
- ResNet names are the same as pysot's (resnet.py), prefixed `backbone.`;
  layers the model does not build (Ta-ASiam stops at layer3) and the classifier
  (`fc.*`) are dropped;
- shortcut convs: torchvision's 1x1 (stride 2 in layers 2-4) becomes the centre
  tap of SiamRPN++'s 3x3 shortcut (zeros around it); in the dilated layers 3-4
  (padding = dilation) the centre tap is exactly the 1x1 conv; in layer2 (3x3
  stride 2, no padding, as pysot) it reads the centre of the 3x3 window, where
  pysot's main path is centred too. The 3x3 convs keep their weights while
  layers 3-4 swap stride for dilation (the usual dilated-ResNet conversion);
- AlexNet: torchvision features.0/3/6/8/10 -> the convs at features.0/4/8/11/14
  (weights and biases); its classifier is dropped; the BN layers SiamFC adds
  keep their fresh initialisation;
- input convention: torchvision's networks take RGB in [0, 1] normalised by
  the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225); the
  project's models take BGR 0..255 unnormalised (pysot's convention). The loader
  folds that into the first layer: conv1's input channels are reversed and
  divided by 255 * std, and the mean's contribution (exact, since conv1 has no
  padding here) goes into conv1's bias (AlexNet) or bn1's running mean
  (ResNet, whose conv1 has no bias). `options: {fold_input: false}` keeps the
  weights as they are.

strict (default true): every backbone tensor of the model must come from the
file (BN num_batches_tracked excepted), no key may be unknown, no shape may
differ; ImageNetWeightsError names them all. Non-strict: what maps is returned
and the rest reported. The loader returns `backbone.*` tensors only: load it
with `init: {only: [backbone]}` (heads start from their own initialisation).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Tuple

import torch

from .loaders_pysot import place_tensor
from .registry import WEIGHT_LOADERS, build_model

LOG = logging.getLogger(__name__)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# torchvision AlexNet conv index -> this project's AlexNet conv index
ALEXNET_CONVS = {0: 0, 3: 4, 6: 8, 8: 11, 10: 14}


class ImageNetWeightsError(ValueError):
    """An ImageNet state dict does not fit the model's backbone (strict mode)."""


@dataclass
class ImageNetReport:
    mapped: List[Tuple[str, str]] = field(default_factory=list)
    dropped: List[Tuple[str, str]] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    shape_mismatch: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    adapted: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unknown or self.missing or self.shape_mismatch)

    def summary(self) -> str:
        lines = [f"ImageNet -> backbone: {len(self.mapped)} mapped ({len(self.adapted)} adapted), "
                 f"{len(self.dropped)} dropped"]
        for name, items in (("unknown file keys", self.unknown), ("backbone tensors missing", self.missing),
                            ("shape mismatches (key, file, model)", self.shape_mismatch)):
            if items:
                lines.append(f"{len(items)} {name}: " + ", ".join(map(str, items[:12]))
                             + (" ..." if len(items) > 12 else ""))
        return "\n".join(lines)


def unwrap_state_dict(obj: Any) -> Dict[str, torch.Tensor]:
    """The tensors of a saved state dict: obj, obj["state_dict"] or obj["model"]; "module." removed."""
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ImageNetWeightsError(f"not a state dict: top level is {type(obj).__name__}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def _fold_rgb_normalisation(weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(weight for BGR 0..255 input, bias shift) of a first conv trained on
    normalised RGB: conv(W, (x_rgb/255 - m)/s) = conv(W', x_bgr) + b with
    W'[:, c_bgr] = W[:, c_rgb] / (255 s), b = -sum W m / s (no padding)."""
    mean = torch.tensor(IMAGENET_MEAN_RGB, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD_RGB, dtype=torch.float64).view(1, 3, 1, 1)
    w = weight.double()
    bias = -(w * mean / std).sum(dim=(1, 2, 3))
    folded = (w / (255.0 * std)).flip(1)          # channel order RGB -> BGR
    return folded.to(weight.dtype), bias.to(weight.dtype)


def _finish(out, target, report, strict, what):
    for key in target:
        if key not in out and not key.endswith("num_batches_tracked"):
            report.missing.append(key)
    if strict and not report.ok:
        raise ImageNetWeightsError(f"{what} does not fit the model's backbone (strict):\n" + report.summary())
    (LOG.warning if not report.ok else LOG.info)("%s", report.summary())
    return out, report


def map_torchvision_resnet50(source: Mapping[str, torch.Tensor], model: torch.nn.Module,
                             strict: bool = True, fold_input: bool = True
                             ) -> Tuple[Dict[str, torch.Tensor], ImageNetReport]:
    """torchvision ResNet-50 tensors -> {"backbone.<name>": tensor} for `model`."""
    source = unwrap_state_dict(source)
    backbone = model.backbone
    target = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    report = ImageNetReport()
    out: Dict[str, torch.Tensor] = {}
    for key, value in source.items():
        layer = re.match(r"^layer(\d)\.", key)
        if key.startswith("fc."):
            report.dropped.append((key, "ImageNet classifier"))
            continue
        if layer and not hasattr(backbone, f"layer{layer.group(1)}"):
            report.dropped.append((key, "a layer the model does not build"))
            continue
        new = f"backbone.{key}"
        if new not in target or not torch.is_tensor(value):
            report.unknown.append(key)
            continue
        want = tuple(target[new].shape)
        if tuple(value.shape) == want:
            out[new] = value.detach().clone().to(target[new].dtype)
        elif (re.match(r"^layer\d\.0\.downsample\.0\.weight$", key) and value.dim() == 4
              and tuple(value.shape[2:]) == (1, 1) and want[:2] == tuple(value.shape[:2]) and want[2:] == (3, 3)):
            w = torch.zeros(want, dtype=target[new].dtype)
            w[:, :, 1, 1] = value[:, :, 0, 0]
            out[new] = w
            report.adapted.append(key)
        else:
            report.shape_mismatch.append((key, tuple(value.shape), want))
            continue
        report.mapped.append((key, new))
    if fold_input and "backbone.conv1.weight" in out and "backbone.bn1.running_mean" in out:
        w, b = _fold_rgb_normalisation(out["backbone.conv1.weight"])
        out["backbone.conv1.weight"] = w
        out["backbone.bn1.running_mean"] = out["backbone.bn1.running_mean"] - b
        report.adapted.append("conv1.weight (RGB [0,1] normalised -> BGR 0..255)")
    return _finish(out, target, report, strict, "torchvision ResNet-50 state dict")


def map_torchvision_alexnet(source: Mapping[str, torch.Tensor], model: torch.nn.Module,
                            strict: bool = True, fold_input: bool = True
                            ) -> Tuple[Dict[str, torch.Tensor], ImageNetReport]:
    """torchvision AlexNet tensors -> {"backbone.features.N.<w|b>": tensor} for `model`."""
    source = unwrap_state_dict(source)
    target = {f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}
    report = ImageNetReport()
    out: Dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key.startswith("classifier."):
            report.dropped.append((key, "ImageNet classifier"))
            continue
        m = re.match(r"^features\.(\d+)\.(weight|bias)$", key)
        if not m or int(m.group(1)) not in ALEXNET_CONVS:
            report.unknown.append(key)
            continue
        place_tensor(out, target, report, key, f"backbone.features.{ALEXNET_CONVS[int(m.group(1))]}.{m.group(2)}",
                     value)
    # SiamFC's BN layers have no ImageNet counterpart: they keep the model's values
    for key, value in target.items():
        if key not in out and re.match(r"^backbone\.features\.(1|5|9|12)\.", key):
            out[key] = value.detach().clone()
    if fold_input and "backbone.features.0.weight" in out and "backbone.features.0.bias" in out:
        w, b = _fold_rgb_normalisation(out["backbone.features.0.weight"])
        out["backbone.features.0.weight"] = w
        out["backbone.features.0.bias"] = out["backbone.features.0.bias"] + b
        report.adapted.append("features.0 (RGB [0,1] normalised -> BGR 0..255)")
    return _finish(out, target, report, strict, "torchvision AlexNet state dict")


def _loader(mapper):
    def load(path: str, config: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        options = dict(config.get("weights_options") or {})
        strict = bool(options.get("strict", True))
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ImageNetWeightsError(f"cannot read {path}: {exc}") from exc
        model = build_model(config["model"])
        state, _ = mapper(obj, model, strict=strict, fold_input=bool(options.get("fold_input", True)))
        return state
    return load


WEIGHT_LOADERS["torchvision_resnet50"] = _loader(map_torchvision_resnet50)
WEIGHT_LOADERS["torchvision_alexnet"] = _loader(map_torchvision_alexnet)
