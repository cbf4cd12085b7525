"""Per-method training steps ("actors"): what one batch does to a model.

The generic trainer (trainer.py) owns the data, the schedule, the optimiser,
DDP, checkpoints and logs; an actor owns the step in between: which forward
passes run on which crops and which loss terms they feed. The config chooses it
(`train.actor`, default: `two_stage` when `data.mode: two_stage`, else `plain`),
and a new method adds its own with `@register_actor("name")`:

    class MyActor(Actor):
        def network(self): ...            # the nn.Module whose forward runs the step (DDP wraps it)
        def loss(self, net, batch): ...   # -> (scalar loss, {name: detached scalar})

Registered here:

``plain``      one forward of (template, search), the criterion on the fused
               output (SiamFC, RASNet, SiamRPN++-style, SiamCAN, SiamAF-MSA, ...).
``two_stage``  Ta-ASiam's two-stage aware training (paper Sec. 4), see
               :class:`TwoStageActor`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

ACTORS: Dict[str, type] = {}


def register_actor(name: str):
    def deco(cls):
        ACTORS[name] = cls
        cls.name = name
        return cls
    return deco


def build_actor(name: str, model: nn.Module, criterion, cfg: Optional[Dict[str, Any]] = None,
                device: torch.device = torch.device("cpu"), amp: bool = False) -> "Actor":
    if name not in ACTORS:
        raise ValueError(f"unknown train.actor '{name}'; registered: {sorted(ACTORS)}")
    return ACTORS[name](model, criterion, dict(cfg or {}), device, amp)


def tree_map(fn: Callable, obj):
    if torch.is_tensor(obj):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: tree_map(fn, v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(tree_map(fn, v) for v in obj)
    return obj


class Actor:
    """Base: the plain step's helpers. Subclasses set `find_unused_parameters`
    when some parameters may see no loss term in a step (DDP must know)."""

    name = "actor"
    find_unused_parameters = False
    #: the data.mode this actor needs (None: any)
    data_mode: Optional[str] = None

    def __init__(self, model: nn.Module, criterion, cfg: Dict[str, Any], device: torch.device,
                 amp: bool = False):
        self.model = model
        self.criterion = criterion
        self.cfg = cfg
        self.device = device
        self.amp = bool(amp)

    def network(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, net: nn.Module, batch: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------
    def _tensor(self, batch, key):
        return batch[key].to(self.device, non_blocking=True)

    def _image(self, batch, key):
        return self._tensor(batch, key).float()

    def _negative(self, batch, n):
        neg = batch.get("negative")
        if neg is None:
            return torch.zeros(n, dtype=torch.bool, device=self.device)
        return torch.as_tensor(neg).to(self.device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)


class SiamesePass(nn.Module):
    """forward(template, search) -> model.track(model.template(template), search).

    The models are stateless (template(z) / track(state, x)); DDP needs one
    nn.Module whose forward runs the whole step, which this is."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, template: torch.Tensor, search: torch.Tensor):
        return self.model.track(self.model.template(template), search)


@register_actor("plain")
class PlainActor(Actor):
    """One forward of (template, search); the criterion on the model's output."""

    def network(self) -> nn.Module:
        return SiamesePass(self.model)

    def loss(self, net, batch):
        z = self._image(batch, "template")
        x = self._image(batch, "search")
        boxes = self._tensor(batch, "search_box")
        with self._autocast():
            out = net(z, x)
        return self.criterion(out, boxes, self._negative(batch, len(boxes)), batch)


class TwoStagePass(nn.Module):
    """forward(template, position, appearance) -> (outputs on the position-aware
    crops, outputs on the appearance-aware crops), each with the per-level
    branches. The template is computed once; the two kinds of crops go through
    the model in two passes, so that batch-norm statistics of one kind never
    mix into the other's outputs (and so into its gradients)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, template, position, appearance):
        state = self.model.template(template)
        return (self.model.track(state, position, return_branches=True),
                self.model.track(state, appearance, return_branches=True))


@register_actor("two_stage")
class TwoStageActor(Actor):
    """Ta-ASiam's two-stage aware training (paper Sec. 4, "Two-stage aware training").

    Every item holds a position-aware crop (`search`: shifts, 90-degree rotations,
    anisotropic scale) and an appearance-aware crop (`search_appearance`: blur,
    colour, occlusion) of the same search frame. The paper trains the shallow
    layers (its third ResNet block, pysot layer2, with that level's attention
    and RPN) with the position-aware samples only, and the deeper layers (its
    fourth block, pysot layer3, with its attention and RPN) with the
    appearance-aware samples only, in one end-to-end step. Here:

    - position-aware crops -> loss of the `position_level` branch (its unfused
      RPN output); appearance-aware crops -> loss of the `appearance_level` branch;
    - the model runs with branch isolation (`model.set_branch_isolation(True)`:
      the backbone detaches the input of every level's stage from the level
      below), so the appearance loss does not reach the shallow block through the
      deep block's input; each kind thus trains only its own branch, exactly
      (test_two_stage_isolation.py checks zero gradients both ways);
    - the fusion weights (alpha for cls, beta for loc, Eq. 6) get no gradient from
      those branch losses. The paper says they are "trained along with the
      network weights" and no more; here a fused-output term trains them:
      the criterion on sum_l alpha_l * C_l.detach() (and beta for loc), on both
      kinds of crops, times `fusion_weight` (default 1). The branch outputs are
      detached in it, so it moves alpha and beta only and leaks nothing into
      either branch. (Earlier code took the fused loss without detaching, which
      sent the deep RPN a gradient from the position-aware crops.)

    Parts logged: pos_cls/pos_loc, app_cls/app_loc, fusion; `position_loss` and
    `appearance_loss` (with their graphs) are what each kind contributes.
    """

    find_unused_parameters = True   # DDP: e.g. a frozen branch or the other kind's modules
    data_mode = "two_stage"

    def __init__(self, model, criterion, cfg, device, amp=False):
        super().__init__(model, criterion, cfg, device, amp)
        levels = list(getattr(model, "levels", []))
        if len(levels) < 2 or not hasattr(model, "set_branch_isolation"):
            raise ValueError("the two_stage actor needs a multi-level model with branch isolation "
                             "(Ta-ASiam: set_branch_isolation, track(..., return_branches=True))")
        self.position_level = int(cfg.get("position_level", levels[0]))
        self.appearance_level = int(cfg.get("appearance_level", levels[-1]))
        for lv in (self.position_level, self.appearance_level):
            if lv not in levels:
                raise ValueError(f"two_stage level {lv} is not one of the model's levels {levels}")
        if self.position_level == self.appearance_level:
            raise ValueError("two_stage: position_level and appearance_level must differ")
        self.fusion_weight = float(cfg.get("fusion_weight", 1.0))
        model.set_branch_isolation(True)

    def network(self) -> nn.Module:
        return TwoStagePass(self.model)

    @staticmethod
    def _branch(out, level):
        return next(b for b in out["branches"] if int(b["level"]) == level)

    @staticmethod
    def fused_from_detached(out) -> Dict[str, torch.Tensor]:
        """Eq. 6 with every branch output detached: gradients reach alpha and beta only."""
        alpha, beta = out["fusion"]["cls"], out["fusion"]["loc"]
        cls = sum(a * b["cls"].detach() for a, b in zip(alpha, out["branches"]))
        loc = sum(w * b["loc"].detach() for w, b in zip(beta, out["branches"]))
        return {"cls": cls, "loc": loc}

    def losses(self, net, batch) -> Dict[str, Any]:
        """Each kind's loss as a separate tensor (the tests take their gradients apart)."""
        z = self._image(batch, "template")
        xp = self._image(batch, "search")
        xa = self._image(batch, "search_appearance")
        boxes_p = self._tensor(batch, "search_box")
        boxes_a = self._tensor(batch, "search_appearance_box")
        neg = self._negative(batch, len(boxes_p))
        with self._autocast():
            out_p, out_a = net(z, xp, xa)
        lp, pp = self.criterion(self._branch(out_p, self.position_level), boxes_p, neg, batch)
        la, pa = self.criterion(self._branch(out_a, self.appearance_level), boxes_a, neg, batch)
        parts: Dict[str, torch.Tensor] = {}
        parts.update({f"pos_{k}": v for k, v in pp.items()})
        parts.update({f"app_{k}": v for k, v in pa.items()})
        position_loss, appearance_loss = lp, la
        if self.fusion_weight > 0:
            fp, _ = self.criterion(self.fused_from_detached(out_p), boxes_p, neg, batch)
            fa, _ = self.criterion(self.fused_from_detached(out_a), boxes_a, neg, batch)
            position_loss = position_loss + 0.5 * self.fusion_weight * fp
            appearance_loss = appearance_loss + 0.5 * self.fusion_weight * fa
            parts["fusion"] = (0.5 * (fp + fa)).detach()
        return {"position_loss": position_loss, "appearance_loss": appearance_loss, "parts": parts}

    def loss(self, net, batch):
        res = self.losses(net, batch)
        return res["position_loss"] + res["appearance_loss"], res["parts"]


def actor_name(cfg: Dict[str, Any]) -> str:
    """train.actor, or the default for data.mode."""
    tcfg = cfg.get("train", {}) or {}
    if tcfg.get("actor"):
        return str(tcfg["actor"])
    mode = (cfg.get("data", {}) or {}).get("mode", "plain")
    return "two_stage" if mode == "two_stage" or tcfg.get("two_stage_enabled") else "plain"


def available_actors() -> List[str]:
    return sorted(ACTORS)
