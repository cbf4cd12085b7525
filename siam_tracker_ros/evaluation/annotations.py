"""The one annotation parser of the project: training (train/datasets.py) and
evaluation (evaluation/datasets.py) read box files through these functions.

A box file holds one line per frame. What a line may be:

==========================  ===============================================  ======================
line                        from                                             result (x, y, w, h)
==========================  ===============================================  ======================
``x,y,w,h``                 OTB, UAV123, GOT-10k, LaSOT, the shared layouts  as written
``x y w h`` / ``x\\ty\\tw\\th``  OTB (some sequences use spaces or tabs)        as written
``x1,y1,x2,y2,...`` (2k>=6)  VOT polygon (VOT2013-2019, 8 numbers)            axis-aligned min/max
                                                                             rectangle (the VOT
                                                                             toolkit's conversion)
``m<x0>,<y0>,<w>,<h>,...``  VOT2020+ RLE mask                                 the mask's bounding box
``NaN,NaN,NaN,NaN``, ``nan``  UAV123 / LaSOT target out of view               NaN row
a single number (``0``)     VOT special codes (no target)                    NaN row
==========================  ===============================================  ======================

Blank lines are skipped. Any other line is an error naming the file and the line
number (a silently misread box would train or score against a wrong target).
No origin shift happens here: a reader that knows its layout counts pixels from
1 converts at its own edge.
"""
from __future__ import annotations

import re
from typing import Sequence as Seq

import numpy as np

_SPLIT = re.compile(r"[,\s;]+")


def polygon_to_box(values: Seq[float]) -> np.ndarray:
    """Axis-aligned (x, y, w, h) bounding rectangle of a polygon x1,y1,x2,y2,...

    This is how the VOT toolkits turn a rotated ground-truth polygon into the
    rectangle an axis-aligned tracker is initialised with (min/max of the corners).
    """
    v = np.asarray(values, dtype=np.float64)
    xs, ys = v[0::2], v[1::2]
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        return np.full(4, np.nan)
    return np.array([xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()])


def vot_mask_to_box(text: str) -> np.ndarray:
    """Bounding box of a VOT2020 RLE mask line ``m<x0>,<y0>,<w>,<h>,<runs...>``.

    Runs alternate background / foreground pixel counts over the w x h patch in
    row-major order, starting with background.
    """
    values = [int(v) for v in _SPLIT.split(text.strip()[1:]) if v]
    x0, y0, w, h = values[:4]
    runs = values[4:]
    mask = np.zeros(w * h, dtype=bool)
    pos = 0
    for k, run in enumerate(runs):
        if k % 2 == 1:
            mask[pos:pos + run] = True
        pos += run
    mask = mask.reshape(h, w)
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.full(4, np.nan)
    return np.array([x0 + xs.min(), y0 + ys.min(), xs.max() - xs.min() + 1.0, ys.max() - ys.min() + 1.0])


def parse_box_line(line: str) -> np.ndarray:
    """One annotation line -> (x, y, w, h) float64; NaN for absent-target lines."""
    text = line.strip()
    if text.startswith("m"):
        return vot_mask_to_box(text)
    try:
        values = [float(v) for v in _SPLIT.split(text) if v]
    except ValueError:
        raise ValueError(f"cannot parse annotation line {line!r}") from None
    if len(values) == 4:
        return np.array(values, dtype=np.float64)
    if len(values) == 1:       # VOT special codes (0 = no target) / a lone 'nan'
        return np.full(4, np.nan)
    if len(values) >= 6 and len(values) % 2 == 0:
        return polygon_to_box(values)
    raise ValueError(f"cannot parse annotation line {line!r}: {len(values)} values")


def read_boxes(path: str) -> np.ndarray:
    """Annotation file -> (N, 4) float64 array, one row per non-blank line."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(parse_box_line(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    if not rows:
        return np.zeros((0, 4))
    return np.stack(rows)


def read_flags(path: str) -> np.ndarray:
    """A label file of integers (one per line, or comma-separated on one line)."""
    with open(path, encoding="utf-8") as f:
        values = [v for v in _SPLIT.split(f.read().strip()) if v]
    return np.array([int(float(v)) for v in values], dtype=np.int64)


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """True where a box is finite with positive width and height."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.all(np.isfinite(b), axis=-1) & (b[..., 2] > 0) & (b[..., 3] > 0)
