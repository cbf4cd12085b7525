"""siam-bench: per-stage timings, memory, skipped models, synthetic frames."""
import json
import os

import numpy as np

from siam_tracker_ros.evaluation import speed


def test_run_job_in_process_on_synthetic_frames():
    res = speed.run_job(speed.BenchJob("opencv-kcf", threads=1, frames=4, warmup=1))
    assert res.ok, res.reason
    assert res.frames == 4 and "synthetic" in res.source
    assert set(res.ms) == {"total"}                       # peers: total only
    assert res.ms["total"]["median"] > 0 and res.ms["total"]["p90"] >= res.ms["total"]["median"]
    assert res.fps > 0 and np.isfinite(res.memory_mb)


def test_model_stages_are_reported():
    res = speed.run_job(speed.BenchJob("siamfc", threads=1, frames=2, warmup=0))
    assert res.ok, res.reason
    assert "total" in res.ms
    assert res.weights.startswith("none")
    # the tracker's own split, when it fills TrackResult.timing
    for k in res.ms:
        assert k in speed.STAGES


def test_unknown_model_and_cuda_without_gpu_fail_cleanly():
    res = speed.run_job(speed.BenchJob("no_such_model_xyz", frames=2, warmup=0))
    assert not res.ok and "unknown model" in res.reason
    import torch
    if not torch.cuda.is_available():
        res = speed.run_job(speed.BenchJob("siamfc", device="cuda", frames=2, warmup=0))
        assert not res.ok and "CUDA" in res.reason


def test_configurations():
    cfgs = speed.configurations(cuda=True, threads=(1, 2))
    assert [(c["device"], c["threads"], c["precision"]) for c in cfgs] == [
        ("cpu", 1, "fp32"), ("cpu", 2, "fp32"), ("cuda", None, "fp32"), ("cuda", None, "fp16")]
    assert len(speed.configurations(cuda=False)) == 2


def test_siam_bench_cli(tmp_path):
    from siam_tracker_ros.cli import bench
    out = str(tmp_path / "bench")
    common = ["--peers", "kcf", "--synthetic", "--frames", "3", "--warmup", "1", "--threads", "1", "--no-cuda",
              "--out", out]
    assert bench.main(["--models", "no_such_model_xyz", *common]) == 2     # an unknown model is an error
    assert not os.path.exists(out)
    rc = bench.main(["--models", "siamfc", *common])
    assert rc == 0
    with open(os.path.join(out, "bench.json")) as f:
        doc = json.load(f)
    ok = [r for r in doc["results"] if r["ok"]]
    assert [r["tracker"] for r in ok] == ["siamfc", "opencv-kcf"]
    assert "synthetic" in doc["meta"]["frames"]
    md = open(os.path.join(out, "bench.md")).read()
    assert "| opencv-kcf | cpu | 1 | fp32 |" in md
    from siam_tracker_ros.evaluation import benchmarks_doc
    text = benchmarks_doc.build(None, out, None, None, str(tmp_path / "B.md"))
    assert "## Speed and memory (siam-bench)" in text and "| opencv-kcf | cpu | 1 | fp32 |" in text
    assert "no GPU on this machine" in text or "measured" in text


def test_benchmarks_doc_includes_the_separately_generated_tables(tmp_path):
    from siam_tracker_ros.evaluation import benchmarks_doc
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "soak.md").write_text(
        "# Soak\n\n## Run 1\n\n```\n# a shell comment\n```\n| rss | 1.01 |\n")
    text = benchmarks_doc.build(None, None, None, None, str(tmp_path / "B.md"))
    soak = text[text.index("## Soak: 10 minutes"):]
    assert "### Run 1" in soak and "# a shell comment" in soak and "| rss | 1.01 |" in soak
    assert "docs/benchmarks/lost_state.md is missing" in text
