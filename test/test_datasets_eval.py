"""Evaluation dataset readers, each on a tiny fixture written in its own layout."""
import os

import cv2
import numpy as np
import pytest

from siam_tracker_ros.evaluation import datasets


def write_frames(folder, n, pattern="{:08d}.jpg", start=1, size=(32, 24)):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), 10 * i % 255, np.uint8)
        cv2.imwrite(os.path.join(folder, pattern.format(start + i)), img)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_shared_layout(tmp_path):
    write_frames(tmp_path / "seqA" / "img", 3)
    write(str(tmp_path / "seqA" / "groundtruth.txt"), "1,2,3,4\n2,3,4,5\n3.5,4,5,6\n")
    write_frames(tmp_path / "seqB" / "img", 2)
    write(str(tmp_path / "seqB" / "groundtruth.txt"), "1,2,3,4\n2,3,4,5\n")
    os.makedirs(tmp_path / "not_a_sequence")
    assert datasets.detect_format(str(tmp_path)) == "shared"
    seqs = datasets.open_dataset(str(tmp_path))
    assert [s.name for s in seqs] == ["seqA", "seqB"]
    a = seqs[0]
    assert len(a) == 3 and a.gt.shape == (3, 4) and a.gt[2, 0] == 3.5
    assert not a.absent.any()
    assert a.frame(1).shape == (24, 32, 3) and a.image_size == (32, 24)
    assert len(list(a.frames())) == 3
    only = datasets.open_dataset(str(tmp_path), names=["seqB"], max_frames=1)
    assert [s.name for s in only] == ["seqB"] and len(only[0]) == 1
    with pytest.raises(ValueError, match="not found"):
        datasets.open_dataset(str(tmp_path), names=["nope"])


def test_frames_are_read_lazily(tmp_path):
    write_frames(tmp_path / "s" / "img", 2)
    write(str(tmp_path / "s" / "groundtruth.txt"), "1,2,3,4\n1,2,3,4\n")
    seq = datasets.open_dataset(str(tmp_path))[0]
    os.remove(seq.frame_paths[1])            # listing did not read the images
    assert seq.frame(0).shape[2] == 3
    with pytest.raises(IOError, match="cannot read frame 1"):
        seq.frame(1)


def test_otb_separators_multi_target_and_frame_ranges(tmp_path):
    write_frames(tmp_path / "Crossing" / "img", 3, "{:04d}.jpg")
    write(str(tmp_path / "Crossing" / "groundtruth_rect.txt"), "205,151,17,50\n202\t150\t19\t49\n201 150 18 49\n")
    write_frames(tmp_path / "Jogging" / "img", 2, "{:04d}.jpg")
    write(str(tmp_path / "Jogging" / "groundtruth_rect.1.txt"), "1,2,3,4\n1,2,3,4\n")
    write(str(tmp_path / "Jogging" / "groundtruth_rect.2.txt"), "5,6,7,8\n5,6,7,8\n")
    write_frames(tmp_path / "Human4" / "img", 2, "{:04d}.jpg")
    write(str(tmp_path / "Human4" / "groundtruth_rect.1.txt"), "")          # empty: skipped
    write(str(tmp_path / "Human4" / "groundtruth_rect.2.txt"), "1,1,5,5\n2,2,5,5\n")
    write_frames(tmp_path / "Diving" / "img", 4, "{:04d}.jpg")               # more images than boxes
    write(str(tmp_path / "Diving" / "groundtruth_rect.txt"), "1,1,5,5\n2,2,5,5\n")
    assert datasets.detect_format(str(tmp_path)) == "otb"
    seqs = {s.name: s for s in datasets.open_dataset(str(tmp_path), "otb")}
    assert sorted(seqs) == ["Crossing", "Diving", "Human4", "Jogging-1", "Jogging-2"]
    np.testing.assert_array_equal(seqs["Crossing"].gt[1], [202, 150, 19, 49])
    np.testing.assert_array_equal(seqs["Jogging-2"].gt[0], [5, 6, 7, 8])
    assert len(seqs["Diving"]) == 2 and seqs["Diving"].frame_paths[-1].endswith("0002.jpg")


def test_otb_david_starts_at_frame_300(tmp_path):
    write_frames(tmp_path / "David" / "img", 302, "{:04d}.jpg", size=(8, 8))
    write(str(tmp_path / "David" / "groundtruth_rect.txt"), "1,1,2,2\n" * 3)
    seq = datasets.open_dataset(str(tmp_path), "otb")[0]
    assert len(seq) == 3 and seq.frame_paths[0].endswith("0300.jpg")


def test_uav123_nan_rows_and_split_sequences(tmp_path):
    root = tmp_path / "UAV123"
    write_frames(root / "data_seq" / "UAV123" / "car1", 4, "{:06d}.jpg")
    write(str(root / "anno" / "UAV123" / "car1.txt"), "1,2,3,4\nNaN,NaN,NaN,NaN\nnan,nan,nan,nan\n4,5,6,7\n")
    # bird1 is split: bird1_2 covers frames 3..5 of the folder, given by configSeqs.m
    write_frames(root / "data_seq" / "UAV123" / "bird1", 6, "{:06d}.jpg")
    write(str(root / "anno" / "UAV123" / "bird1_2.txt"), "1,1,2,2\n1,1,2,2\n1,1,2,2\n")
    write(str(root / "anno" / "UAV123" / "person9_1.txt"), "1,1,2,2\n")    # no folder, no config
    write(str(root / "configSeqs.m"),
          "seqUAV123={struct('name','bird1_2','path','D:\\data_seq\\UAV123\\bird1\\',"
          "'startFrame',3,'endFrame',5,'nz',6,'ext','jpg','init_rect',[0,0,0,0]),...\n};\n")
    assert datasets.detect_format(str(root)) == "uav123"
    seqs = {s.name: s for s in datasets.open_dataset(str(root))}
    assert sorted(seqs) == ["bird1_2", "car1"]                 # person9_1 skipped (warning)
    car = seqs["car1"]
    assert np.isnan(car.gt[1]).all() and np.isnan(car.gt[2]).all()
    assert not np.isnan(car.gt[3]).any()
    bird = seqs["bird1_2"]
    assert [os.path.basename(p) for p in bird.frame_paths] == ["000003.jpg", "000004.jpg", "000005.jpg"]


def test_got10k_absence_and_cover(tmp_path):
    root = tmp_path / "GOT-10k"
    seq_dir = root / "val" / "GOT-10k_Val_000001"
    write_frames(seq_dir, 4)
    write(str(seq_dir / "groundtruth.txt"), "1,2,3,4\n1,2,3,4\n1,2,3,4\n1,2,3,4\n")
    write(str(seq_dir / "absence.label"), "0\n0\n1\n0\n")
    write(str(seq_dir / "cover.label"), "8\n0\n0\n5\n")
    write(str(root / "val" / "list.txt"), "GOT-10k_Val_000001\n")
    test_dir = root / "test" / "GOT-10k_Test_000001"
    write_frames(test_dir, 3)
    write(str(test_dir / "groundtruth.txt"), "1,2,3,4\n")
    write(str(test_dir / "absence.label"), "")
    assert datasets.detect_format(str(root)) == "got10k"
    seq = datasets.open_dataset(str(root))[0]                # val first
    assert seq.name == "GOT-10k_Val_000001" and seq.dataset == "got10k"
    assert list(seq.absent) == [False, True, True, False]
    assert seq.meta["cover"] == [8, 0, 0, 5]
    test = datasets.load_got10k(str(root), split="test")[0]
    assert len(test) == 3 and np.isnan(test.gt[1:]).all()


def test_lasot_full_occlusion_and_out_of_view(tmp_path):
    root = tmp_path / "LaSOT"
    for name, occ, oov in (("airplane-1", "0,1,0", "0,0,1"), ("airplane-13", "0,0,0", "0,0,0")):
        d = root / "airplane" / name
        write_frames(d / "img", 3)
        write(str(d / "groundtruth.txt"), "1,2,3,4\n1,2,3,4\n0,0,0,0\n")
        write(str(d / "full_occlusion.txt"), occ + "\n")
        write(str(d / "out_of_view.txt"), oov + "\n")
        write(str(d / "nlp.txt"), "a plane\n")
    write(str(root / "testing_set.txt"), "airplane-1\n")
    assert datasets.detect_format(str(root)) == "lasot"
    seqs = {s.name: s for s in datasets.open_dataset(str(root))}
    assert sorted(seqs) == ["airplane-1", "airplane-13"]
    assert list(seqs["airplane-1"].absent) == [False, True, True]
    assert not seqs["airplane-13"].absent.any()
    assert [s.name for s in datasets.load_lasot(str(root), test_only=True)] == ["airplane-1"]


def test_vot_polygons_rectangles_and_masks(tmp_path):
    root = tmp_path / "VOT2018"
    write_frames(root / "ball1" / "color", 3)
    # polygon (rotated square), rectangle, polygon
    write(str(root / "ball1" / "groundtruth.txt"),
          "10,0,20,10,10,20,0,10\n1,2,3,4\n0.5,1.5,4.5,1.5,4.5,6.5,0.5,6.5\n")
    write_frames(root / "bag", 2)                    # VOT2015/16: frames next to groundtruth.txt
    # VOT2020 mask: 3x2 patch at (5, 7); runs: 1 bg, 2 fg, 1 bg, 2 fg -> pixels (1,0),(2,0),(1,1),(2,1)
    write(str(root / "bag" / "groundtruth.txt"), "m5,7,3,2,1,2,1,2\n1,1,2,2\n")
    write(str(root / "list.txt"), "ball1\nbag\n")
    assert datasets.detect_format(str(root)) == "vot"
    seqs = datasets.open_dataset(str(root))
    assert [s.name for s in seqs] == ["ball1", "bag"]
    ball = seqs[0]
    np.testing.assert_allclose(ball.gt[0], [0, 0, 20, 20])
    np.testing.assert_allclose(ball.gt[1], [1, 2, 3, 4])
    np.testing.assert_allclose(ball.gt[2], [0.5, 1.5, 4, 5])
    assert ball.frame_paths[0].endswith(os.path.join("color", "00000001.jpg"))
    np.testing.assert_allclose(seqs[1].gt[0], [6, 7, 2, 2])


def test_unknown_layout_and_bad_lines(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="cannot tell"):
        datasets.detect_format(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError):
        datasets.detect_format(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="3 values"):
        datasets.parse_box_line("1,2,3")
    assert np.isnan(datasets.parse_box_line("0")).all()      # VOT special code


def test_shared_sequences_if_present(sequences_dir):
    seqs = datasets.open_dataset(str(sequences_dir))
    assert len(seqs) == 7
    for s in seqs:
        assert len(s) == len(s.gt) > 0
        assert np.all(s.gt[0, 2:] > 0)
