"""Label assignment: which score-map cells / anchors are positive, negative or ignored.

Everything is batched torch on the device of the boxes, computed from the
ground-truth box in search-crop pixels (xyxy, continuous coordinates: the crop
covers [0, search_size) and its centre, where the tracker put the previous
target centre, is search_size / 2) and the size of the map the head produced.

Score-map geometry (shared with the trackers): cell i of an S-cell map sits at
    p_i = search_size / 2 + (i - (S - 1) / 2) * stride      (search-crop px)
so the middle cell is the crop centre (SiamFC 17x17 / stride 8, SiamBAN-style
25x25 / stride 8, NanoTrack 15x15 / stride 16 all follow it).

Label values: 1 positive, 0 negative, -1 ignored.

Families
- logistic_labels: SiamFC / RASNet. Positive within `radius` search px of the
  target centre (SiamFC: 16 px = 2 cells at stride 8), negative elsewhere;
  balanced weights (half the mass on each class, per pair). Negative pairs (the
  search crop holds another object) are all negative.
- rpn_targets: SiamRPN / Ta-ASiam anchors. IoU > 0.6 positive, < 0.3 negative,
  at most `num_pos` positives and `num_neg` negatives (default: total 64 minus
  the positives, i.e. 48 with 16 positives); deltas
  ((gx - ax) / aw, (gy - ay) / ah, log(gw / aw), log(gh / ah)).
- point_targets: anchor-free heads. `mode`:
    "siamcan": SiamCAN Eq. 10-12: positive inside the circle C2 of radius
        r = (w/2 * h/2) / sqrt((w/2)^2 + (h/2)^2) around the box centre,
        negative outside the ellipse E1 with semi-axes (w/2, h/2), ignored between.
    "ban": SiamBAN: positive inside the ellipse with semi-axes (w/4, h/4),
        negative outside the one with (w/2, h/2), ignored between.
    "box": SiamAF-MSA (SAE model, Eq. 9-11): positive where the point lies in the
        ground-truth box, negative elsewhere.
  Regression targets (l, t, r, b) = (p_x - x0, p_y - y0, x1 - p_x, y1 - p_y)
  for every point (meaningful where positive).
  Optional subsampling to `num_pos` / `num_neg` per pair (SiamCAN: 16 / 48).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from ..core.tracking.anchor_based import generate_anchor_shapes

POSITIVE, NEGATIVE, IGNORE = 1, 0, -1


def map_points(size: int, stride: float, search_size: int = 255,
               device=None, dtype=torch.float32) -> torch.Tensor:
    """Search-crop px coordinate of each of the `size` cells along one axis."""
    idx = torch.arange(size, device=device, dtype=dtype)
    return search_size / 2.0 + (idx - (size // 2)) * stride


def _as_boxes(boxes: torch.Tensor) -> torch.Tensor:
    boxes = torch.as_tensor(boxes, dtype=torch.float32)
    if boxes.dim() == 1:
        boxes = boxes.unsqueeze(0)
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be B x 4 xyxy, got {tuple(boxes.shape)}")
    return boxes


def _negatives(negative: Optional[torch.Tensor], batch: int, device) -> torch.Tensor:
    if negative is None:
        return torch.zeros(batch, dtype=torch.bool, device=device)
    return torch.as_tensor(negative, device=device).reshape(batch).bool()


def subsample(labels: torch.Tensor, num_pos: Optional[int], num_neg: Optional[int],
              num_total: Optional[int] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Keep at most num_pos positives and num_neg negatives per pair (the rest -> ignore).

    labels: B x ... with values 1 / 0 / -1. num_neg=None with num_total given keeps
    num_total - (positives kept) negatives (pysot's rule). None = keep all.
    The choice is uniform at random (random keys, top-k per pair).
    """
    if num_pos is None and num_neg is None and num_total is None:
        return labels
    b = labels.shape[0]
    flat = labels.reshape(b, -1).clone()
    keys = torch.rand(flat.shape, generator=generator,
                      device=flat.device if generator is None else generator.device).to(flat.device)
    pos = flat == POSITIVE
    if num_pos is not None:
        kept_pos = _keep_random(pos, keys, torch.full((b,), int(num_pos), device=flat.device))
        flat[pos & ~kept_pos] = IGNORE
        pos = kept_pos
    neg = flat == NEGATIVE
    if num_neg is not None:
        quota = torch.full((b,), int(num_neg), device=flat.device)
    elif num_total is not None:
        quota = (int(num_total) - pos.sum(1)).clamp(min=0)
    else:
        quota = None
    if quota is not None:
        kept_neg = _keep_random(neg, keys, quota)
        flat[neg & ~kept_neg] = IGNORE
    return flat.reshape(labels.shape)


def _keep_random(mask: torch.Tensor, keys: torch.Tensor, quota: torch.Tensor) -> torch.Tensor:
    """Per row, the `quota` members of `mask` with the smallest keys."""
    if mask.shape[1] == 0:
        return mask
    k = torch.where(mask, keys, torch.full_like(keys, 2.0))      # non-members sort last
    order = k.argsort(dim=1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(mask.shape[1], device=mask.device).expand_as(order))
    return mask & (rank < quota.unsqueeze(1))


# ---------------------------------------------------------------------------
# SiamFC / RASNet


def logistic_labels(boxes: torch.Tensor, size: int, stride: float = 8, radius: float = 16.0,
                    search_size: int = 255, negative: Optional[torch.Tensor] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """(labels B x 1 x S x S in {0, 1}, weights B x 1 x S x S summing to 1 per pair).

    Positive: cell within `radius` search px (Euclidean) of the box centre.
    Weights: 0.5 / #pos on positives and 0.5 / #neg on negatives (SiamFC's
    balancing); a pair with no positive (negative pair) spreads 1 over its negatives.
    """
    boxes = _as_boxes(boxes)
    b, device = boxes.shape[0], boxes.device
    p = map_points(size, stride, search_size, device=device)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    dx = p.view(1, 1, size) - cx.view(b, 1, 1)
    dy = p.view(1, size, 1) - cy.view(b, 1, 1)
    labels = ((dx * dx + dy * dy) <= radius * radius).float()
    labels[_negatives(negative, b, device)] = 0.0
    labels = labels.unsqueeze(1)
    npos = labels.sum((1, 2, 3), keepdim=True)
    nneg = (1 - labels).sum((1, 2, 3), keepdim=True)
    w_pos = torch.where(npos > 0, 0.5 / npos.clamp(min=1), torch.zeros_like(npos))
    w_neg = torch.where(npos > 0, 0.5, 1.0) / nneg.clamp(min=1)
    weights = labels * w_pos + (1 - labels) * w_neg
    return labels, weights


# ---------------------------------------------------------------------------
# Anchors (SiamRPN / Ta-ASiam)


def anchor_shapes(stride: float = 8, ratios: Sequence[float] = (0.33, 0.5, 1, 2, 3),
                  scales: Sequence[float] = (8,)) -> torch.Tensor:
    """K x 2 (w, h) of the anchors, ordered ratio-major then scale: the tracker's
    anchors, so training targets and inference decode the same boxes."""
    return torch.tensor(generate_anchor_shapes(stride, ratios, scales), dtype=torch.float32)


def generate_anchors(size: int, stride: float = 8, ratios: Sequence[float] = (0.33, 0.5, 1, 2, 3),
                     scales: Sequence[float] = (8,), search_size: int = 255, device=None) -> torch.Tensor:
    """K x S x S x 4 anchors (cx, cy, w, h) in search-crop px."""
    shapes = anchor_shapes(stride, ratios, scales).to(device)
    k = shapes.shape[0]
    p = map_points(size, stride, search_size, device=device)
    cy, cx = torch.meshgrid(p, p, indexing="ij")
    anchors = torch.empty(k, size, size, 4, device=device)
    anchors[..., 0] = cx
    anchors[..., 1] = cy
    anchors[..., 2] = shapes[:, 0].view(k, 1, 1)
    anchors[..., 3] = shapes[:, 1].view(k, 1, 1)
    return anchors


def box_iou_xyxy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of xyxy boxes (broadcasting over leading dims)."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area_b = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    union = area_a + area_b - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def rpn_targets(boxes: torch.Tensor, anchors: torch.Tensor, negative: Optional[torch.Tensor] = None,
                pos_iou: float = 0.6, neg_iou: float = 0.3, num_pos: int = 16,
                num_neg: Optional[int] = None, num_total: int = 64, neg_pair_num: int = 16,
                neg_pair_radius: int = 3, generator: Optional[torch.Generator] = None
                ) -> Dict[str, torch.Tensor]:
    """Anchor labels and regression targets for a batch.

    boxes: B x 4 xyxy; anchors: K x S x S x 4 (cx, cy, w, h).
    Returns labels B x K x S x S (1 / 0 / -1, subsampled), deltas B x 4 x K x S x S,
    delta_weight B x K x S x S (1 / #positives on positives, 0 elsewhere) and iou.
    Negative pairs: no positive; `neg_pair_num` negatives drawn from the
    (2 * neg_pair_radius + 1)^2 centre cells (pysot: the distractor sits there).
    """
    boxes = _as_boxes(boxes).to(anchors.device)
    b = boxes.shape[0]
    k, s = anchors.shape[0], anchors.shape[1]
    a = anchors.unsqueeze(0)                                     # 1 K S S 4
    a_xyxy = torch.cat([a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2], dim=-1)
    g = boxes.view(b, 1, 1, 1, 4)
    iou = box_iou_xyxy(a_xyxy, g)                                # B K S S
    labels = torch.full_like(iou, IGNORE)
    labels[iou < neg_iou] = NEGATIVE
    labels[iou > pos_iou] = POSITIVE
    neg_pair = _negatives(negative, b, anchors.device)
    if neg_pair.any():
        centre = torch.zeros(s, s, dtype=torch.bool, device=anchors.device)
        lo, hi = max(s // 2 - neg_pair_radius, 0), min(s // 2 + neg_pair_radius + 1, s)
        centre[lo:hi, lo:hi] = True
        neg_labels = torch.where(centre.expand(k, s, s), float(NEGATIVE), float(IGNORE))
        labels[neg_pair] = neg_labels
    if (~neg_pair).any():
        labels[~neg_pair] = subsample(labels[~neg_pair], num_pos, num_neg, num_total, generator)
    if neg_pair.any():
        labels[neg_pair] = subsample(labels[neg_pair], 0, neg_pair_num, None, generator)

    gw = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6).view(b, 1, 1, 1)
    gh = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-6).view(b, 1, 1, 1)
    gx = ((boxes[:, 0] + boxes[:, 2]) / 2).view(b, 1, 1, 1)
    gy = ((boxes[:, 1] + boxes[:, 3]) / 2).view(b, 1, 1, 1)
    ax, ay, aw, ah = anchors.unbind(-1)
    deltas = torch.stack([(gx - ax) / aw, (gy - ay) / ah, torch.log(gw / aw), torch.log(gh / ah)], dim=1)
    pos = (labels == POSITIVE).float()
    npos = pos.sum((1, 2, 3), keepdim=True)
    delta_weight = pos / npos.clamp(min=1)
    return {"labels": labels, "deltas": deltas, "delta_weight": delta_weight, "iou": iou}


# ---------------------------------------------------------------------------
# Anchor-free (SiamCAN, SiamBAN, SiamAF-MSA)

POINT_LABEL_MODES = ("siamcan", "ban", "box")


def point_targets(boxes: torch.Tensor, size: int, stride: float = 8, mode: str = "siamcan",
                  search_size: int = 255, negative: Optional[torch.Tensor] = None,
                  num_pos: Optional[int] = None, num_neg: Optional[int] = None,
                  num_total: Optional[int] = None, neg_pair_num: Optional[int] = 16,
                  generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
    """labels B x S x S (1 / 0 / -1), ltrb B x 4 x S x S (search px), points S x S x 2."""
    if mode not in POINT_LABEL_MODES:
        raise ValueError(f"unknown point label mode '{mode}'; one of {POINT_LABEL_MODES}")
    boxes = _as_boxes(boxes)
    b, device = boxes.shape[0], boxes.device
    p = map_points(size, stride, search_size, device=device)
    py, px = torch.meshgrid(p, p, indexing="ij")                   # S x S
    x0, y0, x1, y1 = (boxes[:, i].view(b, 1, 1) for i in range(4))
    w = (x1 - x0).clamp(min=1e-6)
    h = (y1 - y0).clamp(min=1e-6)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    dx, dy = px.unsqueeze(0) - cx, py.unsqueeze(0) - cy

    labels = torch.full((b, size, size), float(IGNORE), device=device)
    if mode == "box":
        inside = (px >= x0) & (px <= x1) & (py >= y0) & (py <= y1)
        labels[~inside] = NEGATIVE
        labels[inside] = POSITIVE
    else:
        outer = (dx / (w / 2)) ** 2 + (dy / (h / 2)) ** 2               # E1 (w/2, h/2)
        labels[outer > 1] = NEGATIVE
        if mode == "siamcan":
            r = (w / 2) * (h / 2) / torch.sqrt((w / 2) ** 2 + (h / 2) ** 2)
            positive = dx * dx + dy * dy < r * r                        # C2
        else:
            positive = (dx / (w / 4)) ** 2 + (dy / (h / 4)) ** 2 < 1     # E2 (w/4, h/4)
        labels[positive] = POSITIVE

    neg_pair = _negatives(negative, b, device)
    if neg_pair.any():
        # The crop holds another object where the box says: its centre region is
        # a hard negative (SiamBAN samples negatives inside the w/4 x h/4 ellipse).
        near = (dx / (w / 4)) ** 2 + (dy / (h / 4)) ** 2 < 1
        neg_lab = torch.where(near, float(NEGATIVE), float(IGNORE))
        labels[neg_pair] = neg_lab[neg_pair]
    if num_pos is not None or num_neg is not None or num_total is not None:
        if (~neg_pair).any():
            labels[~neg_pair] = subsample(labels[~neg_pair], num_pos, num_neg, num_total, generator)
    if neg_pair.any() and neg_pair_num is not None:
        labels[neg_pair] = subsample(labels[neg_pair], 0, neg_pair_num, None, generator)

    ltrb = torch.stack([px - x0, py - y0, x1 - px, y1 - py], dim=1)     # B 4 S S
    return {"labels": labels, "ltrb": ltrb, "points": torch.stack([px, py], dim=-1)}
