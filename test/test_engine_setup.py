"""The node's `engine` + `precision` parameters (core/engines/precision.py): what runs where,
and the reason for what cannot."""
import pytest

from siam_tracker_ros.core.engines import precision


def test_fp32_everywhere_and_threads_for_onnxruntime():
    assert precision.engine_setup("torch", "fp32", "cpu") == ("torch", {})
    assert precision.engine_setup("onnxruntime", "fp32", "cpu", threads=2) == ("onnxruntime", {"threads": 2})


@pytest.mark.parametrize("engine,prec,device,reason", [
    ("torch", "fp16", "cpu", "needs a CUDA device"),
    ("onnxruntime", "fp16", "cpu", "the ONNX export is fp32"),
    ("torch", "int8", "cpu", "int8 is not offered"),
    ("onnxruntime", "int8", "cpu", "int8 is not offered"),
    ("torch", "fp64", "cpu", "unknown precision"),
    ("jax", "fp32", "cpu", "unknown engine"),
])
def test_refused_with_the_reason(engine, prec, device, reason):
    with pytest.raises(ValueError, match=reason):
        precision.engine_setup(engine, prec, device)


def test_torch_fp16_on_cuda_is_autocast(monkeypatch):
    import siam_tracker_ros.core.devices as devices
    monkeypatch.setattr(devices, "resolve_device", lambda device: "cuda:0")
    assert precision.engine_setup("torch", "fp16", "auto") == ("torch", {"fp16": True})


def test_tensorrt_needs_the_provider(monkeypatch):
    monkeypatch.setattr(precision, "_available_providers", lambda: None)
    with pytest.raises(ValueError, match="onnxruntime is not installed"):
        precision.engine_setup("tensorrt", "fp32", "cuda")
    monkeypatch.setattr(precision, "_available_providers", lambda: {"CPUExecutionProvider"})
    with pytest.raises(ValueError, match="TensorrtExecutionProvider.*this onnxruntime has: CPUExecutionProvider"):
        precision.engine_setup("tensorrt", "fp16", "cuda")
    monkeypatch.setattr(precision, "_available_providers",
                        lambda: {"TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"})
    assert precision.engine_setup("tensorrt", "fp16", "cuda") == (
        "onnxruntime", {"providers": [("tensorrt", {"trt_fp16_enable": True}), "cuda"]})
    assert precision.engine_setup("tensorrt", "fp32", "cuda", threads=1) == (
        "onnxruntime", {"threads": 1, "providers": ["tensorrt", "cuda"]})


def test_this_machine_answers_tensorrt_either_way():
    """Where onnxruntime has no TensorRT (the CI machines), the real check refuses it."""
    available = precision._available_providers()
    if available and "TensorrtExecutionProvider" in available:
        pytest.skip("this onnxruntime has TensorRT")
    with pytest.raises(ValueError, match="engine tensorrt needs"):
        precision.engine_setup("tensorrt", "fp32", "auto")


def test_int8_engine_variant_is_a_quantized_copy(tmp_path):
    """`NAME@onnxruntime-int8` (the measurement behind the int8 refusal) runs a dynamic-int8 copy
    of the export, beside the fp32 one."""
    pytest.importorskip("onnxruntime.quantization")
    import numpy as np
    from siam_tracker_ros.core.engines import split_engine_spec
    from siam_tracker_ros.core.tracking.loading import load
    assert split_engine_spec("siamfc@onnxruntime-int8") == ("siamfc", "onnxruntime-int8")
    options = {"threads": 1, "cache_dir": str(tmp_path)}
    import torch
    torch.manual_seed(0)            # siamfc has no weights: the same random network both times
    fp32 = load("siamfc", device="cpu", engine="onnxruntime", engine_options=options, allow_untrained=True)
    torch.manual_seed(0)
    int8 = load("siamfc", device="cpu", engine="onnxruntime-int8", engine_options=options, allow_untrained=True)
    assert int8.model.directory == fp32.model.directory + "-int8"
    assert int8.model.meta["precision"] == "int8" and "precision" not in fp32.model.meta
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    tracker = int8.new_tracker()
    tracker.init(frame, (60, 40, 30, 30))
    assert np.all(np.isfinite(tracker.track(frame).box))
