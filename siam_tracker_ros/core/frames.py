"""Frame sources: an image folder (sorted names) or a video file, read lazily."""
from __future__ import annotations

import glob
import os
from typing import Iterator, List

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str) -> List[str]:
    files = [f for f in sorted(glob.glob(os.path.join(folder, "*")))
             if f.lower().endswith(IMAGE_EXTENSIONS)]
    return files


class FrameSource:
    """Iterates BGR uint8 frames from an image folder (or a sequence folder with img/) or a video."""

    def __init__(self, path: str):
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such image folder or video: {path}")
        self.path = path
        self.files: List[str] = []
        self.video = None
        if os.path.isdir(path):
            folder = os.path.join(path, "img") if os.path.isdir(os.path.join(path, "img")) else path
            self.files = list_images(folder)
            if not self.files:
                raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            self.length = len(self.files)
        else:
            cap = cv2.VideoCapture(path)
            if not cap.isOpened():
                raise ValueError(f"cannot open video {path}")
            self.length = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
            self.fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            cap.release()

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.files:
            for f in self.files:
                image = cv2.imread(f, cv2.IMREAD_COLOR)
                if image is None:
                    raise ValueError(f"cannot read image {f}")
                yield image
            return
        cap = cv2.VideoCapture(self.path)
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                yield image
        finally:
            cap.release()


def draw_box(image: np.ndarray, box, color=(0, 255, 0), label: str = "") -> np.ndarray:
    """Draw an xywh box (and a label above it) on `image` in place."""
    x, y, w, h = [int(round(v)) for v in box]
    cv2.rectangle(image, (x, y), (x + w, y + h), color, 2)
    if label:
        cv2.putText(image, label, (x, max(12, y - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1,
                    cv2.LINE_AA)
    return image
