"""int8 copies of an ONNX export (onnxruntime's dynamic quantization), for the int8 question
of issue 15: is it accurate enough to offer?

    folder_int8 = int8_copy(folder)          # template.onnx + search.onnx quantized, engine.json

Dynamic quantization: weights stored as int8 (per tensor, symmetric), activations quantized
per call from their observed range, so no calibration data is needed; on the CPU onnxruntime
runs the convolutions and matrix products as ConvInteger / MatMulInteger. The copy sits beside
the fp32 export (`<folder>-int8`) and is rebuilt when the fp32 export's key changes.
Measured (siam-eval, siam-bench with `NAME@onnxruntime-int8`): docs/DEPLOYMENT.md.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

from .export import META_FILE, ExportError, read_meta


def int8_copy(directory: str) -> str:
    """The folder of the int8 copy of the export in `directory` (made when missing or stale)."""
    meta = read_meta(directory)
    out = os.path.abspath(directory).rstrip(os.sep) + "-int8"
    try:
        existing = read_meta(out)
        if existing.get("key") == meta.get("key") and existing.get("precision") == "int8":
            return out
    except (ExportError, OSError, ValueError, KeyError):
        pass
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ImportError("int8 needs onnxruntime's quantization tools (pip install onnxruntime onnx)") from exc
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".int8-", dir=parent)
    try:
        for part in ("template", "search"):
            name = meta[part]["file"]
            quantize_dynamic(os.path.join(directory, name), os.path.join(tmp, name), weight_type=QuantType.QInt8)
        with open(os.path.join(tmp, META_FILE), "w") as f:
            json.dump(dict(meta, precision="int8", quantization="onnxruntime quantize_dynamic, QInt8 weights"),
                      f, indent=1)
        os.makedirs(out, exist_ok=True)
        for name in os.listdir(tmp):
            os.replace(os.path.join(tmp, name), os.path.join(out, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
