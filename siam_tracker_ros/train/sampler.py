"""Training pairs: which frames make a (template, search) pair, and the crops.

:class:`PairSampler` draws raw pairs from several datasets (the mixing sampler):

- a dataset (a *source*: real crops, pseudo-labelled clips, synthetic
  sequences, ...) by its weight, then a sequence uniformly, then a visible
  template frame i uniformly;
- a visible search frame j within the frame range (``|i - j| * frame_step <=
  frame_range``, gaps counted in 30-fps frames, see ``Sequence.frame_step``),
  drawn according to ``temporal``:

  ``"sample"`` (default)  with probability proportional to RASNet's
                          ``Omega(i, j) = exp(-|i - j| / sigma)`` (sigma 100):
                          close frames more often, every pair's loss weighted 1;
  ``"loss"``              uniformly among the frames j != i, and the pair carries
                          its gap so that the loss weights it by Omega (RASNet
                          Eq. 12-13 as written: sum over i != j of Omega * L);
                          sequences with one visible frame are not drawn;
  ``"uniform"``           uniformly (SiamFC / SiamRPN++ style).

- with probability ``neg_prob`` (0.2) a negative pair instead: the search frame
  comes from a different sequence (a different object; from any dataset by
  weight), so the template's target is not the object in the search crop. A
  negative pair's ``frame_gap`` is 0 (Omega 1: no temporal relation to weigh).

Every pair says where it came from: ``frame_gap`` (|i - j| in 30-fps frames)
and ``source`` (the index of its template's dataset).

Draws are deterministic: sample ``k`` of seed ``s`` (and epoch ``e``) uses
``numpy.random.default_rng([s, e, k])``, independent of worker count and order.

Training never reads the validation sequences (../shared/data/sequences, or
$SIAM_TRACKER_SEQUENCES): the sampler refuses a dataset under them, with no
override (:func:`check_not_validation`).

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
from typing import Dict, List, Optional, Sequence as Seq, Union

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
TEMPORAL_MODES = ("sample", "loss", "uniform")


def validation_roots() -> List[str]:
    """Folders that hold validation data: the shared sequences beside this
    checkout and $SIAM_TRACKER_SEQUENCES (both resolved; those that exist)."""
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    roots = [os.path.join(os.path.dirname(repo), "shared", "data", "sequences")]
    if os.environ.get("SIAM_TRACKER_SEQUENCES"):
        roots.append(os.environ["SIAM_TRACKER_SEQUENCES"])
    return [os.path.realpath(r) for r in roots if os.path.isdir(r)]


def is_validation_path(path: str) -> bool:
    """True for a path inside (or above) the validation sequences."""
    real = os.path.realpath(path)
    if VALIDATION_MARK in real:
        return True
    for root in validation_roots():
        if real == root or real.startswith(root + os.sep) or root.startswith(real + os.sep):
            return True
    return False


def check_not_validation(dataset: TrackingDataset) -> None:
    """Refuse the project's validation sequences (../shared/data/sequences) as
    training data: numbers measured on data a model was trained on say nothing."""
    roots = [getattr(dataset, a, None) for a in ("root", "image_dir")]
    for r in roots:
        if r and is_validation_path(r):
            raise ValueError(f"refusing to train on {r}: it is (or holds) the validation sequences "
                             f"({VALIDATION_MARK}), which only siam-eval and validation may read. "
                             "Train on ../shared/data/train/crops or another labelled set.")


class PairSampler:
    """Draws (template, search) frame pairs from several datasets.

    ``weights``: relative sampling weight per dataset (default: proportional to
    the number of sequences). ``frame_range``: None uses each dataset's own
    ``frame_range`` (100 for videos, 0 for still images); an int or a list
    overrides it.
    """

    def __init__(self, datasets: Seq[TrackingDataset], weights: Optional[Seq[float]] = None,
                 frame_range: Union[None, int, Seq[int]] = None, sigma: float = 100.0,
                 neg_prob: float = 0.2, seed: int = 0, temporal: str = "sample"):
        self.datasets = [d for d in datasets]
        for d in self.datasets:
            check_not_validation(d)
        if temporal not in TEMPORAL_MODES:
            raise ValueError(f"temporal must be one of {TEMPORAL_MODES}, got {temporal!r}")
        self.temporal = temporal
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
        # "loss": a pair needs two different visible frames
        min_visible = 2 if temporal == "loss" else 1
        self._eligible = [np.array([k for k, v in enumerate(vis) if len(v) >= min_visible], dtype=np.int64)
                          for vis in self._visible]
        for k, e in enumerate(self._eligible):
            if not len(e):
                self.weights[k] = 0.0
        if self.weights.sum() <= 0:
            raise ValueError("no sequence has two visible frames (temporal='loss' needs pairs i != j)")
        self.weights = self.weights / self.weights.sum()

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _pick_sequence(self, rng: np.random.Generator, exclude=None):
        for _ in range(100):
            di = int(rng.choice(len(self.datasets), p=self.weights))
            eligible = self._eligible[di]
            si = int(eligible[rng.integers(len(eligible))])
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
            gap = 0.0
        else:
            dj, sj = di, si
            step = self.sequence(di, si).frame_step
            cand = vis[np.abs(vis - i) * step <= self.frame_ranges[di]]
            if self.temporal == "loss":
                cand = cand[cand != i]
                if not len(cand):       # nothing else within range: the nearest other frame
                    others = vis[vis != i]
                    cand = others[np.argsort(np.abs(others - i), kind="stable")[:1]]
                j = int(cand[rng.integers(len(cand))])
            elif self.temporal == "uniform":
                j = int(cand[rng.integers(len(cand))])
            else:
                j = int(rng.choice(cand, p=temporal_weights(i, cand, self.sigma / step)))
            gap = abs(j - i) * step
        return {"template": (di, si, i), "search": (dj, sj, j), "negative": bool(negative),
                "frame_gap": float(gap), "source": di, "rng": rng}

    def sequence(self, di: int, si: int) -> Sequence:
        return self.datasets[di].sequences[si]

    def sample(self, index: int) -> Pair:
        """Pair ``index`` as full frames and their boxes (no cropping)."""
        idx = self.sample_indices(index)
        (di, si, i), (dj, sj, j) = idx["template"], idx["search"]
        st, ss = self.sequence(di, si), self.sequence(dj, sj)
        t_img = st.image(i)
        s_img = t_img if (di, si, i) == (dj, sj, j) else ss.image(j)
        info = {"template": (st.dataset, st.name, i), "search": (ss.dataset, ss.name, j), "rng": idx["rng"],
                "frame_gap": idx["frame_gap"], "source": idx["source"]}
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
    - ``frame_gap``: float, |i - j| of the pair in 30-fps frames (0 for a negative);
    - ``source``: int, the index of the template's dataset (the mix's source);
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
                 temporal: str = "sample"):
        if mode not in ("plain", "two_stage"):
            raise ValueError(f"mode must be 'plain' or 'two_stage', got {mode!r}")
        self.mode = mode
        self.sampler = PairSampler(datasets, weights, frame_range, sigma, neg_prob, seed, temporal)
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
            "frame_gap": float(c["info"]["frame_gap"]),
            "source": int(c["info"]["source"]),
        }
        if self.mode == "two_stage":
            item["search_appearance"] = _to_tensor(c["search_appearance"])
            item["search_appearance_box"] = torch.as_tensor(xywh_to_xyxy(c["search_appearance_box"]),
                                                            dtype=torch.float32)
        return item
