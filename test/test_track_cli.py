
import cv2
import numpy as np

from siam_tracker_ros.cli.track import main


def test_siam_track_writes_one_box_per_frame_and_a_video(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(5):
        image = (rng.random((96, 128, 3)) * 60).astype(np.uint8)
        cv2.rectangle(image, (20 + 3 * i, 30), (50 + 3 * i, 60), (0, 200, 255), -1)
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), image)
    boxes = tmp_path / "boxes.txt"
    video = tmp_path / "out.avi"
    rc = main([str(folder), "--box", "20,30,30,30", "--model", "siamfc", "--device", "cpu", "--allow-untrained",
               "-o", str(boxes), "--video", str(video)])
    assert rc == 0
    lines = boxes.read_text().strip().splitlines()
    assert len(lines) == 5
    assert [float(v) for v in lines[0].split(",")] == [20, 30, 30, 30]
    assert all(len(line.split(",")) == 4 for line in lines)
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5


def test_siam_track_reports_unknown_model(tmp_path, capsys):
    folder = tmp_path / "seq"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.jpg"), np.zeros((32, 32, 3), np.uint8))
    assert main([str(folder), "--box", "1,1,5,5", "--model", "no_such_model"]) == 2
    assert "unknown model" in capsys.readouterr().err
