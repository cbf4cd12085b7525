"""Optimiser, learning-rate schedule and backbone freezing (the papers' common recipe).

Ta-ASiam, SiamAF-MSA and SiamCAN train 20 epochs with SGD (momentum 0.9,
weight decay 5e-4): warm-up 0.001 -> 0.005 over the first 5 epochs, then an
exponential (log-space) decay 0.005 -> 0.00005 over the rest; the backbone is
frozen for the first 10 epochs and trained afterwards at a fraction of the
learning rate (Ta-ASiam: 1/16; pysot's default 1/10).

Epochs scale to the data: the warm-up and the frozen phase are given as
fractions of the run (5/20 and 10/20 by default), so a 6-epoch run on a small
set warms up for 1-2 epochs and unfreezes after 3. Explicit counts
(`warmup_epochs`, `freeze_epochs`) override the fractions.

The rate is set per iteration (`lr_at(epoch + fraction)`): geometric warm-up
from warmup_lr to lr, then log-linear decay that reaches end_lr at the end of
the last epoch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn


@dataclass
class LRSchedule:
    epochs: int
    base_lr: float = 0.005
    warmup_lr: float = 0.001
    end_lr: float = 0.00005
    warmup_epochs: float = 5.0

    @classmethod
    def from_config(cls, cfg: Dict[str, Any], epochs: int) -> "LRSchedule":
        if cfg.get("warmup_epochs") is not None:
            warm = float(cfg["warmup_epochs"])
        else:
            warm = round(epochs * float(cfg.get("warmup_fraction", 0.25)))
        warm = min(warm, max(epochs - 1, 0))
        return cls(epochs=epochs, base_lr=float(cfg.get("lr", 0.005)),
                   warmup_lr=float(cfg.get("warmup_lr", 0.001)),
                   end_lr=float(cfg.get("end_lr", 0.00005)), warmup_epochs=warm)

    def lr_at(self, t: float) -> float:
        """Learning rate at fractional epoch t in [0, epochs]."""
        t = min(max(float(t), 0.0), float(self.epochs))
        w = self.warmup_epochs
        if w > 0 and t < w:
            return self.warmup_lr * (self.base_lr / self.warmup_lr) ** (t / w)
        span = self.epochs - w
        if span <= 0:
            return self.base_lr
        frac = (t - w) / span
        return math.exp(math.log(self.base_lr) + frac * (math.log(self.end_lr) - math.log(self.base_lr)))


def freeze_epochs(cfg: Dict[str, Any], epochs: int) -> int:
    if cfg.get("freeze_epochs") is not None:
        return int(cfg["freeze_epochs"])
    return int(epochs * float(cfg.get("freeze_fraction", 0.5)))


def backbone_module(model: nn.Module, name: str = "backbone") -> Optional[nn.Module]:
    return getattr(model, name, None)


def split_parameters(model: nn.Module, backbone_name: str = "backbone"):
    """(backbone params, other params), each as (name, param) lists."""
    bb, rest = [], []
    for n, p in model.named_parameters():
        (bb if n == backbone_name or n.startswith(backbone_name + ".") else rest).append((n, p))
    return bb, rest


def set_backbone_trainable(model: nn.Module, trainable: bool, backbone_name: str = "backbone",
                           train_prefixes: Optional[Sequence[str]] = None) -> int:
    """(Un)freeze the backbone; with train_prefixes only those sub-modules thaw
    (e.g. ["layer2", "layer3", "layer4"]: SiamCAN trains the last 3 blocks).
    Returns the number of trainable backbone tensors."""
    bb, _ = split_parameters(model, backbone_name)
    count = 0
    for n, p in bb:
        sub = n[len(backbone_name) + 1:]
        ok = trainable and (not train_prefixes or any(sub == q or sub.startswith(q + ".") for q in train_prefixes))
        p.requires_grad_(ok)
        count += int(ok)
    return count


def frozen_backbone_eval(model: nn.Module, backbone_name: str = "backbone") -> None:
    """Keep BatchNorm statistics of the frozen parts fixed (pysot does the same):
    every backbone sub-module without a trainable parameter goes to eval mode."""
    bb = backbone_module(model, backbone_name)
    if bb is None:
        return
    for m in bb.modules():
        params = list(m.parameters(recurse=False))
        if params and not any(p.requires_grad for p in params):
            m.eval()


def build_optimizer(model: nn.Module, cfg: Dict[str, Any], backbone_name: str = "backbone"
                    ) -> torch.optim.Optimizer:
    """SGD with two parameter groups; group['lr_mult'] scales the scheduled lr.

    All parameters are in the optimiser from the start (frozen ones simply get
    no gradient), so unfreezing needs no new optimiser and resume restores it.
    """
    bb, rest = split_parameters(model, backbone_name)
    mult = float(cfg.get("backbone_lr_mult", 0.1))
    groups = [{"params": [p for _, p in rest], "lr_mult": 1.0, "name": "heads"}]
    if bb:
        groups.append({"params": [p for _, p in bb], "lr_mult": mult, "name": "backbone"})
    return torch.optim.SGD(groups, lr=float(cfg.get("lr", 0.005)), momentum=float(cfg.get("momentum", 0.9)),
                           weight_decay=float(cfg.get("weight_decay", 5e-4)),
                           nesterov=bool(cfg.get("nesterov", False)))


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
