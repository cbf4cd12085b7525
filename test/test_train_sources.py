"""Issue 12 item 1: the shared annotation parser, the target-crops reader, the
mixing sampler (per-source weights, frame gaps) and the refusal of the
validation sequences as training data."""
import os

import cv2
import numpy as np
import pytest

from siam_tracker_ros.evaluation import annotations as ANN
from siam_tracker_ros.evaluation import datasets as ED
from siam_tracker_ros.train import datasets as D
from siam_tracker_ros.train.sampler import PairDataset, PairSampler

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_CROPS = os.path.join(HERE, "..", "..", "shared", "data", "train", "crops")


def _write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


# ----------------------------------------------------------------------------- the parser
def test_otb_lines_comma_space_tab(tmp_path):
    p = tmp_path / "groundtruth_rect.txt"
    _write(p, "10,20,30,40\n11 21 31 41\n12\t22\t32\t42\n\n13,\t23, 33,43\n")
    np.testing.assert_array_equal(ANN.read_boxes(str(p)),
                                  [[10, 20, 30, 40], [11, 21, 31, 41], [12, 22, 32, 42], [13, 23, 33, 43]])


def test_vot_polygon_becomes_its_axis_aligned_rectangle(tmp_path):
    # a rotated rectangle: corners (5,1) (9,5) (5,9) (1,5) -> min/max box 1..9 x 1..9
    p = tmp_path / "groundtruth.txt"
    _write(p, "5,1,9,5,5,9,1,5\n100.5,50.25,140.5,50.25,140.5,80.25,100.5,80.25\n")
    boxes = ANN.read_boxes(str(p))
    np.testing.assert_allclose(boxes[0], [1, 1, 8, 8])
    np.testing.assert_allclose(boxes[1], [100.5, 50.25, 40, 30])
    # training reads the same file the same way (it once took the first 4 numbers)
    np.testing.assert_array_equal(D.read_boxes(str(p)), boxes)


def test_got10k_and_nan_lines(tmp_path):
    got = tmp_path / "GOT-10k_Train_000001"
    _write(got / "groundtruth.txt", "347.0000,443.0000,429.0000,272.0000\n0,0,0,0\n350.5,440.25,428,270\n")
    _write(got / "absence.label", "0\n1\n0\n")
    for i in range(3):
        os.makedirs(got, exist_ok=True)
        cv2.imwrite(str(got / f"{i + 1:08d}.jpg"), np.zeros((8, 8, 3), np.uint8))
    _write(tmp_path / "list.txt", "GOT-10k_Train_000001\n")
    train_seq = D.GOT10k(str(tmp_path))[0]
    eval_seq = ED.load_got10k(str(tmp_path))[0]
    np.testing.assert_array_equal(train_seq.boxes, eval_seq.gt)
    np.testing.assert_array_equal(train_seq.visible, [True, False, True])
    np.testing.assert_array_equal(eval_seq.absent, [False, True, False])

    nan = tmp_path / "uav.txt"
    _write(nan, "1,2,3,4\nNaN,NaN,NaN,NaN\nnan,nan,nan,nan\n0\n5,6,7,8\n")
    boxes = ANN.read_boxes(str(nan))
    assert boxes.shape == (5, 4)
    assert np.isnan(boxes[1:4]).all() and not np.isnan(boxes[[0, 4]]).any()
    np.testing.assert_array_equal(ANN.valid_boxes(boxes), [True, False, False, False, True])


def test_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "gt.txt"
    _write(p, "1,2,3,4\n1,2,3\n")
    with pytest.raises(ValueError, match=r"gt\.txt:2"):
        ANN.read_boxes(str(p))
    _write(p, "1,2,3,4\nx,y,w,h\n")
    with pytest.raises(ValueError, match=r"gt\.txt:2"):
        D.read_boxes(str(p))


def test_one_parser_object():
    assert ED.read_boxes is ANN.read_boxes and D.read_boxes is ANN.read_boxes
    assert ED.parse_box_line is ANN.parse_box_line


# ----------------------------------------------------------------------------- crops reader
def _crops(tmp_path, names=("A", "B"), n=6, readme=True):
    root = tmp_path / "train" / "crops"
    for k, name in enumerate(names):
        lines = []
        for i in range(n):
            img = np.full((48, 48, 3), 40 * k, np.uint8)
            os.makedirs(root / name / "img", exist_ok=True)
            cv2.imwrite(str(root / name / "img" / f"{i + 1:08d}.jpg"), img)
            lines.append(f"{10 + i},{12},{20},{16}")
        _write(root / name / "groundtruth.txt", "\n".join(lines) + "\n")
    if readme:
        _write(tmp_path / "train" / "README.md",
               "| sequence | benchmark | source frame size | source frames | crops |\n|---|---|---|---|---|\n"
               f"| A | OTB | 320x240 | {2 * n} | {n} |\n| B | UAV123@10fps | 1280x720 | {n} | {n} |\n")
    return str(root)


def test_crops_reader_boxes_and_frame_steps(tmp_path):
    ds = D.build_dataset("crops", root=_crops(tmp_path))
    assert [s.name for s in ds] == ["A", "B"]
    a, b = ds
    np.testing.assert_array_equal(a.boxes[2], [12, 12, 20, 16])      # 0-based, unchanged
    assert a.visible.all() and len(a.frames) == 6 and a.image(0).shape == (48, 48, 3)
    assert a.frame_step == pytest.approx(2.0)        # every 2nd frame of a 30 fps source
    assert b.frame_step == pytest.approx(3.0)        # every frame at 10 fps = 3 frames at 30 fps
    no_readme = D.build_dataset("crops", root=_crops(tmp_path / "x", readme=False))
    assert [s.frame_step for s in no_readme] == [1.0, 1.0]


@pytest.mark.skipif(not os.path.isdir(SHARED_CROPS), reason="../shared/data/train/crops not present "
                    "(the shared training crops live outside the repository)")
def test_shared_crops_read():
    ds = D.build_dataset("crops", root=SHARED_CROPS)
    assert len(ds) == 25 and ds.num_frames == 7093
    steps = {s.name: s.frame_step for s in ds}
    assert steps["OTB_Car1"] == pytest.approx(1020 / 500)
    assert steps["UAV123-10fps_boat5"] == pytest.approx(3.0)
    seq = ds.sequences[0]
    img = seq.image(0)
    assert img.shape == (384, 384, 3)
    x, y, w, h = seq.boxes[0]
    assert 0 <= x and x + w <= 384 and 0 <= y and y + h <= 384


# ----------------------------------------------------------------------------- mixing sampler
def _memory_dataset(name, n_seq, n_frames, step=1.0, frame_range=100):
    seqs = [D.Sequence(f"{name}{s}", [f"/nonexistent/{name}{s}/{i}.jpg" for i in range(n_frames)],
                       np.tile([[10.0, 10.0, 20.0, 20.0]], (n_frames, 1)), dataset=name, frame_step=step)
            for s in range(n_seq)]
    return D.TrackingDataset(seqs, name=name, frame_range=frame_range)


def test_mix_follows_source_weights_and_tags_pairs():
    real = _memory_dataset("real", 5, 40, step=2.0)
    pseudo = _memory_dataset("pseudo", 50, 24)
    synth = _memory_dataset("synth", 200, 16)
    sampler = PairSampler([real, pseudo, synth], weights=[3.0, 1.0, 1.0], neg_prob=0.0, seed=1)
    picks = [sampler.sample_indices(k) for k in range(3000)]
    share = np.bincount([p["source"] for p in picks], minlength=3) / len(picks)
    np.testing.assert_allclose(share, [0.6, 0.2, 0.2], atol=0.035)   # weights, not sequence counts
    for p in picks:
        assert p["source"] == p["template"][0]
        (_, _, i), (_, _, j) = p["template"], p["search"]
        step = 2.0 if p["source"] == 0 else 1.0
        assert p["frame_gap"] == pytest.approx(abs(i - j) * step)


def test_frame_range_counts_source_frames():
    thinned = _memory_dataset("t", 1, 200, step=4.0, frame_range=100)
    sampler = PairSampler([thinned], neg_prob=0.0, temporal="uniform", seed=0)
    gaps = [abs(p["template"][2] - p["search"][2]) for p in map(sampler.sample_indices, range(500))]
    assert max(gaps) <= 25 and max(gaps) >= 20          # 100 frames / 4 per crop


def test_loss_mode_excludes_same_frame_and_is_uniform():
    ds = _memory_dataset("v", 4, 60)
    one = D.TrackingDataset([D.Sequence("single", ["/nonexistent/s.jpg"], [[1, 1, 5, 5]])], name="one")
    sampler = PairSampler([ds, one], weights=[1.0, 1.0], neg_prob=0.0, temporal="loss", seed=2)
    picks = [sampler.sample_indices(k) for k in range(2000)]
    assert all(p["source"] == 0 for p in picks)          # a one-frame sequence has no pair i != j
    d = np.array([abs(p["template"][2] - p["search"][2]) for p in picks])
    assert d.min() >= 1
    # uniform in j (not Omega-weighted): far gaps about as common as near ones
    sample_mode = PairSampler([ds], neg_prob=0.0, temporal="sample", seed=2)
    d_sample = np.array([abs(p["template"][2] - p["search"][2]) for p in map(sample_mode.sample_indices, range(2000))])
    assert np.mean(d) > np.mean(d_sample) + 2


def test_items_carry_frame_gap_and_source(tmp_path):
    pytest.importorskip("torch")
    ds = D.build_dataset("crops", root=_crops(tmp_path))
    pd = PairDataset([ds], length=8, seed=0, neg_prob=0.0, temporal="loss")
    for k in range(8):
        item = pd[k]
        c = pd.crops(k)
        (_, _, i), (_, _, j) = c["info"]["template"], c["info"]["search"]
        assert i != j
        step = 2.0 if c["info"]["template"][1] == "A" else 3.0
        assert item["frame_gap"] == pytest.approx(abs(i - j) * step)
        assert item["source"] == 0


# ----------------------------------------------------------------------------- never the validation data
def test_validation_sequences_refused_with_no_override(tmp_path, monkeypatch):
    root = tmp_path / "shared" / "data" / "sequences"
    (root / "X" / "img").mkdir(parents=True)
    cv2.imwrite(str(root / "X" / "img" / "0001.jpg"), np.zeros((8, 8, 3), np.uint8))
    _write(root / "X" / "groundtruth.txt", "1,1,5,5\n")
    for ds in (D.OTB(str(root)), D.build_dataset("crops", root=str(root))):
        with pytest.raises(ValueError, match="refusing to train on .*validation sequences"):
            PairSampler([ds])
        with pytest.raises(ValueError, match="validation sequences"):
            PairDataset([ds], length=1)
    with pytest.raises(TypeError):
        PairSampler([D.OTB(str(root))], allow_validation_data=True)
    # wherever they are: $SIAM_TRACKER_SEQUENCES names them, a link leads there
    elsewhere = tmp_path / "val"
    (elsewhere / "Y" / "img").mkdir(parents=True)
    cv2.imwrite(str(elsewhere / "Y" / "img" / "0001.jpg"), np.zeros((8, 8, 3), np.uint8))
    _write(elsewhere / "Y" / "groundtruth.txt", "1,1,5,5\n")
    os.symlink(elsewhere, tmp_path / "innocent")
    monkeypatch.setenv("SIAM_TRACKER_SEQUENCES", str(elsewhere))
    with pytest.raises(ValueError, match="refusing"):
        PairSampler([D.OTB(str(tmp_path / "innocent"), one_based=False)])


def test_training_config_refuses_shared_sequences(tmp_path):
    pytest.importorskip("torch")
    from siam_tracker_ros.train.loop import build_pair_dataset
    root = tmp_path / "shared" / "data" / "sequences"
    (root / "X" / "img").mkdir(parents=True)
    cv2.imwrite(str(root / "X" / "img" / "0001.jpg"), np.zeros((8, 8, 3), np.uint8))
    _write(root / "X" / "groundtruth.txt", "1,1,5,5\n")
    with pytest.raises(ValueError, match="refusing to train"):
        build_pair_dataset({"datasets": [{"type": "otb", "root": str(root)}], "length": 4})


def test_rasnet_loss_needs_pairs_drawn_for_it(tmp_path):
    """Omega in the loss with Omega-proportional drawing would weigh pairs twice:
    the trainer refuses it; with data.temporal: loss it trains and batches carry
    the frame gaps."""
    pytest.importorskip("torch")
    from siam_tracker_ros.train.trainer import Trainer
    root = _crops(tmp_path)
    cfg = {"name": "r", "model": "rasnet_light",
           "data": {"datasets": [{"type": "crops", "root": root}], "length": 8, "neg_prob": 0.0},
           "train": {"epochs": 1, "batch_size": 2, "samples_per_epoch": 2, "loss": {"type": "rasnet", "radius": 32},
                     "freeze": {"enabled": False}},
           "val": {"enabled": False}}
    with pytest.raises(ValueError, match="data.temporal: loss"):
        Trainer(cfg, out_dir=str(tmp_path / "a"), device="cpu", progress=False, log=lambda m: None)
    cfg["data"]["temporal"] = "loss"
    trainer = Trainer(cfg, out_dir=str(tmp_path / "b"), device="cpu", progress=False, log=lambda m: None)
    row = trainer.train_epoch(0)
    assert row["steps"] == 1 and np.isfinite(row["loss"])
