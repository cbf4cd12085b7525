"""Readers for the dataset layouts trackers are trained on.

Every reader is a :class:`TrackingDataset`: a named list of :class:`Sequence`
objects with one common interface:

- ``seq.frames``: the frame paths (listed lazily, on first use);
- ``seq.boxes``: float64 array (N, 4) of (x, y, w, h), 0-based pixel coordinates
  (pixel i covers [i, i + 1)), converted at this edge from each layout's own
  convention;
- ``seq.visible``: bool array (N,), False where the layout marks the target
  absent / fully occluded / out of view, or the box is not a valid box;
- ``seq.image(i)``: the frame as HxWx3 uint8 BGR (read on demand).

Layouts:

=================  ======================================================  ==============
reader             layout                                                  box origin
=================  ======================================================  ==============
``GOT10k``         root/list.txt, root/SEQ/{00000001.jpg, groundtruth.txt,  0-based
                   absence.label}
``LaSOT``          root/CATEGORY/CATEGORY-N/{img/00000001.jpg,              1-based
                   groundtruth.txt, full_occlusion.txt, out_of_view.txt}
``COCO``           images folder + instances_*.json (one sequence of one    0-based
                   frame per object)
``ImageNetVID``    root/Annotations/VID/SPLIT/.../SNIPPET/NNNNNN.xml and    corners
                   root/Data/VID/SPLIT/.../SNIPPET/NNNNNN.JPEG (one
                   sequence per track id)
``OTB``            root/NAME/{img/*.jpg, groundtruth_rect.txt or            1-based unless
                   groundtruth.txt}                                         dataset.json says 0
``TargetCrops``    root/NAME/{img/00000001.jpg, groundtruth.txt}: one       0-based
                   target-centred crop per frame (../shared/data/train/
                   crops); frame steps from the README beside root
=================  ======================================================  ==============

Box files are read by the parser evaluation uses too
(:mod:`siam_tracker_ros.evaluation.annotations`), so a VOT polygon, a tab-separated
OTB line or a NaN row means the same in training and in scoring.

The training sets written by :func:`siam_tracker_ros.train.synthetic.prepare_data`
use the OTB layout with a ``dataset.json`` that records ``"box_origin": 0``.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import xml.etree.ElementTree as ET
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence as Seq, Union

import cv2
import numpy as np

from ..evaluation.annotations import read_boxes, read_flags, valid_boxes

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DATASET_META = "dataset.json"


def _list_images(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS))


class Sequence:
    """One labelled target in one video (or one still image).

    ``frames`` may be a list of paths or a callable returning it (listed on first
    use, so building a dataset index of thousands of sequences stays fast).

    ``frame_step``: how many frames of a 30 fps video one index step stands for
    (1 for every frame of a 25-30 fps video; more where a layout thinned the
    frames). Frame gaps (RASNet's |i - j|, the pair sampler's frame range) are
    counted in these units, so sources thinned differently compare.
    """

    def __init__(self, name: str, frames: Union[List[str], Callable[[], List[str]]],
                 boxes, visible=None, dataset: str = "", meta: Optional[dict] = None,
                 frame_step: float = 1.0):
        self.name = name
        self.frame_step = float(frame_step)
        self._frames = frames
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ok = valid_boxes(self.boxes)
        if visible is None:
            visible = ok
        self.visible = np.asarray(visible, dtype=bool).reshape(-1) & ok
        if self.visible.shape[0] != self.boxes.shape[0]:
            raise ValueError(f"{name}: {self.boxes.shape[0]} boxes but {self.visible.shape[0]} visibility flags")
        self.dataset = dataset
        self.meta = meta or {}

    @property
    def frames(self) -> List[str]:
        if callable(self._frames):
            self._frames = list(self._frames())
        return self._frames

    def __len__(self) -> int:
        return self.boxes.shape[0]

    def image(self, index: int) -> np.ndarray:
        path = self.frames[index]
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise IOError(f"cannot read frame {path}")
        return img

    @property
    def visible_indices(self) -> np.ndarray:
        return np.flatnonzero(self.visible)

    def __repr__(self) -> str:
        return (f"Sequence({self.dataset}/{self.name}, {len(self)} frames, "
                f"{int(self.visible.sum())} visible)")


class TrackingDataset:
    """A named list of sequences; the common interface of every reader."""

    name = "dataset"
    #: the frame distance within which template and search frames are paired
    default_frame_range = 100

    def __init__(self, sequences: Iterable[Sequence], name: Optional[str] = None,
                 frame_range: Optional[int] = None):
        if name is not None:
            self.name = name
        self.sequences: List[Sequence] = [s for s in sequences if s.visible.any()]
        self.frame_range = self.default_frame_range if frame_range is None else int(frame_range)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> Sequence:
        return self.sequences[i]

    def __iter__(self) -> Iterator[Sequence]:
        return iter(self.sequences)

    @property
    def num_frames(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} sequences, {self.num_frames} frames)"


# ----------------------------------------------------------------------------- GOT-10k
class GOT10k(TrackingDataset):
    """GOT-10k train/val: ``root/list.txt`` names the sequence folders; each has
    ``00000001.jpg...``, ``groundtruth.txt`` (x,y,w,h, 0-based) and ``absence.label``
    (1 = target absent). ``root`` may also be the folder above ``train/``."""

    name = "got10k"

    def __init__(self, root: str, split: str = "train", sequences: Optional[Seq[str]] = None,
                 frame_range: Optional[int] = None):
        if not os.path.isfile(os.path.join(root, "list.txt")) and os.path.isdir(os.path.join(root, split)):
            root = os.path.join(root, split)
        self.root = root
        list_file = os.path.join(root, "list.txt")
        if sequences is None:
            if os.path.isfile(list_file):
                with open(list_file, encoding="utf-8") as f:
                    sequences = [l.strip() for l in f if l.strip()]
            else:
                sequences = sorted(d for d in os.listdir(root)
                                   if os.path.isfile(os.path.join(root, d, "groundtruth.txt")))
        seqs = []
        for name in sequences:
            folder = os.path.join(root, name)
            gt = os.path.join(folder, "groundtruth.txt")
            if not os.path.isfile(gt):
                log.warning("GOT-10k: %s has no groundtruth.txt; skipped", folder)
                continue
            boxes = read_boxes(gt)
            visible = np.ones(len(boxes), dtype=bool)
            absence = os.path.join(folder, "absence.label")
            if os.path.isfile(absence):
                flags = read_flags(absence)[:len(boxes)]
                visible[:len(flags)] = flags == 0
            n = len(boxes)
            seqs.append(Sequence(name, _numbered_frames(folder, n, 8, ".jpg"), boxes, visible,
                                 dataset=self.name))
        super().__init__(seqs, frame_range=frame_range)


def _numbered_frames(folder: str, n: int, digits: int, ext: str, start: int = 1) -> Callable[[], List[str]]:
    """Frame paths named by number (00000001.jpg); falls back to listing the folder."""
    def make() -> List[str]:
        paths = [os.path.join(folder, f"{i:0{digits}d}{ext}") for i in range(start, start + n)]
        if n and os.path.isfile(paths[0]) and os.path.isfile(paths[-1]):
            return paths
        listed = _list_images(folder)
        if len(listed) < n:
            raise FileNotFoundError(f"{folder}: {n} boxes but {len(listed)} images")
        return listed[:n]
    return make


# ----------------------------------------------------------------------------- LaSOT
class LaSOT(TrackingDataset):
    """LaSOT: ``root/CATEGORY/CATEGORY-N/`` with ``img/00000001.jpg...``,
    ``groundtruth.txt`` (x,y,w,h, 1-based), ``full_occlusion.txt`` and
    ``out_of_view.txt`` (comma-separated 0/1 per frame). ``sequences`` restricts
    to names such as ``airplane-1`` (e.g. the official training list)."""

    name = "lasot"

    def __init__(self, root: str, sequences: Optional[Seq[str]] = None,
                 frame_range: Optional[int] = None):
        self.root = root
        if sequences is None:
            names = []
            for cat in sorted(os.listdir(root)):
                cdir = os.path.join(root, cat)
                if not os.path.isdir(cdir):
                    continue
                for s in sorted(os.listdir(cdir)):
                    if os.path.isfile(os.path.join(cdir, s, "groundtruth.txt")):
                        names.append(s)
        else:
            names = list(sequences)
        seqs = []
        for name in names:
            cat = name.rsplit("-", 1)[0]
            folder = os.path.join(root, cat, name)
            gt = os.path.join(folder, "groundtruth.txt")
            if not os.path.isfile(gt):
                log.warning("LaSOT: %s has no groundtruth.txt; skipped", folder)
                continue
            boxes = read_boxes(gt)
            boxes[:, :2] -= 1.0  # 1-based -> 0-based
            visible = np.ones(len(boxes), dtype=bool)
            for flag_file in ("full_occlusion.txt", "out_of_view.txt"):
                p = os.path.join(folder, flag_file)
                if os.path.isfile(p):
                    flags = read_flags(p)[:len(boxes)]
                    visible[:len(flags)] &= flags == 0
            seqs.append(Sequence(name, _numbered_frames(os.path.join(folder, "img"), len(boxes), 8, ".jpg"),
                                 boxes, visible, dataset=self.name, meta={"category": cat}))
        super().__init__(seqs, frame_range=frame_range)


# ----------------------------------------------------------------------------- COCO
class COCO(TrackingDataset):
    """COCO-style still images with boxes: ``instances_*.json`` (images,
    annotations with ``bbox`` = x,y,w,h 0-based) and the image folder. Each
    non-crowd object of at least ``min_size`` px becomes a one-frame sequence;
    its pairs are the same image under different augmentations."""

    name = "coco"
    default_frame_range = 0

    def __init__(self, image_dir: Optional[str] = None, annotation_file: Optional[str] = None,
                 min_size: float = 4.0, include_crowd: bool = False, frame_range: Optional[int] = None,
                 root: Optional[str] = None, split: str = "train2017"):
        # root/{train2017/, annotations/instances_train2017.json} (the COCO download layout)
        if image_dir is None:
            if root is None:
                raise ValueError("COCO needs image_dir and annotation_file, or root (and split)")
            image_dir = os.path.join(root, split)
        if annotation_file is None:
            if root is None:
                raise ValueError("COCO needs annotation_file, or root (and split)")
            annotation_file = os.path.join(root, "annotations", f"instances_{split}.json")
        self.root = root or image_dir
        self.image_dir = image_dir
        with open(annotation_file, encoding="utf-8") as f:
            data = json.load(f)
        images = {im["id"]: im for im in data.get("images", [])}
        cats = {c["id"]: c.get("name", str(c["id"])) for c in data.get("categories", [])}
        seqs = []
        for ann in data.get("annotations", []):
            if ann.get("iscrowd", 0) and not include_crowd:
                continue
            box = np.asarray(ann["bbox"], dtype=np.float64)
            if box.shape != (4,) or min(box[2], box[3]) < min_size:
                continue
            im = images.get(ann["image_id"])
            if im is None:
                continue
            path = os.path.join(image_dir, im["file_name"])
            seqs.append(Sequence(f"{im['id']}_{ann.get('id', len(seqs))}", [path], box[None],
                                 dataset=self.name,
                                 meta={"category": cats.get(ann.get("category_id"), ""),
                                       "image_id": im["id"]}))
        super().__init__(seqs, frame_range=frame_range)


# ----------------------------------------------------------------------------- ImageNet VID
class ImageNetVID(TrackingDataset):
    """ImageNet VID (ILSVRC2015): ``root/Annotations/VID/SPLIT/**/SNIPPET/*.xml``
    per frame, images in ``root/Data/VID/SPLIT/**/SNIPPET/*.JPEG``. One sequence
    per (snippet, trackid); frames where that track has no object are invisible.
    Boxes are corners (xmin, ymin, xmax, ymax) -> x, y, xmax - xmin, ymax - ymin.

    Parsing every XML of the full set takes minutes: pass ``cache_file`` to keep
    the parsed index as JSON (it is reused when present).
    """

    name = "imagenet_vid"

    def __init__(self, root: str, split: str = "train", cache_file: Optional[str] = None,
                 frame_range: Optional[int] = None, min_size: float = 2.0):
        self.root = root
        ann_root = os.path.join(root, "Annotations", "VID", split)
        data_root = os.path.join(root, "Data", "VID", split)
        index = None
        if cache_file and os.path.isfile(cache_file):
            with open(cache_file, encoding="utf-8") as f:
                index = json.load(f)
        if index is None:
            index = self._parse(ann_root, min_size)
            if cache_file:
                with open(cache_file, "w", encoding="utf-8") as f:
                    json.dump(index, f)
        seqs = []
        for snippet, tracks in sorted(index.items()):
            frame_names = tracks["frames"]
            paths = [os.path.join(data_root, snippet, n + ".JPEG") for n in frame_names]
            for tid, boxes in sorted(tracks["tracks"].items(), key=lambda kv: int(kv[0])):
                b = np.asarray([x if x is not None else [np.nan] * 4 for x in boxes], dtype=np.float64)
                seqs.append(Sequence(f"{snippet}#{tid}", paths, b, dataset=self.name,
                                     meta={"trackid": int(tid)}))
        super().__init__(seqs, frame_range=frame_range)

    @staticmethod
    def _parse(ann_root: str, min_size: float) -> Dict[str, dict]:
        index: Dict[str, dict] = {}
        for dirpath, _dirs, files in os.walk(ann_root):
            xmls = sorted(f for f in files if f.endswith(".xml"))
            if not xmls:
                continue
            snippet = os.path.relpath(dirpath, ann_root)
            names = [os.path.splitext(f)[0] for f in xmls]
            tracks: Dict[str, list] = {}
            for fi, xf in enumerate(xmls):
                root = ET.parse(os.path.join(dirpath, xf)).getroot()
                for obj in root.findall("object"):
                    tid = obj.findtext("trackid", default="0").strip()
                    bb = obj.find("bndbox")
                    if bb is None:
                        continue
                    x0, x1 = float(bb.findtext("xmin")), float(bb.findtext("xmax"))
                    y0, y1 = float(bb.findtext("ymin")), float(bb.findtext("ymax"))
                    box = [x0, y0, x1 - x0, y1 - y0]
                    if min(box[2], box[3]) < min_size:
                        continue
                    tracks.setdefault(tid, [None] * len(xmls))[fi] = box
            index[snippet] = {"frames": names, "tracks": tracks}
        return index


# ----------------------------------------------------------------------------- OTB
class OTB(TrackingDataset):
    """OTB-style folders: ``root/NAME/img/*.jpg`` (sorted) with
    ``groundtruth_rect.txt`` (OTB; also ``groundtruth_rect.1.txt``/``.2.txt`` for
    two targets) or ``groundtruth.txt`` (the shared layout). OTB boxes count
    pixels from 1; ``one_based=None`` reads ``root/dataset.json``
    (``{"box_origin": 0}``) and otherwise assumes 1-based. Rows of NaN or
    non-positive size are invisible frames."""

    name = "otb"

    def __init__(self, root: str, sequences: Optional[Seq[str]] = None,
                 one_based: Optional[bool] = None, frame_range: Optional[int] = None,
                 name: Optional[str] = None):
        self.root = root
        meta = {}
        meta_file = os.path.join(root, DATASET_META)
        if os.path.isfile(meta_file):
            with open(meta_file, encoding="utf-8") as f:
                meta = json.load(f)
        if one_based is None:
            one_based = int(meta.get("box_origin", 1)) == 1
        self.one_based = one_based
        if frame_range is None and "frame_range" in meta:
            frame_range = int(meta["frame_range"])
        if name is None:
            name = meta.get("name")
        names = sorted(os.listdir(root)) if sequences is None else list(sequences)
        seqs = []
        for seq_name in names:
            folder = os.path.join(root, seq_name)
            if not os.path.isdir(folder):
                continue
            gt_files = sorted(glob.glob(os.path.join(folder, "groundtruth_rect*.txt")))
            if not gt_files and os.path.isfile(os.path.join(folder, "groundtruth.txt")):
                gt_files = [os.path.join(folder, "groundtruth.txt")]
            if not gt_files:
                continue
            img_dir = os.path.join(folder, "img") if os.path.isdir(os.path.join(folder, "img")) else folder
            absent = None
            if os.path.isfile(os.path.join(folder, "absence.label")):
                absent = read_flags(os.path.join(folder, "absence.label"))
            for gt in gt_files:
                boxes = read_boxes(gt)
                if one_based:
                    boxes[:, :2] -= 1.0
                visible = np.ones(len(boxes), dtype=bool)
                if absent is not None:
                    visible[:min(len(absent), len(boxes))] = absent[:len(boxes)] == 0
                m = re.fullmatch(r"groundtruth_rect\.(\w+)\.txt", os.path.basename(gt))
                sname = f"{seq_name}.{m.group(1)}" if m else seq_name
                seqs.append(Sequence(sname, _listed_frames(img_dir, len(boxes)), boxes, visible,
                                     dataset=name or self.name))
        super().__init__(seqs, name=name, frame_range=frame_range)


def _listed_frames(folder: str, n: int) -> Callable[[], List[str]]:
    def make() -> List[str]:
        files = _list_images(folder)
        if len(files) < n:
            raise FileNotFoundError(f"{folder}: {n} boxes but {len(files)} images")
        if len(files) > n:
            log.debug("%s: %d images, %d boxes; using the first %d", folder, len(files), n, n)
        return files[:n]
    return make


# ----------------------------------------------------------------------------- target-centred crops
#: frame rate of the benchmarks whose sequences are not at 25-30 fps
BENCHMARK_FPS = {"UAV123@10fps": 10.0}
_TABLE_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*[^|]*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*$")


def crop_frame_steps(readme: str) -> Dict[str, float]:
    """Per sequence, the 30-fps frames one crop index stands for, from the crops'
    README table (| sequence | benchmark | frame size | source frames | crops |):
    (source frames / crops) x (30 / the benchmark's fps)."""
    steps: Dict[str, float] = {}
    if not os.path.isfile(readme):
        return steps
    with open(readme, encoding="utf-8") as f:
        for line in f:
            m = _TABLE_ROW.match(line.strip())
            if not m:
                continue
            name, bench, source, crops = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            if crops > 0:
                steps[name] = source / crops * 30.0 / BENCHMARK_FPS.get(bench, 30.0)
    return steps


class TargetCrops(TrackingDataset):
    """Target-centred crops of labelled videos (../shared/data/train/crops):
    ``root/NAME/img/00000001.jpg ...`` and ``root/NAME/groundtruth.txt``, one
    ``x,y,w,h`` line per image, 0-based, in the crop's own pixels.

    Each image is one frame cropped around its target (384x384, side 3 x the
    SiamFC exemplar context, the outside filled with the frame's mean colour), so
    a crop is not a video frame: pairs are made from two crops of a sequence, and
    nobody runs a tracker over them. Frame order and gaps stay meaningful: the
    README beside ``root`` says how many source frames each crop stands for
    (every 2nd frame of 25-30 fps sources, all of UAV123@10fps, at most 500 crops
    per sequence), and :func:`crop_frame_steps` turns that into each sequence's
    ``frame_step`` (in 30-fps frames). Without the README every step counts 1
    (``frame_step=`` overrides for all).
    """

    name = "crops"

    def __init__(self, root: str, sequences: Optional[Seq[str]] = None,
                 frame_range: Optional[int] = None, frame_step: Optional[float] = None,
                 readme: Optional[str] = None, name: Optional[str] = None):
        if not os.path.isdir(root):
            raise FileNotFoundError(f"crops: no folder {root}")
        self.root = root
        if readme is None:
            readme = next((p for p in (os.path.join(root, "README.md"),
                                       os.path.join(os.path.dirname(os.path.abspath(root)), "README.md"))
                           if os.path.isfile(p)), "")
        steps = crop_frame_steps(readme) if readme else {}
        names = sorted(os.listdir(root)) if sequences is None else list(sequences)
        seqs = []
        for seq_name in names:
            folder = os.path.join(root, seq_name)
            gt = os.path.join(folder, "groundtruth.txt")
            if not os.path.isfile(gt):
                continue
            boxes = read_boxes(gt)
            step = float(frame_step) if frame_step is not None else steps.get(seq_name, 1.0)
            seqs.append(Sequence(seq_name, _listed_frames(os.path.join(folder, "img"), len(boxes)), boxes,
                                 dataset=name or self.name, frame_step=step))
        super().__init__(seqs, name=name, frame_range=frame_range)


READERS = {"got10k": GOT10k, "lasot": LaSOT, "coco": COCO, "imagenet_vid": ImageNetVID, "otb": OTB,
           "crops": TargetCrops}


def build_dataset(kind: str, *args, **kwargs) -> TrackingDataset:
    """Build a reader by its name (``got10k``, ``lasot``, ``coco``, ``imagenet_vid``, ``otb``, ``crops``)."""
    try:
        cls = READERS[kind.lower()]
    except KeyError:
        raise ValueError(f"unknown dataset kind {kind!r}; known: {', '.join(sorted(READERS))}") from None
    return cls(*args, **kwargs)
