"""Training pairs: which frames make a (template, search) pair, and the crops.

:class:`PairSampler` draws raw pairs from several datasets:

- a dataset by its weight, then a sequence uniformly, then a visible template
  frame i uniformly;
- a visible search frame j with ``|i - j| <= frame_range`` (the dataset's
  ``frame_range``), drawn with probability proportional to RASNet's temporal
  weighting ``Omega(i, j) = exp(-|i - j| / sigma)``, sigma = 100;
  (RASNet weights every pair's loss by Omega, Eq. 12-13; drawing pairs with
  probability proportional to Omega gives the same expected loss up to a
  constant. The paper sums over all frame pairs: pass a frame_range at least
  the sequence length for that; the default limits it to 100 frames as SiamFC);
- with probability ``neg_prob`` (0.2) a negative pair instead: the search frame
  comes from a different sequence (a different object; from any dataset by
  weight), so the template's target is not the object in the search crop.

Draws are deterministic: sample ``k`` of seed ``s`` (and epoch ``e``) uses
``numpy.random.default_rng([s, e, k])``, independent of worker count and order.

:class:`PairDataset` (a ``torch.utils.data.Dataset``) turns pairs into crops:
template 127 px, search 255 px, context 0.5, with the augmentations of
:mod:`.augment` (``mode="plain"``: SiamRPN++-style search jitter;
``mode="two_stage"``: Ta-ASiam's position-aware ``search`` plus an
appearance-aware ``search_appearance`` of the same frame). Ta-ASiam draws the
two kinds from two separately augmented datasets; taking both from one pair
keeps one template per item, so one forward pass serves both branches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Sequence as Seq, Union

import cv2
import numpy as np

from ..core.geometry import context_size, xywh_to_xyxy
from . import augment as A
from .datasets import Sequence, TrackingDataset


@dataclass
class Pair:
    template_image: np.ndarray
    template_box: np.ndarray      # xywh in template_image px
    search_image: np.ndarray
    search_box: np.ndarray        # xywh in search_image px (the object at the crop centre)
    is_negative: bool
    info: Dict = field(default_factory=dict)

    def __iter__(self):  # (template_image, template_box, search_image, search_box, is_negative)
        return iter((self.template_image, self.template_box, self.search_image, self.search_box,
                     self.is_negative))


def temporal_weights(i: int, candidates: np.ndarray, sigma: float) -> np.ndarray:
    """RASNet's Omega(i, j) = exp(-|i - j| / sigma), normalised over the candidates."""
    w = np.exp(-np.abs(candidates.astype(np.float64) - i) / float(sigma))
    return w / w.sum()


VALIDATION_MARK = os.path.join("shared", "data", "sequences")


def check_not_validation(dataset: TrackingDataset) -> None:
    """Refuse the project's validation sequences (../shared/data/sequences) as
    training data: numbers measured on data a model was trained on say nothing."""
    roots = [getattr(dataset, a, None) for a in ("root", "image_dir")]
    for r in roots:
        if r and VALIDATION_MARK in os.path.realpath(r):
            raise ValueError(f"{r} is the validation data ({VALIDATION_MARK}); do not train on it "
                             "(allow_validation_data=True overrides, for tests only)")


class PairSampler:
    """Draws (template, search) frame pairs from several datasets.

    ``weights``: relative sampling weight per dataset (default: proportional to
    the number of sequences). ``frame_range``: None uses each dataset's own
    ``frame_range`` (100 for videos, 0 for still images); an int or a list
    overrides it.
    """

    def __init__(self, datasets: Seq[TrackingDataset], weights: Optional[Seq[float]] = None,
                 frame_range: Union[None, int, Seq[int]] = None, sigma: float = 100.0,
                 neg_prob: float = 0.2, seed: int = 0, allow_validation_data: bool = False):
        self.datasets = [d for d in datasets]
        if not allow_validation_data:
            for d in self.datasets:
                check_not_validation(d)
        if not self.datasets or not any(len(d) for d in self.datasets):
            raise ValueError("PairSampler needs at least one dataset with a visible target")
        if weights is None:
            weights = [float(len(d)) for d in self.datasets]
        if len(weights) != len(self.datasets):
            raise ValueError(f"{len(self.datasets)} datasets but {len(weights)} weights")
        w = np.array([float(x) if len(d) else 0.0 for x, d in zip(weights, self.datasets)])
        if w.sum() <= 0 or np.any(w < 0):
            raise ValueError(f"dataset weights must be >= 0 with a positive sum, got {list(weights)}")
        self.weights = w / w.sum()
        if frame_range is None:
            self.frame_ranges = [d.frame_range for d in self.datasets]
        elif isinstance(frame_range, (int, np.integer)):
            self.frame_ranges = [int(frame_range)] * len(self.datasets)
        else:
            self.frame_ranges = [int(f) for f in frame_range]
        self.sigma = float(sigma)
        self.neg_prob = float(neg_prob)
        self.seed = int(seed)
        self.epoch = 0
        self._visible = [[s.visible_indices for s in d.sequences] for d in self.datasets]

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _pick_sequence(self, rng: np.random.Generator, exclude=None):
        for _ in range(100):
            di = int(rng.choice(len(self.datasets), p=self.weights))
            si = int(rng.integers(len(self.datasets[di])))
            if exclude is None or (di, si) != exclude:
                return di, si
        raise RuntimeError("cannot pick a sequence different from the template's (one sequence only?)")

    def sample_indices(self, index: int):
        """The frames of pair ``index``: dict(template=(dataset, seq, frame), search=..., negative)."""
        rng = self.rng(index)
        di, si = self._pick_sequence(rng)
        vis = self._visible[di][si]
        i = int(vis[rng.integers(len(vis))])
        total_seqs = sum(len(d) for d in self.datasets)
        negative = total_seqs > 1 and rng.random() < self.neg_prob
        if negative:
            dj, sj = self._pick_sequence(rng, exclude=(di, si))
            vis_j = self._visible[dj][sj]
            j = int(vis_j[rng.integers(len(vis_j))])
        else:
            dj, sj = di, si
            rng_f = self.frame_ranges[di]
            cand = vis[np.abs(vis - i) <= rng_f]
            j = int(rng.choice(cand, p=temporal_weights(i, cand, self.sigma)))
        return {"template": (di, si, i), "search": (dj, sj, j), "negative": bool(negative),
                "rng": rng}

    def sequence(self, di: int, si: int) -> Sequence:
        return self.datasets[di].sequences[si]

    def sample(self, index: int) -> Pair:
        """Pair ``index`` as full frames and their boxes (no cropping)."""
        idx = self.sample_indices(index)
        (di, si, i), (dj, sj, j) = idx["template"], idx["search"]
        st, ss = self.sequence(di, si), self.sequence(dj, sj)
        t_img = st.image(i)
        s_img = t_img if (di, si, i) == (dj, sj, j) else ss.image(j)
        info = {"template": (st.dataset, st.name, i), "search": (ss.dataset, ss.name, j), "rng": idx["rng"]}
        return Pair(t_img, st.boxes[i].copy(), s_img, ss.boxes[j].copy(), idx["negative"], info)


def _to_tensor(img: np.ndarray):
    import torch
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker init: one OpenCV thread per worker (keeps workers CPU-cheap)."""
    cv2.setNumThreads(1)


try:  # torch is a core dependency, but keep the readers usable without it
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover
    _TorchDataset = object


class PairDataset(_TorchDataset):
    """Cropped, augmented training pairs as tensors.

    Each item is a dict:

    - ``template``: float tensor 3 x 127 x 127, BGR, values 0..255;
    - ``search``: float tensor 3 x 255 x 255 (``two_stage``: the position-aware sample);
    - ``search_box``: float tensor (4,) x0, y0, x1, y1 in search-crop px of the
      object the search crop is centred on (for a negative pair that object is
      NOT the template's target: targets must be all-negative);
    - ``template_box``: float tensor (4,) xyxy in template px;
    - ``negative``: bool;
    - ``two_stage`` only: ``search_appearance`` (3 x 255 x 255, appearance-aware
      sample of the same search frame) and ``search_appearance_box`` (xyxy).

    ``length`` items per epoch; call :meth:`set_epoch` to draw new pairs.
    """

    def __init__(self, datasets: Seq[TrackingDataset], weights: Optional[Seq[float]] = None,
                 mode: str = "plain", template_size: int = 127, search_size: int = 255,
                 length: int = 10000, seed: int = 0, context: float = 0.5,
                 neg_prob: float = 0.2, frame_range: Union[None, int, Seq[int]] = None,
                 sigma: float = 100.0, gray_prob: float = 0.0,
                 template_cfg: Optional[A.CropConfig] = None,
                 search_cfg: Optional[A.CropConfig] = None,
                 appearance_cfg: Optional[A.CropConfig] = None,
                 allow_validation_data: bool = False):
        if mode not in ("plain", "two_stage"):
            raise ValueError(f"mode must be 'plain' or 'two_stage', got {mode!r}")
        self.mode = mode
        self.sampler = PairSampler(datasets, weights, frame_range, sigma, neg_prob, seed,
                                   allow_validation_data)
        self.template_size = int(template_size)
        self.search_size = int(search_size)
        self.length = int(length)
        self.context = float(context)
        scale = self.search_size / 255.0  # shifts are given for a 255 px search crop
        self.template_cfg = template_cfg or replace(A.TEMPLATE, out_size=self.template_size,
                                                    gray_prob=gray_prob)
        if search_cfg is None:
            base = A.POSITION_AWARE if mode == "two_stage" else A.PLAIN_SEARCH
            search_cfg = replace(base, out_size=self.search_size, max_shift=base.max_shift * scale,
                                 gray_prob=gray_prob)
        self.search_cfg = search_cfg
        self.appearance_cfg = appearance_cfg or replace(
            A.APPEARANCE_AWARE, out_size=self.search_size,
            max_shift=A.APPEARANCE_AWARE.max_shift * scale, gray_prob=gray_prob)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def crops(self, index: int) -> Dict[str, np.ndarray]:
        """Item ``index`` as numpy crops (HxWx3 uint8) and xywh boxes - for viewing."""
        pair = self.sampler.sample(index)
        rng = pair.info["rng"]
        tb, sb = pair.template_box, pair.search_box
        sz = context_size(tb[2], tb[3], self.context)
        t_img, t_box = A.make_crop(pair.template_image, tb, self.template_cfg, rng,
                                   region_size=sz,
                                   exemplar_size=self.template_size, context=self.context)
        # search region: the SiamFC rule around the search frame's object
        sx = context_size(sb[2], sb[3], self.context) * self.search_size / self.template_size
        s_img, s_box = A.make_crop(pair.search_image, sb, self.search_cfg, rng, region_size=sx)
        out = {"template": t_img, "template_box": t_box, "search": s_img, "search_box": s_box,
               "negative": pair.is_negative, "info": {k: v for k, v in pair.info.items() if k != "rng"}}
        if self.mode == "two_stage":
            a_img, a_box = A.make_crop(pair.search_image, sb, self.appearance_cfg, rng, region_size=sx)
            out["search_appearance"] = a_img
            out["search_appearance_box"] = a_box
        return out

    def __getitem__(self, index: int):
        import torch
        c = self.crops(index)
        item = {
            "template": _to_tensor(c["template"]),
            "search": _to_tensor(c["search"]),
            "search_box": torch.as_tensor(xywh_to_xyxy(c["search_box"]), dtype=torch.float32),
            "template_box": torch.as_tensor(xywh_to_xyxy(c["template_box"]), dtype=torch.float32),
            "negative": bool(c["negative"]),
        }
        if self.mode == "two_stage":
            item["search_appearance"] = _to_tensor(c["search_appearance"])
            item["search_appearance_box"] = torch.as_tensor(xywh_to_xyxy(c["search_appearance_box"]),
                                                            dtype=torch.float32)
        return item
