"""Training configs: reading them, the model they name, the data they describe
and the weights a run starts from (`init:`).

A training config (config/train/NAME.yaml):

    name: nanotrack_light
    model: nanotrack                  # config/models NAME, a YAML path, or an inline {name, model, tracker}
    init:                             # optional: start from (part of) a weights file
      path: ../shared/weights/nanotrack_v2/nanotrackv2.pth
      format: nanotrack_v2            # registry weights_format ("native" = project checkpoint;
                                      # torchvision_resnet50 / torchvision_alexnet: an ImageNet backbone)
      only: [backbone]                # keep only these top-level modules' weights
      strict: false                   # true: every tensor of `only` must come from the file
    data:                             # siam_tracker_ros.train.sampler.PairDataset
      datasets:                       # the sources mixed, each with its weight
        - {type: crops, root: ../shared/data/train/crops, weight: 3}
        - {type: otb, root: work_dirs/data/pseudo_v1, weight: 1}
      mode: plain                     # or two_stage (Ta-ASiam)
      temporal: sample                # sample | loss (RASNet: Omega in the loss) | uniform
      length: 20000                   # distinct pairs per epoch available
    train:
      actor: plain                    # train/actors.py (default: two_stage when data.mode is two_stage)
      epochs: 20
      batch_size: 32
      loss: {type: ban}               # losses.build_criterion (the loss registry)
      optimizer: {lr: 0.005, warmup_lr: 0.001, end_lr: 0.00005, backbone_lr_mult: 0.1}
      freeze: {freeze_fraction: 0.5}  # backbone frozen for the first half
      two_stage: {fusion_weight: 1.0} # the two_stage actor's options
    val: {sequences: ../shared/data/sequences, max_frames: null, every: 1}
    seed: 0
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Dict, Optional

import yaml
from torch import nn

from ..core.models import registry


def load_train_config(path: str) -> Dict[str, Any]:
    with open(path) as f:
        cfg = yaml.safe_load(f)
    if not isinstance(cfg, dict) or "model" not in cfg:
        raise ValueError(f"{path}: a training config needs at least a 'model' entry")
    cfg.setdefault("name", os.path.splitext(os.path.basename(path))[0])
    cfg["_source"] = os.path.abspath(path)
    return cfg


def resolve_model_config(model: Any) -> Dict[str, Any]:
    """config/models NAME, a YAML path, or an inline dict with model + tracker."""
    if isinstance(model, dict):
        cfg = copy.deepcopy(model)
        if "model" not in cfg or "tracker" not in cfg:
            raise ValueError("an inline model config needs 'model' and 'tracker' sections")
        cfg.setdefault("name", cfg["model"].get("type", "model"))
        return cfg
    return registry.load_model_config(str(model))


def checkpoint_model_config(model_cfg: Dict[str, Any]) -> Dict[str, Any]:
    """What goes into a checkpoint: the weights are the checkpoint's own."""
    cfg = {k: copy.deepcopy(v) for k, v in model_cfg.items() if not k.startswith("_")}
    cfg["weights"] = None
    cfg.pop("weights_format", None)
    cfg.pop("weights_strict", None)
    cfg.pop("weights_options", None)
    return cfg


def build_pair_dataset(data_cfg: Dict[str, Any], seed: int = 0):
    """PairDataset from the `data` section (each entry of `datasets` is one source
    with its own `weight`)."""
    from .datasets import build_dataset
    from .sampler import PairDataset
    cfg = copy.deepcopy(data_cfg)
    specs = cfg.pop("datasets", None)
    if not specs:
        raise ValueError("data.datasets must list at least one dataset ({type: ..., root: ...})")
    datasets, weights = [], []
    for spec in specs:
        spec = dict(spec)
        kind = spec.pop("type")
        weights.append(float(spec.pop("weight", 1.0)))
        if "root" in spec:
            spec["root"] = os.path.expanduser(str(spec["root"]))
        datasets.append(build_dataset(kind, **spec))
    cfg.setdefault("seed", seed)
    return PairDataset(datasets, weights=weights, **cfg)


def init_weights(model: nn.Module, model_cfg: Dict[str, Any], init_cfg: Optional[Dict[str, Any]],
                 log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Load (part of) a weights file into the fresh model and say what was kept.

    A missing init file is an error that says what to do (bring the file, or
    run without `init:` knowing what that means); `strict: true` also requires
    every tensor of the `only` modules to come from the file. Returns a summary
    {"path", "format", "loaded", "of"} (empty without init)."""
    if not init_cfg:
        return {}
    path = os.path.expanduser(str(init_cfg["path"]))
    fmt = init_cfg.get("format", "native")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"init.path {path} does not exist. {init_cfg.get('note', '')} "
            "Bring the file (see the comment of this training config), point init.path at it, "
            "or remove init: (--set init=null) to start from random weights.".replace("  ", " "))
    cfg = dict(model_cfg)
    cfg["weights_format"] = fmt
    cfg["weights_strict"] = False
    cfg["weights_options"] = {**dict(model_cfg.get("weights_options") or {}),
                              **dict(init_cfg.get("options") or {})}
    if "strict" in init_cfg:        # the format's loader checks its own mapping strictly too
        cfg["weights_options"].setdefault("strict", bool(init_cfg["strict"]))
    state = registry.load_weights_file(path, cfg)
    only = init_cfg.get("only")
    if only:
        state = {k: v for k, v in state.items() if k.split(".")[0] in set(only)}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if init_cfg.get("strict"):
        scope = [k for k in own if not only or k.split(".")[0] in set(only)]
        missing = [k for k in scope if k not in usable and not k.endswith("num_batches_tracked")]
        if missing:
            raise ValueError(f"init (strict): {len(missing)} model tensors not in {path}: "
                             + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    model.load_state_dict(usable, strict=False)
    log(f"init: {len(usable)}/{len(own)} tensors from {path} (format {fmt}"
        f"{', only ' + ','.join(only) if only else ''}; {len(state) - len(usable)} skipped)")
    return {"path": path, "format": fmt, "loaded": len(usable), "of": len(own)}
