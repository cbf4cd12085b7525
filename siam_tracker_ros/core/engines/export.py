"""ONNX export of a model as two graphs: template.onnx and search.onnx.

Why two graphs (NanoTrack's approach): the correlation layers use the template
features as convolution *weights* (SiamFC's cross-correlation, depthwise and
pixel-wise xcorr). A single graph z, x -> outputs would recompute the template
branch every frame, and exporting it with the template as a runtime conv weight
and a batch-dependent `groups` breaks (pysot issue 125). So:

    template.onnx   z (1x3xExE float BGR 0..255)  ->  state_0 ... state_{n-1}
                    the template state's tensors, flattened in torch.utils._pytree
                    order (a tensor, a tuple, {"kernels": [{"cls", "loc"}, ...]} ...)
    search.onnx     state_0 ... state_{n-1}, x (Bx3xIxI)  ->  the head outputs, one
                    ONNX output per tensor of model.track()'s dict, named by its key
                    ("response" for SiamFC/RASNet, "cls" and "loc" otherwise)

Shapes are fixed (batch 1 template; search batch B = the tracker's crops per
frame: scale_num for the siamfc tracker, 1 otherwise): the depthwise
correlations fold the batch into `groups`, which ONNX needs as a constant.

engine.json beside them records the input/output names and shapes, the model
attributes the trackers read (exemplar_size, instance_size, stride, anchor_num
...), the config and a cache key (config + weights + torch version + opset +
exporter), so a folder can be reused for the same weights and rebuilt when
they change (`ensure_exported`).

Exporter: torch.onnx.export(dynamo=False) (the TorchScript-based exporter)
by default: it needs only `onnx`, and exports a ResNet-50 model in seconds.
exporter="dynamo" uses the torch.export-based one (needs `onnxscript`; about
20x slower to export here, same graphs for these models).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils import _pytree as pytree

META_FILE = "engine.json"
TEMPLATE_FILE = "template.onnx"
SEARCH_FILE = "search.onnx"
FORMAT = "siam_tracker_ros/onnx-pair-v1"
DEFAULT_OPSET = 17
# Model attributes the trackers read (hasattr / getattr); copied into engine.json.
MODEL_ATTRIBUTES = ("stride", "exemplar_size", "instance_size", "score_size", "anchor_num",
                    "output_type", "cls_out_channels")


class ExportError(RuntimeError):
    """The model cannot be exported / the export folder is unusable."""


# --------------------------------------------------------------------------- shapes
def crop_sizes(config: Dict[str, Any], model: Optional[torch.nn.Module] = None) -> Tuple[int, int]:
    """(exemplar, instance) crop sizes: tracker config, else model attributes, else 127/255."""
    tracker = config.get("tracker", {}) or {}
    sizes = []
    for key, default in (("exemplar_size", 127), ("instance_size", 255)):
        value = tracker.get(key)
        if value is None and model is not None:
            value = getattr(model, key, None)
        sizes.append(int(value if value is not None else default))
    return sizes[0], sizes[1]


def search_batch_for(config: Dict[str, Any]) -> int:
    """Search crops per frame the config's tracker sends: scale_num (siamfc) or 1."""
    tracker = config.get("tracker", {}) or {}
    if tracker.get("type") == "siamfc":
        return int(tracker.get("scale_num", 3))
    return 1


def example_inputs(config: Dict[str, Any], model: Optional[torch.nn.Module] = None,
                   search_batch: Optional[int] = None, seed: int = 0):
    """(z, x): deterministic random float tensors in 0..255 of the export shapes."""
    e, i = crop_sizes(config, model)
    b = search_batch if search_batch is not None else search_batch_for(config)
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(1, 3, e, e, generator=g) * 255.0
    x = torch.rand(b, 3, i, i, generator=g) * 255.0
    return z, x


# --------------------------------------------------------------------------- wrappers
class TemplatePart(torch.nn.Module):
    """z -> the template state's tensors (pytree leaves)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor):
        leaves, _ = pytree.tree_flatten(self.model.template(z))
        return tuple(leaves)


class SearchPart(torch.nn.Module):
    """(*state tensors, x) -> head outputs in `keys` order."""

    def __init__(self, model: torch.nn.Module, spec, keys: Sequence[str]):
        super().__init__()
        self.model = model
        self.spec = spec
        self.keys = list(keys)

    def forward(self, *inputs):
        state = pytree.tree_unflatten(list(inputs[:-1]), self.spec)
        out = self.model.track(state, inputs[-1])
        return tuple(out[k] for k in self.keys)


def _flatten_state(state) -> Tuple[List[torch.Tensor], Any]:
    leaves, spec = pytree.tree_flatten(state)
    bad = [type(v).__name__ for v in leaves if not isinstance(v, torch.Tensor)]
    if bad:
        raise ExportError(f"the template state holds non-tensor leaves ({', '.join(bad)}): "
                          "only tensors can cross the template/search boundary")
    return leaves, spec


def _spec_text(spec) -> str:
    """The state's tree structure, for reading only (the engine does not need it)."""
    try:
        return pytree.treespec_dumps(spec)
    except Exception:   # noqa: BLE001 - a container type pytree cannot serialise
        return str(spec)


def _tensor_keys(out: Dict[str, Any]) -> List[str]:
    if not isinstance(out, dict):
        raise ExportError(f"model.track() must return a dict, got {type(out).__name__}")
    keys = [k for k, v in out.items() if isinstance(v, torch.Tensor)]
    if not keys:
        raise ExportError("model.track() returned no tensors")
    return keys


# --------------------------------------------------------------------------- cache key
def weights_digest(model: torch.nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes, values)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.dtype == torch.bfloat16:
            t = t.float()
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _jsonable_config(config: Dict[str, Any]) -> Dict[str, Any]:
    return {k: config.get(k) for k in ("name", "model", "tracker")}


def export_key(model: torch.nn.Module, config: Dict[str, Any], search_batch: int,
               opset: int, exporter: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "config": _jsonable_config(config), "batch": search_batch,
                         "sizes": crop_sizes(config, model), "opset": opset, "exporter": exporter,
                         "torch": torch.__version__}, sort_keys=True, default=str).encode())
    h.update(weights_digest(model).encode())
    return h.hexdigest()[:32]


def read_meta(directory: str) -> Dict[str, Any]:
    path = os.path.join(directory, META_FILE)
    if not os.path.isfile(path):
        raise ExportError(f"{directory} holds no {META_FILE}: not an exported engine folder "
                          "(export one with `siam-export MODEL --out DIR`)")
    with open(path) as f:
        meta = json.load(f)
    if meta.get("format") != FORMAT:
        raise ExportError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    for part in ("template", "search"):
        f = os.path.join(directory, meta[part]["file"])
        if not os.path.isfile(f):
            raise ExportError(f"{f} is missing")
    return meta


# --------------------------------------------------------------------------- export
def probe_structure(model: torch.nn.Module, z: torch.Tensor, x: torch.Tensor):
    """(state tree spec, state leaf shapes, output keys, {key: shape}) of model on (z, x).

    Runs the model on fake tensors (shapes only, no arithmetic: a ResNet-50
    model takes seconds instead of a real forward pass); falls back to a real
    forward pass if the fake-tensor run fails.
    """
    def run(z_, x_):
        state = model.template(z_)
        leaves, spec = _flatten_state(state)
        out = model.track(state, x_)
        keys = _tensor_keys(out)
        return spec, [tuple(v.shape) for v in leaves], keys, {k: tuple(out[k].shape) for k in keys}

    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
        with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as mode:
            return run(mode.from_tensor(z), mode.from_tensor(x))
    except ExportError:
        raise
    except Exception:   # noqa: BLE001 - an op without a fake kernel, an API change ...
        with torch.inference_mode():
            return run(z, x)


@contextlib.contextmanager
def _quiet_export():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        yield


def _export_one(module: torch.nn.Module, args: tuple, path: str, input_names, output_names,
                opset: int, exporter: str) -> None:
    if exporter == "torchscript":
        with _quiet_export():
            torch.onnx.export(module, args, path, dynamo=False, opset_version=opset,
                              input_names=list(input_names), output_names=list(output_names),
                              do_constant_folding=True)
    elif exporter == "dynamo":
        try:
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise ExportError("exporter='dynamo' needs the onnxscript package "
                              "(pip install onnxscript); the default 'torchscript' does not") from exc
        with _quiet_export(), contextlib.redirect_stdout(io.StringIO()):
            # The torch.export-based exporter writes opset 18 or later.
            program = torch.onnx.export(module, args, dynamo=True, opset_version=max(opset, 18),
                                        input_names=list(input_names),
                                        output_names=list(output_names))
            program.save(path, external_data=False)
    else:
        raise ValueError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}")


def export_model(model: torch.nn.Module, config: Dict[str, Any], out_dir: str,
                 search_batch: Optional[int] = None, opset: int = DEFAULT_OPSET,
                 exporter: str = "torchscript", verify: bool = True,
                 key: Optional[str] = None) -> Dict[str, Any]:
    """Write template.onnx, search.onnx and engine.json into `out_dir`; return the metadata.

    The model is moved to the CPU and put in eval mode (in place). With
    `verify` (needs onnxruntime) the two graphs are run on the example inputs
    and meta["verify"] gets the largest absolute and relative differences
    against PyTorch per output.
    """
    model = model.to("cpu").eval()
    batch = int(search_batch if search_batch is not None else search_batch_for(config))
    z, x = example_inputs(config, model, batch)
    t0 = time.perf_counter()
    spec, leaf_shapes, keys, out_shapes = probe_structure(model, z, x)
    state_names = [f"state_{i}" for i in range(len(leaf_shapes))]
    # Search-part trace inputs: any values of the right shapes (the graphs have no
    # data-dependent control flow; shapes are all the trace records).
    g = torch.Generator().manual_seed(1)
    leaves_in = tuple(torch.rand(s, generator=g) for s in leaf_shapes)
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=out_dir)
    try:
        # The wrappers go in eval mode: the exporter restores the mode of the module
        # it is given, recursively, and a fresh wrapper would put the model in training.
        with torch.no_grad():
            _export_one(TemplatePart(model).eval(), (z,), os.path.join(tmp, TEMPLATE_FILE), ["z"],
                        state_names, opset, exporter)
            _export_one(SearchPart(model, spec, keys).eval(), leaves_in + (x,), os.path.join(tmp, SEARCH_FILE),
                        state_names + ["x"], keys, opset, exporter)
        meta = {
            "format": FORMAT,
            "name": config.get("name"),
            "key": key or export_key(model, config, batch, opset, exporter),
            "exporter": exporter, "opset": max(opset, 18) if exporter == "dynamo" else opset,
            "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "export_seconds": round(time.perf_counter() - t0, 2),
            "weights": config.get("_weights"),
            "config": _jsonable_config(config),
            "attributes": {a: getattr(model, a) for a in MODEL_ATTRIBUTES
                           if isinstance(getattr(model, a, None), (int, float, str))},
            "state_tree": _spec_text(spec),
            "template": {"file": TEMPLATE_FILE, "inputs": {"z": list(z.shape)},
                         "outputs": {n: list(s) for n, s in zip(state_names, leaf_shapes)}},
            "search": {"file": SEARCH_FILE,
                       "inputs": dict([(n, list(s)) for n, s in zip(state_names, leaf_shapes)]
                                      + [("x", list(x.shape))]),
                       "outputs": {k: list(out_shapes[k]) for k in keys}},
        }
        if verify:
            meta["verify"] = verify_export(tmp, meta, model, z, x)
        with open(os.path.join(tmp, META_FILE), "w") as f:
            json.dump(meta, f, indent=1)
        for name in (TEMPLATE_FILE, SEARCH_FILE, META_FILE):
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    finally:
        model.eval()
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def verify_export(directory: str, meta: Dict[str, Any], model: torch.nn.Module,
                  z: torch.Tensor, x: torch.Tensor) -> Dict[str, Dict[str, float]]:
    """Run PyTorch and both graphs (onnxruntime, CPU) on (z, x); per state tensor
    and output: max abs difference and that relative to the output's scale."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}
    with torch.inference_mode():
        state = model.template(z)
        out = model.track(state, x)
    state_ref = [v.float().numpy() for v in pytree.tree_leaves(state)]
    keys = list(meta["search"]["outputs"])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    tpl = ort.InferenceSession(os.path.join(directory, meta["template"]["file"]), so, providers=providers)
    srch = ort.InferenceSession(os.path.join(directory, meta["search"]["file"]), so, providers=providers)
    ort_state = tpl.run(None, {"z": z.numpy().astype(np.float32)})
    feeds = {f"state_{i}": s for i, s in enumerate(ort_state)}
    feeds["x"] = x.numpy().astype(np.float32)
    outs = srch.run(keys, feeds)
    report = {}
    for i, (a, b) in enumerate(zip(ort_state, state_ref)):
        report[f"state_{i}"] = compare(a, b)
    for k, a in zip(keys, outs):
        report[k] = compare(a, out[k].float().numpy())
    return report


def compare(a: np.ndarray, b: np.ndarray) -> Dict[str, float]:
    """max |a - b| and that divided by max(1, max |b|) (the output's scale)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        return {"max_abs": float("inf"), "rel": float("inf"), "scale": float("nan")}
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    return {"max_abs": diff, "rel": diff / scale, "scale": scale}


def ensure_exported(model: torch.nn.Module, config: Dict[str, Any], directory: Optional[str] = None,
                    cache_dir: Optional[str] = None, search_batch: Optional[int] = None,
                    opset: int = DEFAULT_OPSET, exporter: str = "torchscript",
                    verify: bool = False) -> Tuple[str, Dict[str, Any]]:
    """(folder, metadata) of an export of `model` that matches its current weights.

    `directory`: use (and if stale, rewrite) this folder. Otherwise a folder
    named by the cache key under `cache_dir` (default $SIAM_TRACKER_ONNX_CACHE,
    else ~/.cache/siam_tracker_ros/onnx) is reused or created.
    """
    batch = int(search_batch if search_batch is not None else search_batch_for(config))
    model = model.to("cpu").eval()
    key = export_key(model, config, batch, opset, exporter)
    if directory is None:
        root = cache_dir or default_cache_dir()
        directory = os.path.join(root, f"{config.get('name') or 'model'}-{key[:16]}")
    try:
        meta = read_meta(directory)
        if meta.get("key") == key:
            return directory, meta
    except (ExportError, OSError, ValueError, KeyError):
        pass
    meta = export_model(model, config, directory, search_batch=batch, opset=opset,
                        exporter=exporter, verify=verify, key=key)
    return directory, meta


def default_cache_dir() -> str:
    env = os.environ.get("SIAM_TRACKER_ONNX_CACHE")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "siam_tracker_ros", "onnx")
