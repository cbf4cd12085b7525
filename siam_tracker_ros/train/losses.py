"""Training losses of the four papers and their criteria (outputs + batch -> loss).

Primitive losses (each checked against a hand-computed value in test_losses.py):
- logistic_loss: SiamFC's  sum_u w_u * log(1 + exp(-y_u v_u))  per pair (y in
  {-1, +1}; written as BCE-with-logits on {0, 1} labels), averaged over pairs,
  optionally weighted per pair.
- temporal_weights: RASNet Eq. 13, Omega(i, j) = exp(-|i - j| / sigma), sigma = 100;
  RASNet's loss (Eq. 12) is the logistic loss weighted per pair by Omega.
- rpn_cls_loss / rpn_loc_loss: SiamRPN: cross-entropy over the sampled anchors
  (half weight on the positive mean, half on the negative mean) and smooth-L1
  on the normalised deltas of the positives.
- point_cls_loss: cross-entropy (2-channel head) or BCE (1-channel head) over the
  labelled points, balanced like the RPN loss. For a 2-channel head the two are
  the same number: BCE on the logit difference equals the 2-way softmax CE.
- iou_loss: 1 - IoU of (l, t, r, b) boxes around the same point (UnitBox; the
  SiamAF-MSA paper's L_IoU, Eq. 10), averaged over the positives.
- log_iou_loss: -log((I + 1) / (U + 1)), SiamBAN's implementation of the IoU loss.
- diou_loss: 1 - IoU + rho^2 / c^2 (Zheng et al. 2020; SiamCAN Eq. 15 prints c
  where the DIoU paper has c^2 — c is a length, so c^2 keeps the term unitless).

Criteria turn model outputs + a batch into (loss, parts). They live in a registry
like the model registry: `@register_loss("name")` on a class (or a factory
taking (cfg, model)); `build_criterion({"type": name, ...}, model)` builds one,
so a new method adds its loss without touching the trainer:
    logistic  SiamFC                          outputs["response"]
    rasnet    Omega-weighted logistic (RASNet Eq. 12-13)  outputs["response"], batch["frame_gap"]
              (needs pairs drawn with data.temporal: loss: j != i uniformly)
    rpn       Ta-ASiam / SiamRPN++            outputs["cls"] B x 2K x S x S, ["loc"] B x 4K x S x S
    siamcan   ellipse + circle labels, CE + DIoU      outputs["cls"] B x 2 x S x S, ["loc"] B x 4 x S x S
    sae       in-box labels, BCE + IoU: 1 - IoU (SiamAF-MSA Eq. 10)   idem
              (reg: log_iou is the option: -log IoU keeps a strong gradient while
              a box is far too small or large, where 1 - IoU's gradient is ~0)
    ban       SiamBAN ellipses, CE + -log IoU (NanoTrack / SiamBAN's code)  idem
Anchor-free "loc" is positive (l, t, r, b) in search-crop px (heads.py contract);
RPN channel layout is pysot's: cls channel c * K + k (c = 0 background,
1 target), loc channel j * K + k, anchors ratio-major (targets.anchor_shapes).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from . import targets as T

# ---------------------------------------------------------------------------
# Primitive losses


def logistic_loss(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                  pair_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """sum over the map of weights * log(1 + exp(-y v)), mean over pairs (x pair_weights)."""
    per_cell = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    per_pair = (per_cell * weights).flatten(1).sum(1)
    if pair_weights is not None:
        per_pair = per_pair * pair_weights.to(per_pair)
    return per_pair.mean()


def temporal_weights(frame_gap: torch.Tensor, sigma: float = 100.0) -> torch.Tensor:
    """RASNet Eq. 13: exp(-|i - j| / sigma)."""
    return torch.exp(-frame_gap.float().abs() / sigma)


def _balanced_nll(logp_pos: torch.Tensor, logp_neg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """0.5 * mean(-log p(target) | positives) + 0.5 * mean(-log p(background) | negatives)."""
    pos = labels == T.POSITIVE
    neg = labels == T.NEGATIVE
    loss = logp_pos.new_zeros(())
    if pos.any():
        loss = loss + 0.5 * (-logp_pos[pos]).mean()
    if neg.any():
        loss = loss + 0.5 * (-logp_neg[neg]).mean()
    return loss


def rpn_cls_loss(cls: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """cls: B x K x S x S x 2 logits (last axis: background, target); labels B x K x S x S."""
    logp = F.log_softmax(cls.float(), dim=-1)
    return _balanced_nll(logp[..., 1], logp[..., 0], labels)


def rpn_loc_loss(loc: torch.Tensor, deltas: torch.Tensor, delta_weight: torch.Tensor,
                 beta: float = 1.0 / 9.0) -> torch.Tensor:
    """Smooth-L1 over the 4 deltas, weighted per anchor (1/#pos on positives), summed, / B."""
    diff = F.smooth_l1_loss(loc.float(), deltas.float(), reduction="none", beta=beta).sum(1)
    return (diff * delta_weight).sum() / loc.shape[0]


def point_cls_loss(cls: torch.Tensor, labels: torch.Tensor, fg_channel: int = 1) -> torch.Tensor:
    """cls: B x 2 x S x S (softmax CE) or B x 1 x S x S (sigmoid BCE); labels B x S x S."""
    cls = cls.float()
    if cls.shape[1] == 2:
        logp = F.log_softmax(cls, dim=1)
        return _balanced_nll(logp[:, fg_channel], logp[:, 1 - fg_channel], labels)
    if cls.shape[1] == 1:
        return _balanced_nll(F.logsigmoid(cls[:, 0]), F.logsigmoid(-cls[:, 0]), labels)
    raise ValueError(f"point classification needs 1 or 2 channels, got {cls.shape[1]}")


def _ltrb_boxes(ltrb: torch.Tensor) -> torch.Tensor:
    """(l, t, r, b) around the origin -> (x0, y0, x1, y1) = (-l, -t, r, b)."""
    return torch.stack([-ltrb[..., 0], -ltrb[..., 1], ltrb[..., 2], ltrb[..., 3]], dim=-1)


def iou_ltrb(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of boxes given as distances to the same point, ... x 4 -> ..."""
    return T.box_iou_xyxy(_ltrb_boxes(pred), _ltrb_boxes(target))


def iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean(1 - IoU) over N x 4 (l, t, r, b) pairs; 0 for N = 0."""
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    return (1.0 - iou_ltrb(pred.float(), target.float())).mean()


def log_iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean(-log((I + 1) / (U + 1))) (SiamBAN's IOULoss; strong gradient while IoU ~ 0)."""
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    a, b = _ltrb_boxes(pred.float()), _ltrb_boxes(target.float())
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return (-torch.log((inter + 1.0) / (union + 1.0))).mean()


def diou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean(1 - IoU + rho^2 / c^2) over N x 4 (l, t, r, b) pairs; 0 for N = 0."""
    if pred.shape[0] == 0:
        return pred.sum() * 0.0
    a, b = _ltrb_boxes(pred.float()), _ltrb_boxes(target.float())
    iou = T.box_iou_xyxy(a, b)
    ca = (a[:, :2] + a[:, 2:]) / 2
    cb = (b[:, :2] + b[:, 2:]) / 2
    rho2 = ((ca - cb) ** 2).sum(1)
    enc_lo = torch.minimum(a[:, :2], b[:, :2])
    enc_hi = torch.maximum(a[:, 2:], b[:, 2:])
    c2 = ((enc_hi - enc_lo) ** 2).sum(1).clamp(min=1e-12)
    return (1.0 - iou + rho2 / c2).mean()


# ---------------------------------------------------------------------------
# Criteria


def _stride(cfg: Dict[str, Any], model) -> float:
    if cfg.get("stride") is not None:
        return float(cfg["stride"])
    for obj in (model, getattr(model, "backbone", None)):
        s = getattr(obj, "stride", None) if obj is not None else None
        if isinstance(s, (int, float)):
            return float(s)
    return 8.0


def _search_size(cfg: Dict[str, Any], model) -> int:
    if cfg.get("search_size") is not None:
        return int(cfg["search_size"])
    return int(getattr(model, "instance_size", 255))


class Criterion:
    """loss(outputs, boxes, negative, batch) -> (scalar loss, {name: detached scalar})."""

    def __init__(self, cfg: Dict[str, Any], model=None):
        self.cfg = dict(cfg)
        self.stride = _stride(self.cfg, model)
        self.search_size = _search_size(self.cfg, model)
        self.generator: Optional[torch.Generator] = None

    def __call__(self, outputs: Dict[str, torch.Tensor], boxes: torch.Tensor,
                 negative: Optional[torch.Tensor] = None, batch: Optional[Dict[str, Any]] = None
                 ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        raise NotImplementedError


LOSSES: Dict[str, Callable[[Dict[str, Any], Any], Criterion]] = {}


def register_loss(name: str, **defaults):
    """Register a criterion class (or a factory (cfg, model) -> Criterion) under
    `name`; `defaults` are passed as keyword arguments (presets)."""
    def deco(factory):
        LOSSES[name] = (lambda cfg, model: factory(cfg, model, **defaults)) if defaults else factory
        return factory
    return deco


@register_loss("rasnet", temporal=True)
@register_loss("logistic")
class LogisticCriterion(Criterion):
    """SiamFC's logistic loss; with temporal=True RASNet's Eq. 12: each pair's
    loss times Omega(i, j) = exp(-|i - j| / sigma) (Eq. 13), from the batch's
    frame_gap. RASNet sums over pairs i != j drawn uniformly (data.temporal: loss);
    a batch without frame_gap is an error, not an unweighted loss."""

    #: the data.temporal mode this criterion needs (None: any)
    temporal_mode: Optional[str] = None

    def __init__(self, cfg, model=None, temporal: bool = False):
        super().__init__(cfg, model)
        self.radius = float(self.cfg.get("radius", 16.0))
        self.temporal = temporal or bool(self.cfg.get("temporal", False))
        self.sigma = float(self.cfg.get("sigma", 100.0))
        if self.temporal:
            self.temporal_mode = "loss"

    def __call__(self, outputs, boxes, negative=None, batch=None):
        logits = outputs["response"]
        labels, weights = T.logistic_labels(boxes.to(logits.device), logits.shape[-1], self.stride,
                                            self.radius, self.search_size, negative)
        pair_w = None
        if self.temporal:
            gaps = None if batch is None else batch.get("frame_gap")
            if gaps is None:
                raise ValueError("the rasnet loss weights each pair by Omega(i, j) and needs the batch's "
                                 "frame_gap (PairDataset gives it; draw pairs with data.temporal: loss)")
            pair_w = temporal_weights(torch.as_tensor(gaps, device=logits.device), self.sigma)
        loss = logistic_loss(logits, labels, weights, pair_w)
        return loss, {"cls": loss.detach()}


@register_loss("rpn")
class RPNCriterion(Criterion):
    def __init__(self, cfg, model=None):
        super().__init__(cfg, model)
        self.ratios = tuple(self.cfg.get("anchor_ratios", getattr(model, "anchor_ratios", (0.33, 0.5, 1, 2, 3))))
        self.scales = tuple(self.cfg.get("anchor_scales", getattr(model, "anchor_scales", (8,))))
        self.k = len(self.ratios) * len(self.scales)
        self.cls_weight = float(self.cfg.get("cls_weight", 1.0))
        self.loc_weight = float(self.cfg.get("loc_weight", 1.2))
        self.sampling = dict(pos_iou=float(self.cfg.get("pos_iou", 0.6)),
                             neg_iou=float(self.cfg.get("neg_iou", 0.3)),
                             num_pos=int(self.cfg.get("num_pos", 16)),
                             num_neg=self.cfg.get("num_neg"),
                             num_total=int(self.cfg.get("num_total", 64)))
        self._anchors: Dict[Any, torch.Tensor] = {}

    def anchors(self, size: int, device) -> torch.Tensor:
        key = (size, str(device))
        if key not in self._anchors:
            self._anchors[key] = T.generate_anchors(size, self.stride, self.ratios, self.scales,
                                                    self.search_size, device=device)
        return self._anchors[key]

    def __call__(self, outputs, boxes, negative=None, batch=None):
        cls, loc = outputs["cls"], outputs["loc"]
        b, _, h, w = cls.shape
        k = self.k
        if cls.shape[1] != 2 * k or loc.shape[1] != 4 * k:
            raise ValueError(f"RPN outputs {tuple(cls.shape)} / {tuple(loc.shape)} do not fit K={k} anchors")
        tg = T.rpn_targets(boxes.to(cls.device), self.anchors(h, cls.device), negative,
                           generator=self.generator, **self.sampling)
        cls5 = cls.view(b, 2, k, h, w).permute(0, 2, 3, 4, 1)
        loc5 = loc.view(b, 4, k, h, w)
        lc = rpn_cls_loss(cls5, tg["labels"])
        ll = rpn_loc_loss(loc5, tg["deltas"], tg["delta_weight"])
        loss = self.cls_weight * lc + self.loc_weight * ll
        return loss, {"cls": lc.detach(), "loc": ll.detach()}


class PointCriterion(Criterion):
    """Anchor-free: point labels (mode) + classification + box regression loss."""

    PRESETS = {
        "siamcan": dict(mode="siamcan", reg="diou", num_pos=16, num_neg=48),
        "sae": dict(mode="box", reg="iou", num_pos=None, num_neg=None),
        "ban": dict(mode="ban", reg="log_iou", num_pos=16, num_total=64),
    }

    def __init__(self, cfg, model=None, preset: str = "siamcan"):
        super().__init__(cfg, model)
        merged = dict(self.PRESETS[preset])
        merged.update({k: v for k, v in self.cfg.items() if k in
                       ("mode", "reg", "num_pos", "num_neg", "num_total", "neg_pair_num")})
        self.mode = merged["mode"]
        self.reg = merged["reg"]
        self.num_pos = merged.get("num_pos")
        self.num_neg = merged.get("num_neg")
        self.num_total = merged.get("num_total")
        self.neg_pair_num = merged.get("neg_pair_num", 16)
        self.fg_channel = int(self.cfg.get("fg_channel", 1))
        self.cls_weight = float(self.cfg.get("cls_weight", 1.0))
        self.loc_weight = float(self.cfg.get("loc_weight", 1.0))
        if self.reg not in REG_LOSSES:
            raise ValueError(f"unknown regression loss '{self.reg}' ({', '.join(REG_LOSSES)})")

    def __call__(self, outputs, boxes, negative=None, batch=None):
        cls, loc = outputs["cls"], outputs["loc"]
        size = cls.shape[-1]
        tg = T.point_targets(boxes.to(cls.device), size, self.stride, self.mode, self.search_size, negative,
                             num_pos=self.num_pos, num_neg=self.num_neg, num_total=self.num_total,
                             neg_pair_num=self.neg_pair_num, generator=self.generator)
        lc = point_cls_loss(cls, tg["labels"], self.fg_channel)
        # Regression on every positive point (before subsampling would be the same
        # set up to the cap; SiamBAN/SiamCAN regress the sampled-label positives).
        pos = tg["labels"] == T.POSITIVE
        pred = loc.float().permute(0, 2, 3, 1)[pos]
        target = tg["ltrb"].permute(0, 2, 3, 1)[pos]
        ll = REG_LOSSES[self.reg](pred, target)
        loss = self.cls_weight * lc + self.loc_weight * ll
        return loss, {"cls": lc.detach(), "loc": ll.detach()}


REG_LOSSES = {"iou": iou_loss, "log_iou": log_iou_loss, "diou": diou_loss}

for _preset in PointCriterion.PRESETS:
    register_loss(_preset, preset=_preset)(PointCriterion)


def build_criterion(cfg: Dict[str, Any], model=None) -> Criterion:
    """The registered criterion `cfg["type"]` (default logistic) with the rest of cfg."""
    cfg = dict(cfg or {})
    kind = cfg.pop("type", "logistic")
    if kind not in LOSSES:
        raise ValueError(f"unknown loss type '{kind}'; registered: {sorted(LOSSES)}")
    return LOSSES[kind](cfg, model)
