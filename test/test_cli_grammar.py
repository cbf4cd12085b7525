"""One CLI grammar (issue 15 item 7): one flag name per meaning across the siam-* tools (the
former names are hidden deprecated aliases), user errors as one line + exit 2 (never a
traceback), an unknown model is an error, progress bars on siam-bag's long work."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from siam_tracker_ros.cli import bag, bench, ctl, demo, eval as eval_cli, export, track, train

PARSERS = {"siam-track": track.build_parser, "siam-bag": bag.build_parser, "siam-bench": bench._parser,
           "siam-eval": eval_cli._parser, "siam-export": export._parser, "siam-demo": demo.build_parser,
           "siam-train": train.build_parser, "siam-ctl": ctl.build_parser}
# A meaning -> its one flag; the other spellings may exist only as hidden deprecated aliases.
FORMER = {"--num-threads": "--threads", "--output": "--out", "-o": "--out"}


def visible_options(parser):
    out = set()
    for action in parser._actions:
        if action.help != "==SUPPRESS==":
            out.update(action.option_strings)
        if action.__class__.__name__ == "_SubParsersAction":
            for sub in action.choices.values():
                out |= visible_options(sub)
    return out


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_one_name_per_flag_meaning(prog):
    options = visible_options(PARSERS[prog]())
    former = {o for o in options if o in FORMER}
    assert not former, f"{prog} shows {former}: use {[FORMER[o] for o in former]}"


@pytest.fixture
def frames(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(3):
        image = np.zeros((64, 80, 3), np.uint8)
        cv2.rectangle(image, (20 + i, 20), (40 + i, 40), (0, 200, 255), -1)
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), image)
    return folder


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("siam-track: ")]
    assert "Traceback" not in err and len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


def test_siam_track_missing_source(tmp_path, capsys):
    assert track.main([str(tmp_path / "nope"), "--box", "1,1,5,5", "--model", "rasnet_light"]) == 2
    one_line_error(capsys, "no such image folder or video")


def test_siam_track_bad_boxes(frames, capsys):
    with pytest.raises(SystemExit) as exit_:              # argparse: usage + one error line, exit 2
        track.main([str(frames), "--box", "1,1,5"])
    assert exit_.value.code == 2
    assert "a box is 4 numbers" in capsys.readouterr().err
    assert track.main([str(frames), "--box", "100,100,5,5", "--model", "rasnet_light", "--device", "cpu"]) == 2
    one_line_error(capsys, "outside the 80x64 image")
    assert track.main([str(frames), "--model", "rasnet_light"]) == 2           # no --box, no groundtruth.txt
    one_line_error(capsys, "--box not given")


def test_siam_track_missing_cuda_and_bad_device(frames, capsys):
    import torch
    if not torch.cuda.is_available():
        assert track.main([str(frames), "--box", "1,1,5,5", "--model", "rasnet_light", "--device", "cuda"]) == 2
        one_line_error(capsys, "CUDA is not available")
    assert track.main([str(frames), "--box", "1,1,5,5", "--model", "rasnet_light", "--device", "gpu7"]) == 2
    one_line_error(capsys, "device 'gpu7'")


def test_siam_track_missing_weights_and_unwritable_out(frames, tmp_path, capsys):
    assert track.main([str(frames), "--box", "1,1,5,5", "--model", "rasnet_light", "--weights",
                       str(tmp_path / "none.pt")]) == 2
    one_line_error(capsys, "none.pt")
    assert track.main([str(frames), "--box", "1,1,5,5", "--model", "rasnet_light", "--device", "cpu",
                       "--out", str(tmp_path / "no" / "dir" / "boxes.txt")]) == 2
    one_line_error(capsys, "boxes.txt")


def test_siam_track_former_output_flag_still_works(frames, tmp_path, capsys):
    out = tmp_path / "boxes.txt"
    assert track.main([str(frames), "--box", "20,20,20,20", "--model", "rasnet_light", "--device", "cpu",
                       "-o", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 3
    assert "-o is deprecated (removed in the next release): use --out" in capsys.readouterr().err


def test_siam_demo_former_threads_flag(capsys):
    assert demo.build_parser().parse_args(["--num-threads", "2"]).threads == 2
    assert "--num-threads is deprecated" in capsys.readouterr().err
    assert demo.build_parser().parse_args(["--threads", "3"]).threads == 3


def test_siam_track_error_is_one_line_in_a_real_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "siam_tracker_ros.cli.track", str(tmp_path / "missing.mp4"),
                          "--box", "1,1,5,5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("siam-track: no such image folder or video")


def test_siam_bench_unknown_model_is_an_error(capsys):
    assert bench.main(["--models", "typo_model", "--synthetic", "--frames", "2", "--no-peers"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'typo_model'" in err and "Traceback" not in err


def test_siam_bag_from_video_shows_progress(frames, tmp_path, capsys):
    out = tmp_path / "bag"
    assert bag.main(["from-video", str(frames), str(out), "--no-groundtruth", "--init", "none"]) == 0
    err = capsys.readouterr().err
    assert "writing" in err and "3/3" in err, err
    assert bag.main(["from-video", str(frames), str(tmp_path / "bag2"), "--no-groundtruth", "--init", "none",
                     "--no-progress"]) == 0
    assert "3/3" not in capsys.readouterr().err
    assert os.path.isdir(out)
