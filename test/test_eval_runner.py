"""siam-eval's runner: cache and resume, parallel workers, outputs, skipped trackers."""
import json
import os

import cv2
import numpy as np
import pytest

from siam_tracker_ros.core.tracking.base import TrackResult, TrackState
from siam_tracker_ros.evaluation import datasets, runner

CALLS = {"init": 0, "track": 0}


class CountingTracker:
    """Moves its box 1 px right per frame and counts calls."""

    def init(self, image, box):
        CALLS["init"] += 1
        self.box = np.asarray(box, dtype=np.float64)

    def track(self, image):
        CALLS["track"] += 1
        self.box = self.box + [1, 0, 0, 0]
        return TrackResult(self.box.copy(), 0.9, TrackState.TRACKING, np.zeros((1, 1), np.float32),
                           self.box.copy(), {"total": 0.001})


class FakeSpec:
    def __init__(self, label="fake", version=1):
        self.label, self.version = label, version

    def identity(self):
        return {"kind": "test", "version": self.version}

    def key(self):
        return f"v{self.version}"

    def build(self):
        return CountingTracker()

    def weights_note(self):
        return "none"


def make_dataset(root, n_seqs=2, n_frames=6, size=(96, 72)):
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    patch = rng.integers(0, 255, (16, 20, 3), dtype=np.uint8)
    for s in range(n_seqs):
        d = os.path.join(root, f"seq{s}")
        os.makedirs(os.path.join(d, "img"))
        lines = []
        for i in range(n_frames):
            img = background.copy()
            x, y = 20 + 2 * i, 20 + s
            img[y:y + 16, x:x + 20] = patch
            cv2.imwrite(os.path.join(d, "img", f"{i:04d}.jpg"), img)
            lines.append(f"{x},{y},20,16")
        with open(os.path.join(d, "groundtruth.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
    return root


def test_second_run_reuses_the_cache(tmp_path):
    seqs = datasets.open_dataset(make_dataset(str(tmp_path / "data")))
    cache = str(tmp_path / "cache")
    CALLS.update(init=0, track=0)
    first = runner.run_trackers([FakeSpec()], seqs, cache_dir=cache, progress=False)
    assert CALLS == {"init": 2, "track": 10} and first.ran == 2 and first.cached == 0
    CALLS.update(init=0, track=0)
    second = runner.run_trackers([FakeSpec()], seqs, cache_dir=cache, progress=False)
    assert CALLS == {"init": 0, "track": 0}, "second run must not call the tracker"
    assert second.ran == 0 and second.cached == 2
    for name in ("seq0", "seq1"):
        assert second.records["fake"][name]["boxes"] == first.records["fake"][name]["boxes"]
    s1 = runner.score_run(first)["fake"]["overall"]
    s2 = runner.score_run(second)["fake"]["overall"]
    assert s1["auc"] == s2["auc"]
    # a different tracker identity (other weights, code, config) runs again
    CALLS.update(init=0, track=0)
    runner.run_trackers([FakeSpec(version=2)], seqs, cache_dir=cache, progress=False)
    assert CALLS["init"] == 2
    # --no-cache reruns
    CALLS.update(init=0, track=0)
    runner.run_trackers([FakeSpec()], seqs, cache_dir=cache, use_cache=False, progress=False)
    assert CALLS["init"] == 2


def test_interrupted_run_resumes(tmp_path):
    seqs = datasets.open_dataset(make_dataset(str(tmp_path / "data"), n_seqs=3))
    cache = str(tmp_path / "cache")
    runner.run_trackers([FakeSpec()], seqs[:1], cache_dir=cache, progress=False)   # "interrupted"
    CALLS.update(init=0, track=0)
    run = runner.run_trackers([FakeSpec()], seqs, cache_dir=cache, progress=False)
    assert run.cached == 1 and run.ran == 2 and CALLS["init"] == 2
    assert list(run.records["fake"]) == ["seq0", "seq1", "seq2"]


def test_cache_only_reports_what_is_there(tmp_path):
    seqs = datasets.open_dataset(make_dataset(str(tmp_path / "data"), n_seqs=3))
    cache = str(tmp_path / "cache")
    runner.run_trackers([FakeSpec()], seqs[:1], cache_dir=cache, progress=False)
    CALLS.update(init=0, track=0)
    run = runner.run_trackers([FakeSpec()], seqs, cache_dir=cache, progress=False, cache_only=True)
    assert CALLS["init"] == 0 and run.ran == 0 and run.cached == 1
    assert run.missing == {"fake": ["seq1", "seq2"]}
    overall = runner.score_run(run)["fake"]["overall"]
    assert overall["complete"] is False and overall["sequences"] == 1


def test_record_contents_and_timing(tmp_path):
    seqs = datasets.open_dataset(make_dataset(str(tmp_path / "data"), n_seqs=1))
    run = runner.run_trackers([FakeSpec()], seqs, progress=False)
    rec = run.records["fake"]["seq0"]
    np.testing.assert_array_equal(rec["boxes"][0], seqs[0].gt[0])    # frame 0 = ground truth
    assert rec["times"][0] == 0.0 and all(t > 0 for t in rec["times"][1:])
    assert rec["tracked_frames"] == 5
    scored = runner.score_run(run)["fake"]
    assert scored["overall"]["fps"] > 0
    # the fake tracker drifts 1 px/frame while the target moves 2 px/frame
    assert 0 < scored["overall"]["auc"] < 20 / 21


def test_vot_protocol_through_the_runner(tmp_path):
    seqs = datasets.open_dataset(make_dataset(str(tmp_path / "data"), n_seqs=1, n_frames=12))
    run = runner.run_trackers([FakeSpec()], seqs, protocol="vot", progress=False)
    rec = run.records["fake"]["seq0"]
    assert rec["records"][0] == "init"
    scored = runner.score_run(run)["fake"]["overall"]
    assert scored["failures"] >= 0 and 0 <= scored["robustness"]


def test_unbuildable_tracker_is_skipped_with_reason(tmp_path):
    seqs = datasets.open_dataset(make_dataset(str(tmp_path / "data"), n_seqs=1))
    spec = runner.TrackerSpec("no_such_model_xyz", device="cpu")
    run = runner.run_trackers([spec, FakeSpec()], seqs, progress=False)
    assert "no_such_model_xyz" in run.skipped and "unknown model" in run.skipped["no_such_model_xyz"]
    assert "fake" in run.records


def test_peer_identity_includes_onnx_hash():
    spec = runner.TrackerSpec("csrt")
    assert spec.label == "opencv-csrt" and spec.kind == "peer"
    assert spec.identity()["name"] == "opencv-csrt"
    missing = runner.TrackerSpec("opencv-nanotrack", onnx=("/nonexistent/a.onnx", "/nonexistent/b.onnx"))
    with pytest.raises(FileNotFoundError):
        missing.key()


def test_model_identity_changes_with_weights(tmp_path):
    import torch
    from siam_tracker_ros.core import checkpoints
    from siam_tracker_ros.core.models import registry
    config = registry.load_model_config("siamfc")
    torch.manual_seed(0)
    model = registry.build_model(config["model"])
    a, b = str(tmp_path / "a.pt"), str(tmp_path / "b.pt")
    clean = {k: v for k, v in config.items() if not k.startswith("_")}
    checkpoints.save_checkpoint(a, model, clean)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    checkpoints.save_checkpoint(b, model, clean)
    ka, kb = runner.TrackerSpec(a).key(), runner.TrackerSpec(b).key()
    assert ka != kb
    assert runner.TrackerSpec(a).label == "a"
    untrained = runner.TrackerSpec("siamfc", allow_untrained=True)
    assert "untrained" in untrained.weights_note()


def test_siam_eval_cli_end_to_end(tmp_path, capsys):
    from siam_tracker_ros.cli import eval as siam_eval
    data = make_dataset(str(tmp_path / "data"), n_seqs=2, n_frames=5)
    out = str(tmp_path / "out")
    # a named model that is unknown, or has no trained weights, is an error before anything runs
    for bad, says in (("no_such_model_xyz", "unknown model 'no_such_model_xyz'"),
                      ("siamfc", "model 'siamfc' has no trained weights")):
        assert siam_eval.main(["--dataset", data, "--trackers", bad, "kcf", "--out", out, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not os.path.exists(out)
    argv = ["--dataset", data, "--trackers", "siamfc", "csrt", "kcf", "--allow-untrained",
            "--out", out, "--workers", "2", "--device", "cpu", "--quiet"]
    rc = siam_eval.main(argv)
    assert rc == 0
    for f in ("results.json", "results_overall.csv", "results_per_sequence.csv", "results.md",
              "success_plot.png", "precision_plot.png", "norm_precision_plot.png"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    with open(os.path.join(out, "results.json")) as f:
        doc = json.load(f)
    assert set(doc["trackers"]) == {"siamfc", "opencv-csrt", "opencv-kcf"}
    assert doc["meta"]["ran"] == 6 and doc["meta"]["from_cache"] == 0
    assert doc["trackers"]["siamfc"]["weights"].startswith("none (untrained")
    assert set(doc["trackers"]["opencv-csrt"]["sequences"]) == {"seq0", "seq1"}
    for k in ("auc", "precision20", "norm_precision20", "ao", "sr50", "sr75", "fps"):
        assert k in doc["trackers"]["opencv-csrt"]["overall"]
    img = cv2.imread(os.path.join(out, "success_plot.png"))
    assert img is not None and img.shape[0] > 300
    md = open(os.path.join(out, "results.md")).read()
    assert "| Tracker | AUC |" in md and "opencv-csrt" in md
    boxes = np.loadtxt(os.path.join(out, "boxes", "opencv-kcf", "seq0.txt"), delimiter=",")
    assert boxes.shape == (5, 4)
    # the second run comes entirely from the cache
    assert siam_eval.main(argv) == 0
    with open(os.path.join(out, "results.json")) as f:
        doc2 = json.load(f)
    assert doc2["meta"]["ran"] == 0 and doc2["meta"]["from_cache"] == 6
    assert doc2["trackers"]["siamfc"]["overall"]["auc"] == doc["trackers"]["siamfc"]["overall"]["auc"]
    # docs/BENCHMARKS.md is written from these outputs
    from siam_tracker_ros.evaluation import benchmarks_doc
    md_path = str(tmp_path / "docs" / "BENCHMARKS.md")
    text = benchmarks_doc.build(out, None, None, str(tmp_path / "docs" / "benchmarks"), md_path)
    assert "| siamfc |" in text and "**untrained**" in text and "## Metric conventions" in text
    assert "![success plot](benchmarks/success_plot.png)" in text
    assert os.path.isfile(tmp_path / "docs" / "benchmarks" / "success_plot.png")


def test_siam_eval_missing_dataset(tmp_path, capsys):
    from siam_tracker_ros.cli import eval as siam_eval
    assert siam_eval.main(["--dataset", str(tmp_path / "missing"), "--trackers", "kcf"]) == 2
    assert "not found" in capsys.readouterr().err


def test_tracker_spec_with_engine_suffix_is_its_own_tracker():
    from siam_tracker_ros.evaluation.runner import TrackerSpec
    plain = TrackerSpec("siamfc", device="cpu", allow_untrained=True)
    onnx = TrackerSpec("siamfc@onnxruntime", device="cpu", allow_untrained=True)
    assert (onnx.spec, onnx.engine, onnx.label) == ("siamfc", "onnxruntime", "siamfc@onnxruntime")
    assert plain.engine is None and plain.label == "siamfc"
    assert onnx.key() != plain.key()          # cached results of one never stand in for the other
