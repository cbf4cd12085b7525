"""Readers for labelled tracking sequences (lazy: images are read on demand).

Every reader returns a list of :class:`Sequence`: frame paths, ground truth as
float (x, y, w, h) in the file's own pixel convention (OTB and UAV123 count from
1; no shift is applied, as the toolkits apply none), NaN rows where a frame has
no box, and a per-frame `absent` flag from the dataset's own labels.

Layouts (the folder given is the dataset root):

shared   ``NAME/img/*.jpg`` + ``NAME/groundtruth.txt`` (``x,y,w,h`` per line) —
         the project's validation sequences (../shared/data/sequences).
otb      ``NAME/img/*.jpg`` + ``NAME/groundtruth_rect.txt`` (comma, whitespace or
         tab separated); ``groundtruth_rect.1.txt`` / ``.2.txt`` give NAME-1 / NAME-2
         (Jogging, Skating2); empty annotation files are skipped; David starts at
         frame 300 and Football1, Freeman3, Freeman4, Diving have more images than
         boxes (the benchmark's own frame ranges).
uav123   ``anno/<SUBSET>/NAME.txt`` + ``data_seq/<SUBSET>/FOLDER/%06d.jpg`` (SUBSET:
         UAV123, UAV123_10fps, UAV20L); NaN rows = target out of view. A split
         sequence (bird1_1 ...) needs its frame range: read from the official
         ``configSeqs.m`` anywhere under the root, else the sequence is skipped
         with a warning; unsplit sequences use frames 1..N.
got10k   ``[SPLIT/]NAME/%08d.jpg`` + ``groundtruth.txt``, ``absence.label``
         (1 = absent) and ``cover.label`` (0 = fully occluded, 1-8 visible ratio),
         optional ``list.txt``; absent = absence == 1 or cover == 0. Test-split
         sequences (one box) are listed with NaN for the unknown frames.
lasot    ``[CATEGORY/]NAME/img/*.jpg`` + ``groundtruth.txt``, ``full_occlusion.txt``
         and ``out_of_view.txt`` (one comma-separated 0/1 line); absent = either;
         ``testing_set.txt`` at the root restricts to the test split when asked.
vot      ``NAME/[color/]*.jpg`` + ``groundtruth.txt`` with 4 values (rectangle),
         8 values (polygon -> axis-aligned min/max rectangle, the VOT toolkit's
         conversion) or ``m``-encoded masks (VOT2020+, -> the mask's bounding box);
         ``list.txt`` gives the order.
"""
from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence as Seq, Tuple

import cv2
import numpy as np

from ..core.package_files import shared_dirs
# The one annotation parser, shared with training; re-exported for existing callers.
from .annotations import parse_box_line, polygon_to_box, read_boxes, read_flags, vot_mask_to_box  # noqa: F401

LOG = logging.getLogger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
FORMATS = ("shared", "otb", "uav123", "got10k", "lasot", "vot")


@dataclass
class Sequence:
    """One labelled sequence; frames are loaded only when asked for."""
    name: str
    frame_paths: List[str]
    gt: np.ndarray                      # (N, 4) float, NaN rows where no box
    absent: np.ndarray                  # (N,) bool, the dataset's absent flags
    dataset: str = "shared"
    meta: Dict[str, object] = field(default_factory=dict)
    _size: Optional[Tuple[int, int]] = field(default=None, repr=False)

    def __post_init__(self):
        self.gt = np.asarray(self.gt, dtype=np.float64).reshape(-1, 4)
        self.absent = np.asarray(self.absent, dtype=bool).reshape(-1)
        if len(self.frame_paths) != len(self.gt):
            raise ValueError(f"{self.name}: {len(self.frame_paths)} frames but {len(self.gt)} boxes")
        if len(self.absent) != len(self.gt):
            raise ValueError(f"{self.name}: {len(self.absent)} absent flags for {len(self.gt)} boxes")

    def __len__(self) -> int:
        return len(self.frame_paths)

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` as HxWx3 uint8 BGR."""
        path = self.frame_paths[index]
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise IOError(f"{self.name}: cannot read frame {index}: {path}")
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
        return image

    def frames(self, start: int = 0, stop: Optional[int] = None) -> Iterator[np.ndarray]:
        for i in range(start, len(self) if stop is None else min(stop, len(self))):
            yield self.frame(i)

    @property
    def image_size(self) -> Tuple[int, int]:
        """(width, height) of the first frame (read once)."""
        if self._size is None:
            self.frame(0)
        return self._size

    @property
    def init_box(self) -> np.ndarray:
        return self.gt[0].copy()

    def subset(self, stop: int) -> "Sequence":
        """The first `stop` frames (for quick runs)."""
        return Sequence(self.name, self.frame_paths[:stop], self.gt[:stop], self.absent[:stop],
                        self.dataset, dict(self.meta), self._size)


def list_images(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        return []
    files = [os.path.join(folder, f) for f in os.listdir(folder)
             if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(files)


def _no_absent(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _subdirs(root: str) -> List[str]:
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))


def _read_list(path: str) -> Optional[List[str]]:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip()]


# --------------------------------------------------------------------------- readers
def load_shared(root: str) -> List[Sequence]:
    out = []
    for name in _subdirs(root):
        seq_dir = os.path.join(root, name)
        gt_path = os.path.join(seq_dir, "groundtruth.txt")
        if not os.path.isfile(gt_path):
            continue
        gt = read_boxes(gt_path)
        frames = list_images(os.path.join(seq_dir, "img"))
        out.append(Sequence(name, frames, gt, _no_absent(len(gt)), "shared"))
    return out


_OTB_FRAMES = {"david": (300, 770), "football1": (1, 74), "freeman3": (1, 460),
               "freeman4": (1, 283), "diving": (1, 215)}


def load_otb(root: str) -> List[Sequence]:
    out = []
    for name in _subdirs(root):
        seq_dir = os.path.join(root, name)
        anno_files = sorted(glob.glob(os.path.join(seq_dir, "groundtruth_rect*.txt")))
        anno_files = [p for p in anno_files if os.path.getsize(p) > 0 and open(p).read().strip()]
        if not anno_files:
            continue
        frames = list_images(os.path.join(seq_dir, "img"))
        if name.lower() in _OTB_FRAMES:
            start, end = _OTB_FRAMES[name.lower()]
            frames = frames[start - 1:end]
        for k, anno in enumerate(anno_files):
            gt = read_boxes(anno)
            seq_frames = frames
            if len(seq_frames) > len(gt):
                LOG.warning("%s: %d images, %d boxes: using the first %d images",
                            name, len(frames), len(gt), len(gt))
                seq_frames = frames[:len(gt)]
            seq_name = name if len(anno_files) == 1 else f"{name}-{k + 1}"
            out.append(Sequence(seq_name, seq_frames, gt, _no_absent(len(gt)), "otb"))
    return out


_UAV_CONFIG = re.compile(
    r"struct\(\s*'name'\s*,\s*'([^']+)'\s*,\s*'path'\s*,\s*'([^']*)'\s*,\s*"
    r"'startFrame'\s*,\s*(\d+)\s*,\s*'endFrame'\s*,\s*(\d+)")


def parse_uav_config(path: str) -> Dict[str, Tuple[str, int, int]]:
    """Official UAV123 configSeqs.m -> {name: (folder, start_frame, end_frame)} (1-based, inclusive)."""
    with open(path, errors="replace") as f:
        text = f.read()
    out = {}
    for name, seq_path, start, end in _UAV_CONFIG.findall(text):
        folder = [p for p in re.split(r"[\\/]", seq_path) if p][-1] if seq_path.strip("\\/") else name
        out[name] = (folder, int(start), int(end))
    return out


def load_uav123(root: str, subset: Optional[str] = None) -> List[Sequence]:
    anno_root = os.path.join(root, "anno")
    subsets = [subset] if subset else [d for d in _subdirs(anno_root)]
    if not subsets:
        subsets = [""]
    config_files = sorted(glob.glob(os.path.join(root, "**", "configSeqs*.m"), recursive=True))
    out = []
    for sub in subsets:
        # a config whose path names the subset wins (UAV123 and UAV123_10fps differ in frame ranges)
        chosen = [c for c in config_files if sub and sub.lower() in c.lower()
                  and not (sub.lower() == "uav123" and "10fps" in c.lower())] or config_files
        configs: Dict[str, Tuple[str, int, int]] = {}
        for cfg in chosen:
            configs.update(parse_uav_config(cfg))
        data_root = os.path.join(root, "data_seq", sub)
        for anno in sorted(glob.glob(os.path.join(anno_root, sub, "*.txt"))):
            name = os.path.splitext(os.path.basename(anno))[0]
            gt = read_boxes(anno)
            if name in configs:
                folder, start, end = configs[name]
                folder_path = os.path.join(data_root, folder)
                images = list_images(folder_path)
                frames = images[start - 1:end]
            elif os.path.isdir(os.path.join(data_root, name)):
                frames = list_images(os.path.join(data_root, name))[:len(gt)]
            else:
                LOG.warning("UAV123 %s: image folder unknown (split sequence and no configSeqs.m "
                            "under %s): skipped", name, root)
                continue
            if len(frames) != len(gt):
                LOG.warning("UAV123 %s: %d images for %d boxes: skipped", name, len(frames), len(gt))
                continue
            out.append(Sequence(name, frames, gt, _no_absent(len(gt)), "uav123",
                                meta={"subset": sub}))
    return out


def load_got10k(root: str, split: Optional[str] = None) -> List[Sequence]:
    """GOT-10k: `root` is the dataset root (with train/val/test) or one split folder."""
    if split is None:
        split_root = root
        if not _is_got10k_split(root):
            for cand in ("val", "test", "train"):
                if _is_got10k_split(os.path.join(root, cand)):
                    split_root = os.path.join(root, cand)
                    break
    else:
        split_root = os.path.join(root, split)
    names = _read_list(os.path.join(split_root, "list.txt")) or _subdirs(split_root)
    out = []
    for name in names:
        seq_dir = os.path.join(split_root, name)
        gt_path = os.path.join(seq_dir, "groundtruth.txt")
        if not os.path.isfile(gt_path):
            continue
        frames = list_images(seq_dir)
        gt = read_boxes(gt_path)
        if len(gt) == 1 and len(frames) > 1:        # test split: first box only
            gt = np.vstack([gt, np.full((len(frames) - 1, 4), np.nan)])
        absent = _no_absent(len(gt))
        meta: Dict[str, object] = {}
        absence_path = os.path.join(seq_dir, "absence.label")
        cover_path = os.path.join(seq_dir, "cover.label")
        if os.path.isfile(absence_path):
            absence = read_flags(absence_path)[:len(gt)]
            absent[:len(absence)] |= absence == 1
        if os.path.isfile(cover_path):
            cover = read_flags(cover_path)[:len(gt)]
            absent[:len(cover)] |= cover == 0
            meta["cover"] = cover.tolist()
        out.append(Sequence(name, frames[:len(gt)], gt, absent, "got10k", meta=meta))
    return out


def _is_got10k_split(folder: str) -> bool:
    if not os.path.isdir(folder):
        return False
    for name in _subdirs(folder)[:5]:
        d = os.path.join(folder, name)
        if os.path.isfile(os.path.join(d, "groundtruth.txt")) and (
                os.path.isfile(os.path.join(d, "absence.label")) or os.path.isfile(os.path.join(d, "cover.label"))):
            return True
    return False


def load_lasot(root: str, test_only: bool = False) -> List[Sequence]:
    seq_dirs = sorted(os.path.dirname(p) for p in
                      glob.glob(os.path.join(root, "*", "full_occlusion.txt"))
                      + glob.glob(os.path.join(root, "*", "*", "full_occlusion.txt")))
    wanted = None
    if test_only:
        wanted = set(_read_list(os.path.join(root, "testing_set.txt")) or [])
        if not wanted:
            raise ValueError(f"{root}: testing_set.txt missing or empty; cannot select the LaSOT test split")
    out = []
    for seq_dir in seq_dirs:
        name = os.path.basename(seq_dir)
        if wanted is not None and name not in wanted:
            continue
        gt = read_boxes(os.path.join(seq_dir, "groundtruth.txt"))
        frames = list_images(os.path.join(seq_dir, "img"))
        absent = _no_absent(len(gt))
        for label in ("full_occlusion", "out_of_view"):
            path = os.path.join(seq_dir, f"{label}.txt")
            if os.path.isfile(path):
                flags = read_flags(path)[:len(gt)]
                absent[:len(flags)] |= flags == 1
        out.append(Sequence(name, frames[:len(gt)], gt, absent, "lasot"))
    return out


def load_vot(root: str) -> List[Sequence]:
    names = _read_list(os.path.join(root, "list.txt")) or _subdirs(root)
    out = []
    for name in names:
        seq_dir = os.path.join(root, name)
        gt_path = os.path.join(seq_dir, "groundtruth.txt")
        if not os.path.isfile(gt_path):
            continue
        frames = list_images(os.path.join(seq_dir, "color")) or list_images(seq_dir)
        gt = read_boxes(gt_path)
        out.append(Sequence(name, frames[:len(gt)], gt, _no_absent(len(gt)), "vot"))
    return out


LOADERS: Dict[str, Callable[[str], List[Sequence]]] = {
    "shared": load_shared, "otb": load_otb, "uav123": load_uav123,
    "got10k": load_got10k, "lasot": load_lasot, "vot": load_vot,
}


def detect_format(root: str) -> str:
    """Guess the layout of a dataset root (see the module docstring)."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"dataset root not found: {root}")
    if os.path.isdir(os.path.join(root, "anno")) and os.path.isdir(os.path.join(root, "data_seq")):
        return "uav123"
    if glob.glob(os.path.join(root, "*", "full_occlusion.txt")) or \
            glob.glob(os.path.join(root, "*", "*", "full_occlusion.txt")):
        return "lasot"
    if _is_got10k_split(root) or any(_is_got10k_split(os.path.join(root, s)) for s in ("val", "test", "train")):
        return "got10k"
    subdirs = [os.path.join(root, d) for d in _subdirs(root)]
    if any(glob.glob(os.path.join(d, "groundtruth_rect*.txt")) for d in subdirs):
        return "otb"
    if any(os.path.isfile(os.path.join(d, "groundtruth.txt")) and os.path.isdir(os.path.join(d, "img"))
           for d in subdirs):
        return "shared"
    if any(os.path.isfile(os.path.join(d, "groundtruth.txt")) for d in subdirs):
        return "vot"
    raise ValueError(f"cannot tell the dataset layout of {root}; pass the format explicitly "
                     f"(one of {', '.join(FORMATS)})")


def open_dataset(root: str, fmt: str = "auto", names: Optional[Seq[str]] = None,
                 max_frames: Optional[int] = None) -> List[Sequence]:
    """Sequences of a dataset root, optionally only `names` and the first `max_frames`."""
    fmt = detect_format(root) if fmt in (None, "", "auto") else fmt.lower()
    if fmt not in LOADERS:
        raise ValueError(f"unknown dataset format {fmt!r}; known: {', '.join(FORMATS)}")
    seqs = LOADERS[fmt](root)
    if names:
        by_name = {s.name: s for s in seqs}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"sequences not found in {root}: {', '.join(missing)}; "
                             f"available: {', '.join(sorted(by_name))}")
        seqs = [by_name[n] for n in names]
    if max_frames:
        seqs = [s.subset(max_frames) for s in seqs]
    return seqs


def default_sequences_root() -> Optional[str]:
    """The shared validation sequences: $SIAM_TRACKER_SEQUENCES, else data/sequences of the
    shared folder (core.package_files.shared_dirs: $SIAM_SHARED_DIR, else ../shared beside the
    checkout or the working directory); None when absent."""
    env = os.environ.get("SIAM_TRACKER_SEQUENCES")
    if env:
        return env if os.path.isdir(env) else None
    for shared in shared_dirs():
        cand = os.path.join(shared, "data", "sequences")
        if os.path.isdir(cand):
            return cand
    return None
