"""rosbag2 files with the pure-Python `rosbags` (sqlite3 or MCAP), no ROS install needed.

- `video_frames(path)`: frames of a video file, a gzipped video or a folder of images.
- `write_image_bag(...)`: frames -> sensor_msgs/Image messages in a new bag.
- `read_image_bag(path)`: (topic, log time, raw CDR, deserialised Image) per message.
- `typestore()`: ROS 2 Kilted types plus this project's messages (siam_tracker_ros).
- `find_sequence(path)`: a video, an image folder or a labelled sequence folder
  (``NAME/img/*.jpg`` + ``groundtruth.txt`` / ``groundtruth_rect.txt``: the shared
  and OTB layouts; ``NAME/*.jpg`` + ``groundtruth.txt`` [+ ``absence.label`` /
  ``cover.label``]: GOT-10k and VOT) -> frames source and ground truth.
- Ground truth in a bag: siam_tracker_ros/TrackedObject on `/groundtruth`, one per
  frame that has an annotation row, header = that image's header (same stamp and
  frame_id), state TRACKING with the box as the annotation file gives it (no pixel
  origin shift: the evaluation toolkits apply none; OTB files count from 1), or
  state LOST and a zero box where the row is invalid (NaN, zero size) or the
  dataset flags the target absent. score 1 (0 when absent), image size filled.
- Init in a bag: siam_tracker_ros/TargetInit on `/siam_tracker/init` (the node's
  `~/init`), header = the first frame's header, logged at that frame's log time
  right after it, so a replay into the node is self-contained.
- `read_track_bag(path)`: image stamps, ground truth, init and results of a bag.
- `score(...)`: the benchmark metrics (evaluation.metrics) of results vs ground truth.
"""
from __future__ import annotations

import glob
import gzip
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..core.package_files import share_dirs
from ..core.tracking.base import TrackState
from .image_conversion import pack_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
STORAGE = ("sqlite3", "mcap")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_TYPE)
COMPRESSIONS = ("jpeg", "png")
TRACKED_OBJECT_TYPE = "siam_tracker_ros/msg/TrackedObject"
TRACKED_OBJECT_ARRAY_TYPE = "siam_tracker_ros/msg/TrackedObjectArray"
TARGET_INIT_TYPE = "siam_tracker_ros/msg/TargetInit"
GROUNDTRUTH_TOPIC = "/groundtruth"
INIT_TOPIC = "/siam_tracker/init"
RESULTS_TOPIC = "/siam_tracker/tracked_object"
DEFAULT_START_NS = 1_700_000_000_000_000_000
# rosbag2 metadata version of the bags written here. 8, not rosbags' latest 9: version 9
# stores each topic's offered_qos_profiles as a YAML list, while Humble's rosbag2 reads that
# field as a string for every version >= 4 (rosbag2_storage yaml.hpp) and fails on a list;
# version 8 stores the string (QoS policies as integers, which Humble's QoS decoder reads) and
# every reader since Humble parses it (newer ones choose the form by the version number).
# rosbags writes nothing older than 8.
METADATA_VERSION = 8


def msg_dirs():
    """msg/ of the package's data folders (the checkout, else share/siam_tracker_ros/msg)."""
    return [d for d in (os.path.join(share, "msg") for share in share_dirs()) if os.path.isdir(d)]


def typestore():
    """rosbags typestore: ROS 2 Kilted plus siam_tracker_ros (from msg/*.msg)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    dirs = msg_dirs()
    types = {}
    for path in sorted(glob.glob(os.path.join(dirs[0], "*.msg"))) if dirs else ():
        name = f"siam_tracker_ros/msg/{os.path.splitext(os.path.basename(path))[0]}"
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


def compressed_message(store, image: np.ndarray, stamp_ns: int, frame_id: str, compression: str = "jpeg",
                       jpeg_quality: int = 90):
    """BGR image -> sensor_msgs/CompressedImage as image_transport's `compressed` plugin
    writes it (format 'bgr8; jpeg compressed bgr8')."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got '{compression}'")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if compression == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if compression == "jpeg" else ".png", image, params)
    if not ok:
        raise ValueError(f"OpenCV cannot encode a {image.shape} image as {compression}")
    Compressed = store.types[COMPRESSED_TYPE]
    return Compressed(header=_header(store, stamp_ns, frame_id), format=f"bgr8; {compression} compressed bgr8",
                      data=np.asarray(data, dtype=np.uint8).reshape(-1))


def decode_image(msg) -> np.ndarray:
    """BGR pixels of a (rosbags or rclpy) sensor_msgs/Image or CompressedImage."""
    from .compressed_image import compressed_msg_to_bgr
    from .image_conversion import image_msg_to_bgr
    return compressed_msg_to_bgr(msg) if hasattr(msg, "format") else image_msg_to_bgr(msg)


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
    return Writer(path, version=METADATA_VERSION, storage_plugin=_storage_plugin(storage))


def _header(store, stamp_ns: int, frame_id: str):
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                  frame_id=frame_id)


def valid_box(box) -> bool:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    return b.size == 4 and bool(np.all(np.isfinite(b))) and b[2] > 0 and b[3] > 0


def tracked_object_message(store, header, target_id: int, state: int, box, score: float,
                           image_width: int, image_height: int, latency: float = 0.0, clip: bool = True):
    """A rosbags TrackedObject filled as the node fills it (ros/outputs.py tracked_object_fields),
    its float fields as the float32 the message holds."""
    from .outputs import tracked_object_fields
    fields = tracked_object_fields(target_id, state, box, score, image_width, image_height, latency, clip)
    fields = {k: float(np.float32(v)) if isinstance(v, float) else v for k, v in fields.items()}
    return store.types[TRACKED_OBJECT_TYPE](header=header, **fields)


def target_init_message(store, header, target_id: int, box):
    TargetInit = store.types[TARGET_INIT_TYPE]
    x, y, w, h = (float(np.float32(v)) for v in box)
    return TargetInit(header=header, target_id=int(target_id), x=x, y=y, width=w, height=h)


def write_image_bag(path: str, frames: Iterable[np.ndarray], fps: float, topic: str = "/camera/image_raw",
                    frame_id: str = "camera", encoding: str = "bgr8", storage: str = "sqlite3",
                    start_ns: int = DEFAULT_START_NS, overwrite: bool = False,
                    groundtruth: Optional[np.ndarray] = None, absent: Optional[np.ndarray] = None,
                    groundtruth_topic: str = GROUNDTRUTH_TOPIC, init_box: Optional[Sequence[float]] = None,
                    init_topic: str = INIT_TOPIC, target_id: int = 1, compression: Optional[str] = None,
                    jpeg_quality: int = 90) -> int:
    """Frames -> sensor_msgs/Image at `fps` (header stamp = log time = start + i / fps). Returns the count.
    `compression` jpeg or png: sensor_msgs/CompressedImage instead (on `topic` as given).

    `groundtruth` (N x 4, x y w h, NaN rows allowed) and `absent` (N flags): a TrackedObject on
    `groundtruth_topic` for each frame with a row (see the module docstring). `init_box`: a
    TargetInit for the first frame on `init_topic`."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if init_box is not None and not valid_box(init_box):
        raise ValueError(f"init box must be finite with a positive size, got {list(init_box)}")
    gt = None if groundtruth is None else np.asarray(groundtruth, dtype=np.float64).reshape(-1, 4)
    flags = None if absent is None else np.asarray(absent, dtype=bool).reshape(-1)
    store = typestore()
    count = 0
    with new_writer(path, storage, overwrite) as writer:
        image_type = COMPRESSED_TYPE if compression else IMAGE_TYPE
        conn = writer.add_connection(topic, image_type, typestore=store)
        gt_conn = (writer.add_connection(groundtruth_topic, TRACKED_OBJECT_TYPE, typestore=store)
                   if gt is not None and len(gt) else None)
        init_conn = writer.add_connection(init_topic, TARGET_INIT_TYPE, typestore=store) \
            if init_box is not None else None
        for i, frame in enumerate(frames):
            stamp = start_ns + int(round(i * 1e9 / fps))
            if compression:
                msg = compressed_message(store, frame, stamp, frame_id, compression, jpeg_quality)
            else:
                msg = image_message(store, frame, stamp, frame_id, encoding)
            writer.write(conn, stamp, store.serialize_cdr(msg, image_type))
            if i == 0 and init_conn is not None:
                init = target_init_message(store, msg.header, target_id, init_box)
                writer.write(init_conn, stamp, store.serialize_cdr(init, TARGET_INIT_TYPE))
            if gt_conn is not None and i < len(gt):
                is_absent = (flags is not None and i < len(flags) and bool(flags[i])) or not valid_box(gt[i])
                obj = tracked_object_message(
                    store, msg.header, target_id, TrackState.LOST if is_absent else TrackState.TRACKING,
                    None if is_absent else gt[i], 0.0 if is_absent else 1.0,
                    frame.shape[1], frame.shape[0], clip=False)
                writer.write(gt_conn, stamp, store.serialize_cdr(obj, TRACKED_OBJECT_TYPE))
            count += 1
    if count == 0:
        raise ValueError("no frames to write")
    return count


def read_image_bag(path: str, topic: Optional[str] = None, compressed: bool = False):
    """Yield (topic, log time ns, raw CDR bytes, rosbags Image) for the image messages of a bag
    (with `compressed`, CompressedImage messages too: `decode_image` reads either)."""
    from rosbags.rosbag2 import Reader
    store = typestore()
    types = IMAGE_TYPES if compressed else (IMAGE_TYPE,)
    with Reader(path) as reader:
        conns = [c for c in reader.connections if c.msgtype in types and (topic is None or c.topic == topic)]
        if not conns:
            raise ValueError(f"{path}: no {' or '.join(types)} messages" + (f" on {topic}" if topic else ""))
        for conn, timestamp, raw in reader.messages(connections=conns):
            yield conn.topic, timestamp, raw, store.deserialize_cdr(raw, conn.msgtype)


def read_bag_messages(path: str, topics: Optional[Sequence[str]] = None):
    """Yield (connection, log time ns, raw CDR) of a bag in log-time order; at equal log times
    images come first (an init logged at its frame's time follows that frame)."""
    from rosbags.rosbag2 import Reader
    with Reader(path) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        group: List[tuple] = []
        for conn, timestamp, raw in reader.messages(connections=conns):
            if group and group[0][1] != timestamp:
                yield from sorted(group, key=lambda m: m[0].msgtype not in IMAGE_TYPES)
                group = []
            group.append((conn, timestamp, raw))
        yield from sorted(group, key=lambda m: m[0].msgtype not in IMAGE_TYPES)


def bag_topics(path: str) -> Dict[str, str]:
    """{topic: message type} of a bag."""
    from rosbags.rosbag2 import Reader
    with Reader(path) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def image_topic_of(path: str, topic: Optional[str] = None) -> str:
    """`topic`, checked, or the bag's only image topic (sensor_msgs/Image or CompressedImage)."""
    topics = bag_topics(path)
    images = sorted(t for t, m in topics.items() if m in IMAGE_TYPES)
    if topic:
        if topics.get(topic) not in IMAGE_TYPES:
            raise ValueError(f"{path}: no image topic {topic} (image topics: {images or 'none'})")
        return topic
    if len(images) != 1:
        raise ValueError(f"{path}: {len(images)} image topics ({', '.join(images) or 'none'}): pick one with "
                         "--image-topic")
    return images[0]


# --------------------------------------------------------------------------- sequences
@dataclass
class SequenceSource:
    """Where the frames and the ground truth of an input are."""
    frames: str                          # video file or image folder
    groundtruth: Optional[str] = None    # annotation file (x,y,w,h / polygon rows)
    absent: Optional[np.ndarray] = None  # per-frame absent flags (GOT-10k labels)
    layout: str = "video"                # video | images | sequence


def find_sequence(path: str) -> SequenceSource:
    """A video file, an image folder, or a labelled sequence folder: ``img/`` (or VOT's
    ``color/``) holding the images, else the folder itself; ``groundtruth.txt`` or
    ``groundtruth_rect.txt`` beside them; GOT-10k ``absence.label`` (1 = absent) and
    ``cover.label`` (0 = fully covered) give absent frames."""
    if os.path.isfile(path):
        return SequenceSource(path)
    if not os.path.isdir(path):
        raise ValueError(f"no such video file or image folder: {path}")
    frames = path
    for sub in ("img", "color"):
        folder = os.path.join(path, sub)
        if os.path.isdir(folder) and _image_files(folder):
            frames = folder
            break
    gt = next((os.path.join(path, n) for n in ("groundtruth.txt", "groundtruth_rect.txt")
               if os.path.isfile(os.path.join(path, n))), None)
    absent = None
    if gt is not None:
        from ..evaluation.datasets import read_flags
        flags = []
        if os.path.isfile(os.path.join(path, "absence.label")):
            flags.append(read_flags(os.path.join(path, "absence.label")) == 1)
        if os.path.isfile(os.path.join(path, "cover.label")):
            flags.append(read_flags(os.path.join(path, "cover.label")) == 0)
        if flags:
            n = min(len(f) for f in flags)
            absent = np.logical_or.reduce([f[:n] for f in flags])
    return SequenceSource(frames, gt, absent, "sequence" if gt else "images")


def read_groundtruth(path: str) -> np.ndarray:
    """An annotation file -> (N, 4) x, y, w, h (the evaluation readers' parser: commas, spaces
    or tabs; VOT polygons -> their bounding rectangle; NaN rows for 'no target')."""
    from ..evaluation.datasets import read_boxes
    boxes = read_boxes(path)
    if len(boxes) == 0:
        raise ValueError(f"{path}: no annotation rows")
    return boxes


# --------------------------------------------------------------------------- reading for eval
@dataclass
class ObjectRecord:
    state: int
    box: np.ndarray          # x, y, w, h (zeros unless TRACKING)
    score: float
    latency: float = 0.0


@dataclass
class TrackBag:
    """What a bag holds for tracking and scoring (all keyed by header stamp, ns)."""
    image_topic: Optional[str] = None
    stamps: List[int] = field(default_factory=list)                    # images, bag order
    sizes: Dict[int, Tuple[int, int]] = field(default_factory=dict)    # stamp -> (w, h), raw images
    groundtruth: Dict[int, np.ndarray] = field(default_factory=dict)   # NaN box where absent
    inits: List[Tuple[int, np.ndarray, int]] = field(default_factory=list)   # (stamp, box, id)
    results: Dict[int, Dict[int, ObjectRecord]] = field(default_factory=dict)  # id -> stamp -> last

    def init_for(self, target_id: Optional[int] = None):
        """(stamp, box, id) of the first init of `target_id` (any id when None)."""
        for init in self.inits:
            if target_id is None or init[2] == target_id:
                return init
        return None


def stamp_of(header) -> int:
    """Header stamp in ns."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _record(msg) -> ObjectRecord:
    return ObjectRecord(int(msg.state), np.array([msg.x, msg.y, msg.width, msg.height], dtype=np.float64),
                        float(msg.score), float(msg.latency))


def read_track_bag(path: str, image_topic: Optional[str] = None, groundtruth_topic: str = GROUNDTRUTH_TOPIC,
                   init_topic: Optional[str] = None, results_topic: Optional[str] = RESULTS_TOPIC,
                   target_id: Optional[int] = None) -> TrackBag:
    """Image stamps and sizes, ground truth, inits (any TargetInit topic unless `init_topic`)
    and results (TrackedObject or TrackedObjectArray on `results_topic`; the last message per
    target and stamp wins) of a bag. Ground truth of `target_id` only when given."""
    store = typestore()
    topics = bag_topics(path)
    if image_topic is None:
        images = [t for t, m in topics.items() if m in IMAGE_TYPES]
        if len(images) > 1:
            raise ValueError(f"{path}: several image topics ({', '.join(sorted(images))}): pick one")
        image_topic = images[0] if images else None
    wanted = {t for t in (image_topic, groundtruth_topic, results_topic) if t and t in topics}
    wanted |= {t for t, m in topics.items() if m == TARGET_INIT_TYPE and (init_topic is None or t == init_topic)}
    out = TrackBag(image_topic=image_topic)
    for conn, _, raw in read_bag_messages(path, sorted(wanted)):
        msg = store.deserialize_cdr(raw, conn.msgtype)
        if conn.topic == image_topic:
            stamp = stamp_of(msg.header)
            out.stamps.append(stamp)
            if conn.msgtype == IMAGE_TYPE:    # (a compressed image's size needs decoding)
                out.sizes[stamp] = (int(msg.width), int(msg.height))
        elif conn.msgtype == TARGET_INIT_TYPE:
            out.inits.append((stamp_of(msg.header), np.array([msg.x, msg.y, msg.width, msg.height],
                                                            dtype=np.float64), int(msg.target_id)))
        elif conn.topic == groundtruth_topic and conn.msgtype == TRACKED_OBJECT_TYPE:
            if target_id is not None and msg.target_id != target_id:
                continue
            box = np.array([msg.x, msg.y, msg.width, msg.height], dtype=np.float64)
            out.groundtruth[stamp_of(msg.header)] = box if msg.state == TrackState.TRACKING else np.full(4, np.nan)
        elif conn.topic == results_topic:
            objects = msg.objects if conn.msgtype == TRACKED_OBJECT_ARRAY_TYPE else [msg]
            for obj in objects:
                out.results.setdefault(int(obj.target_id), {})[stamp_of(obj.header)] = _record(obj)
    return out


def score(groundtruth: Dict[int, np.ndarray], results: Dict[int, ObjectRecord],
          init: Optional[Tuple[int, np.ndarray, int]] = None, order: Optional[Sequence[int]] = None) -> Dict:
    """OPE metrics (evaluation.metrics.sequence_metrics, absent frames excluded) of one
    target's results against the ground truth, over the frames with a ground-truth message
    from the init frame on (all when no init), in `order` (else by stamp).

    As the benchmark toolkits record it, the init frame's prediction is the init box. On the
    other frames the box a consumer gets: TRACKING -> the box; LOST or IDLE -> the zero box the
    node publishes (a failure); no result for the frame (dropped) -> a failure, counted."""
    from ..evaluation import metrics
    stamps = [s for s in (order if order is not None else sorted(groundtruth)) if s in groundtruth]
    if init is not None:
        stamps = [s for s in stamps if s >= init[0]]
    if not stamps:
        raise ValueError("no ground-truth frames to score" + (" at or after the init" if init else ""))
    pred = np.zeros((len(stamps), 4))
    counts = {"frames": len(stamps), "missing": 0, "lost": 0, "idle": 0, "tracking": 0}
    for i, s in enumerate(stamps):
        if init is not None and s == init[0]:
            pred[i] = init[1]
            continue
        r = results.get(s)
        if r is None:
            counts["missing"] += 1
        elif r.state == TrackState.TRACKING:
            pred[i] = r.box
            counts["tracking"] += 1
        else:
            counts["lost" if r.state == TrackState.LOST else "idle"] += 1
    gt = np.stack([groundtruth[s] for s in stamps])
    absent = ~metrics.valid_gt_mask(gt)
    m = metrics.sequence_metrics(pred, gt, absent)
    out = {k: float(m[k]) for k in ("auc", "precision20", "norm_precision20", "success50", "ao", "sr50", "sr75")}
    out.update(counts)
    out["absent_frames"] = int(absent.sum())
    out["success_curve"] = [float(v) for v in m["success_curve"]]
    out["precision_curve"] = [float(v) for v in m["precision_curve"]]
    out["boxes"] = pred.tolist()
    out["stamps"] = list(stamps)
    return out
