"""Inference engines (core/engines): ONNX export, onnxruntime and torch engines.

For every registered model that builds without external weights (NanoTrack
when ../shared/weights/nanotrack_v2/nanotrackv2.pth exists):
- the two-part export (template.onnx + search.onnx) run by onnxruntime gives
  the PyTorch fp32 outputs on the same tensors: max |diff| <= 1e-3 x the
  output's scale (max(1, max |output|)), on random crops (light models) and on
  the first real search crop of OTB_Crossing (all models);
- a tracker over real frames of OTB_Crossing with both engines: boxes within
  0.5 px, scores within 1e-3 (10 frames for the light models; 2 for the
  random-init ResNet-50 models, which are slow on 2 cores and whose untrained
  maps say little after the first frames anyway).
Exports are made once per session into a session-scoped tmp dir.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from siam_tracker_ros.core.engines import (canonical_engine, export, is_engine,  # noqa: E402
                                           tracker_device, wrap_engine)
from siam_tracker_ros.core.engines.onnx_engine import (OnnxRuntimeEngine, resolve_providers,  # noqa: E402
                                                       session_options)
from siam_tracker_ros.core.engines.torch_engine import TorchEngine  # noqa: E402
from siam_tracker_ros.core.models import registry  # noqa: E402
from siam_tracker_ros.core.tracking import loading  # noqa: E402

LIGHT = ("siamfc", "rasnet", "nanotrack")
RESNET = ("ta_asiam", "siamcan", "siamaf_msa")
MODELS = LIGHT + RESNET
FRAMES = {"siamfc": 10, "rasnet": 10, "nanotrack": 10}   # ResNet-50 models: 2
REL_TOL = 1e-3      # max |onnx - torch| / max(1, max |torch|)
BOX_TOL = 0.5       # px
SCORE_TOL = 1e-3
SHARED = Path(os.environ.get("SIAM_SHARED_DIR") or Path(__file__).resolve().parent.parent.parent / "shared")
NANO_WEIGHTS = SHARED / "weights" / "nanotrack_v2" / "nanotrackv2.pth"


def _scale_diff(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(b))))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One torch thread: on a busy 2-core machine a second one mostly spins in
    OpenMP barriers (a ResNet-50 forward pass took 10x the CPU time)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Exports:
    """name -> (config, torch model, export dir), built on first use."""

    def __init__(self, root: Path):
        self.root = root
        self.cache = {}

    def get(self, name: str):
        if name not in self.cache:
            if name == "nanotrack" and not NANO_WEIGHTS.is_file():
                pytest.skip(f"NanoTrack v2 weights not found at {NANO_WEIGHTS}")
            torch.manual_seed(0)
            config, model, _ = registry.load_model(name)
            directory, meta = export.ensure_exported(model, config, directory=str(self.root / name))
            self.cache[name] = (config, model.eval(), directory, meta)
        return self.cache[name]


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    return _Exports(tmp_path_factory.mktemp("onnx"))


@pytest.fixture(scope="session")
def crossing(sequences_dir):
    from siam_tracker_ros.evaluation.speed import load_frames
    seq = sequences_dir / "OTB_Crossing"
    if not seq.is_dir():
        pytest.skip(f"{seq} not found")
    frames, box, _ = load_frames(str(seq), 11)
    return frames, box


class _Recorder:
    """Wraps a model / engine and keeps the outputs of its first track() call."""

    def __init__(self, inner):
        self.inner = inner
        self.first = None
        self.state = None

    def __getattr__(self, name):
        return getattr(self.__dict__["inner"], name)

    def to(self, *a, **k):
        self.inner = self.inner.to(*a, **k)
        return self

    def eval(self):
        self.inner = self.inner.eval()
        return self

    def template(self, z):
        self.state = self.inner.template(z)
        return self.state

    def track(self, state, x):
        out = self.inner.track(state, x)
        if self.first is None:
            self.first = {k: v.detach().float().cpu().numpy().copy() for k, v in out.items()}
        return out


# --------------------------------------------------------------------------- export / outputs
@pytest.mark.parametrize("name", LIGHT)
def test_outputs_match_on_random_crops(exports, name):
    config, model, directory, meta = exports.get(name)
    engine = OnnxRuntimeEngine(directory, device="cpu", threads=1)
    z, x = export.example_inputs(config, model, seed=3)
    with torch.inference_mode():
        state = model.template(z)
        ref = model.track(state, x)
    leaves = torch.utils._pytree.tree_leaves(state)
    ort_state = engine.template(z)
    assert len(ort_state) == len(leaves) == len(meta["template"]["outputs"])
    for a, b in zip(ort_state, leaves):
        assert _scale_diff(a, b.numpy()) <= REL_TOL
    out = engine.track(ort_state, x)
    assert list(out) == [k for k, v in ref.items() if isinstance(v, torch.Tensor)]
    for k, v in out.items():
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float32
        assert _scale_diff(v.numpy(), ref[k].numpy()) <= REL_TOL, k


@pytest.mark.parametrize("name", MODELS)
def test_tracker_runs_alike_on_both_engines(exports, crossing, name):
    config, model, directory, _ = exports.get(name)
    frames, box = crossing
    n = FRAMES.get(name, 2)
    rec_torch = _Recorder(model)
    rec_ort = _Recorder(OnnxRuntimeEngine(directory, device="cpu", threads=1))
    t_torch = loading.build_tracker_from_config(config, model=rec_torch, device="cpu")
    t_ort = loading.build_tracker_from_config(config, model=rec_ort, device="cpu")
    t_torch.init(frames[0], box)
    t_ort.init(frames[0], box)
    for i, image in enumerate(frames[1:n + 1]):
        a = t_torch.track(image)
        b = t_ort.track(image)
        if i == 0:
            # Same state, same crop: the raw head outputs on a real image match.
            for (k, va), vb in zip(rec_torch.first.items(), rec_ort.first.values()):
                assert _scale_diff(vb, va) <= REL_TOL, k
            for va, vb in zip(torch.utils._pytree.tree_leaves(rec_torch.state), rec_ort.state):
                assert _scale_diff(vb, va.numpy()) <= REL_TOL
        assert np.max(np.abs(a.box - b.box)) <= BOX_TOL, (i, a.box, b.box)
        assert abs(a.score - b.score) <= SCORE_TOL, (i, a.score, b.score)
        assert a.state == b.state
        assert a.confidence_map.shape == b.confidence_map.shape


def test_export_metadata_and_cache(exports, tmp_path):
    config, model, directory, meta = exports.get("siamfc")
    files = sorted(os.listdir(directory))
    assert files == ["engine.json", "search.onnx", "template.onnx"]
    assert meta["search"]["inputs"]["x"] == [3, 3, 255, 255]          # scale_num crops
    assert meta["search"]["outputs"] == {"response": [3, 1, 17, 17]}
    assert meta["attributes"]["stride"] == 8 and meta["opset"] == export.DEFAULT_OPSET
    import onnx
    for f in ("template.onnx", "search.onnx"):
        onnx.checker.check_model(os.path.join(directory, f))
    # Same weights: reused (not rewritten); other weights: exported again.
    mtime = os.path.getmtime(os.path.join(directory, "search.onnx"))
    again, meta2 = export.ensure_exported(model, config, directory=directory)
    assert again == directory and meta2["key"] == meta["key"]
    assert os.path.getmtime(os.path.join(directory, "search.onnx")) == mtime
    other = registry.build_model(config["model"])
    with torch.no_grad():
        other.bias.fill_(0.5)
    d2, meta3 = export.ensure_exported(other, config, cache_dir=str(tmp_path))
    assert meta3["key"] != meta["key"] and Path(d2).parent == tmp_path
    engine = OnnxRuntimeEngine(d2)
    z, x = export.example_inputs(config, other, seed=5)
    with torch.inference_mode():
        ref = other.track(other.template(z), x)["response"].numpy()
    assert _scale_diff(engine.track(engine.template(z), x)["response"].numpy(), ref) <= REL_TOL
    # The torch model is left in eval mode (the exporter must not flip it to training).
    assert not model.training and not other.training


def test_onnx_engine_rejects_wrong_shapes_and_foreign_state(exports):
    _, _, directory, _ = exports.get("siamfc")
    engine = OnnxRuntimeEngine(directory)
    state = engine.template(np.zeros((1, 3, 127, 127), np.float32))
    with pytest.raises(ValueError, match="search_batch=1"):
        engine.track(state, torch.zeros(1, 3, 255, 255))
    with pytest.raises(ValueError, match="template input"):
        engine.template(torch.zeros(1, 3, 100, 100))
    with pytest.raises(ValueError, match="state"):
        engine.track(torch.zeros(1, 256, 6, 6), torch.zeros(3, 3, 255, 255))
    assert engine.to("cuda") is engine and engine.eval() is engine
    assert engine.exemplar_size == 127 and engine.stride == 8
    assert engine.active_providers[-1] == "CPUExecutionProvider"


def test_export_folder_errors(tmp_path):
    with pytest.raises(export.ExportError, match="engine.json"):
        OnnxRuntimeEngine(str(tmp_path))
    with pytest.raises(ValueError, match="needs the model or an export folder"):
        wrap_engine(None, {}, "onnxruntime")


def test_providers():
    assert resolve_providers(None, "cpu") == ["CPUExecutionProvider"]
    assert resolve_providers(["cpu"]) == ["CPUExecutionProvider"]
    auto = resolve_providers(None, "auto")
    assert auto[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="onnxruntime-gpu"):
            resolve_providers(None, "cuda")
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="not available"):
            resolve_providers(["tensorrt"])


def test_session_threads_do_not_spin_unless_asked():
    """Spinning idle threads starve the tracker's OpenCV crop between two runs
    (docs/DEPLOYMENT.md): off unless the engine options ask for it."""
    key = "session.intra_op.allow_spinning"
    assert session_options(threads=2).get_session_config_entry(key) == "0"
    assert session_options(threads=2, allow_spinning=False).get_session_config_entry(key) == "0"
    assert session_options(threads=2, allow_spinning=True).get_session_config_entry(key) == "1"


# --------------------------------------------------------------------------- torch engine
def test_torch_engine_matches_model_and_restores_threads():
    torch.manual_seed(0)
    config, model, _ = registry.load_model("siamfc")
    model.eval()
    z, x = export.example_inputs(config, model)
    with torch.inference_mode():
        ref = model.track(model.template(z), x)["response"]
    before = torch.get_num_threads()
    engine = TorchEngine(model, device="cpu", channels_last=True, threads=1)
    assert engine.exemplar_size == 127 and engine.stride == 8 and is_engine(engine)
    out = engine.track(engine.template(z), x)["response"]
    assert torch.get_num_threads() == before
    assert _scale_diff(out.numpy(), ref.numpy()) <= 1e-4
    with pytest.raises(AttributeError):
        engine.no_such_attribute


def test_torch_engine_cpu_guards():
    torch.manual_seed(0)
    config, model, _ = registry.load_model("siamfc")
    z, x = export.example_inputs(config, model)
    engine = TorchEngine(model, device="cpu", fp16=True, compile=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = engine.track(engine.template(z), x)
    messages = " ".join(str(w.message) for w in caught)
    assert "fp16 is for CUDA" in messages and "compile skipped" in messages
    assert not engine.compiled and out["response"].dtype == torch.float32


def test_registry_engine_keyword_and_wrap_engine(exports, crossing):
    frames, box = crossing
    assert canonical_engine(None) == "torch" and canonical_engine("ORT") == "onnxruntime"
    with pytest.raises(ValueError, match="unknown engine"):
        canonical_engine("tensorflow")
    assert tracker_device("onnxruntime", "cuda") == "cpu" and tracker_device("torch", "cuda") == "cuda"
    config, model, directory, _ = exports.get("siamfc")
    with pytest.raises(ValueError, match="unknown option"):
        wrap_engine(model, config, "torch", providers=["cpu"])
    tracker = loading.build_tracker("siamfc", device="cpu", engine="onnxruntime", allow_untrained=True,
                                     engine_options={"onnx_dir": directory, "threads": 1})
    assert isinstance(tracker.model, OnnxRuntimeEngine) and tracker.device.type == "cpu"
    torch_tracker = loading.build_tracker("siamfc", device="cpu", engine="torch", allow_untrained=True,
                                           engine_options={"threads": 1})
    assert isinstance(torch_tracker.model, TorchEngine)
    # An engine passed as the model is used as is (one engine shared by trackers).
    engine = wrap_engine(model, config, "onnxruntime", onnx_dir=directory)
    assert wrap_engine(engine, config, "torch") is engine
    tracker.init(frames[0], box)
    assert tracker.track(frames[1]).box.shape == (4,)
    plain = loading.build_tracker("siamfc", device="cpu", allow_untrained=True)
    assert isinstance(plain.model, torch.nn.Module)       # engine=None: unchanged


# --------------------------------------------------------------------------- CLI
def test_siam_export_cli(tmp_path, capsys):
    from siam_tracker_ros.cli.export import main
    out = tmp_path / "rasnet"
    assert main(["rasnet", "--allow-untrained", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "template.onnx" in text and "onnxruntime vs PyTorch" in text
    assert sorted(os.listdir(out)) == ["engine.json", "search.onnx", "template.onnx"]
    assert main(["no_such_model"]) == 2


def test_siam_export_bench_smoke(tmp_path, sequences_dir, capsys):
    from siam_tracker_ros.cli.export import main
    rc = main(["--bench", "--allow-untrained", "--models", "rasnet", "--threads", "1", "--frames", "2", "--warmup", "0",
               "--rounds", "1", "--sequences", "OTB_Crossing", "--cache-dir", str(tmp_path / "cache"),
               "--out", str(tmp_path / "bench")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| rasnet | torch | 1 |" in text and "| rasnet | onnxruntime | 1 |" in text
    assert (tmp_path / "bench" / "bench.json").is_file()
