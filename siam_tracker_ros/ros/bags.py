"""rosbag2 files with the pure-Python `rosbags` (sqlite3 or MCAP), no ROS install needed.

- `video_frames(path)`: frames of a video file, a gzipped video or a folder of images.
- `write_image_bag(...)`: frames -> sensor_msgs/Image messages in a new bag.
- `read_image_bag(path)`: (topic, log time, raw CDR, deserialised Image) per message.
- `typestore()`: ROS 2 Kilted types plus this project's messages (siam_tracker_msgs).
"""
from __future__ import annotations

import glob
import gzip
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional, Tuple

import cv2
import numpy as np

from .image_conversion import pack_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
STORAGE = ("sqlite3", "mcap")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_TYPE = "sensor_msgs/msg/Image"


def msg_dirs():
    return [d for d in (os.path.join(REPO_ROOT, "msg"),
                        os.path.join(sys.prefix, "share", "siam_tracker_msgs", "msg")) if os.path.isdir(d)]


def typestore():
    """rosbags typestore: ROS 2 Kilted plus siam_tracker_msgs (from msg/*.msg)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    dirs = msg_dirs()
    types = {}
    for path in sorted(glob.glob(os.path.join(dirs[0], "*.msg"))) if dirs else ():
        name = f"siam_tracker_msgs/msg/{os.path.splitext(os.path.basename(path))[0]}"
        with open(path) as f:
            types.update(get_types_from_msg(f.read(), name))
    store.register(types)
    return store


@contextmanager
def _plain_file(path: str):
    """`path`, or a decompressed temporary copy of a .gz file."""
    if not path.endswith(".gz"):
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, os.path.basename(path)[:-3])
        with gzip.open(path, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
        yield out


def video_info(path: str) -> Tuple[int, float]:
    """(frame count, fps or 0) of a video file or image folder."""
    if os.path.isdir(path):
        return len(_image_files(path)), 0.0
    with _plain_file(path) as plain:
        cap = cv2.VideoCapture(plain)
        try:
            return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        finally:
            cap.release()


def _image_files(folder: str):
    return sorted(p for p in glob.glob(os.path.join(folder, "*")) if p.lower().endswith(IMAGE_EXTENSIONS))


def video_frames(path: str, max_frames: Optional[int] = None, start: int = 0) -> Iterator[np.ndarray]:
    """BGR frames of a video file (.gz allowed) or of the images in a folder (sorted by name)."""
    stop = None if max_frames is None else start + max_frames
    if os.path.isdir(path):
        files = _image_files(path)[start:stop]
        if not files:
            raise ValueError(f"{path}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        for f in files:
            image = cv2.imread(f, cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"cannot read image {f}")
            yield image
        return
    if not os.path.isfile(path):
        raise ValueError(f"no such video file or image folder: {path}")
    with _plain_file(path) as plain:
        cap = cv2.VideoCapture(plain)
        if not cap.isOpened():
            raise ValueError(f"OpenCV cannot open {path} as a video")
        try:
            index = 0
            while stop is None or index < stop:
                ok, frame = cap.read()
                if not ok:
                    break
                if index >= start:
                    yield frame
                index += 1
        finally:
            cap.release()


def image_message(store, image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "bgr8"):
    Image = store.types[IMAGE_TYPE]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    if encoding == "rgb8":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif encoding == "mono8":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height, width, step, big, data = pack_image(image, encoding)
    header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                    frame_id=frame_id)
    return Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=big,
                 step=step, data=np.frombuffer(data, dtype=np.uint8))


def _storage_plugin(storage: str):
    from rosbags.rosbag2 import StoragePlugin
    if storage not in STORAGE:
        raise ValueError(f"storage must be one of {STORAGE}, got '{storage}'")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


def new_writer(path: str, storage: str = "sqlite3", overwrite: bool = False):
    """A rosbags Writer for a new bag folder (removed first with overwrite=True)."""
    from rosbags.rosbag2 import Writer
    if os.path.exists(path):
        if not overwrite:
            raise ValueError(f"{path} exists (use --overwrite)")
        shutil.rmtree(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return Writer(path, version=9, storage_plugin=_storage_plugin(storage))


def write_image_bag(path: str, frames: Iterable[np.ndarray], fps: float, topic: str = "/camera/image_raw",
                    frame_id: str = "camera", encoding: str = "bgr8", storage: str = "sqlite3",
                    start_ns: int = 1_700_000_000_000_000_000, overwrite: bool = False) -> int:
    """Frames -> sensor_msgs/Image at `fps` (header stamp = log time = start + i / fps). Returns the count."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    store = typestore()
    count = 0
    with new_writer(path, storage, overwrite) as writer:
        conn = writer.add_connection(topic, IMAGE_TYPE, typestore=store)
        for i, frame in enumerate(frames):
            stamp = start_ns + int(round(i * 1e9 / fps))
            msg = image_message(store, frame, stamp, frame_id, encoding)
            writer.write(conn, stamp, store.serialize_cdr(msg, IMAGE_TYPE))
            count += 1
    if count == 0:
        raise ValueError("no frames to write")
    return count


def read_image_bag(path: str, topic: Optional[str] = None):
    """Yield (topic, log time ns, raw CDR bytes, rosbags Image) for the image messages of a bag."""
    from rosbags.rosbag2 import Reader
    store = typestore()
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.msgtype == IMAGE_TYPE and (topic is None or c.topic == topic)]
        if not conns:
            raise ValueError(f"{path}: no {IMAGE_TYPE} messages" + (f" on {topic}" if topic else ""))
        for conn, timestamp, raw in reader.messages(connections=conns):
            yield conn.topic, timestamp, raw, store.deserialize_cdr(raw, IMAGE_TYPE)
