"""Results files: JSON (everything), CSV (per sequence and overall), Markdown table."""
from __future__ import annotations

import csv
import datetime
import json
import os
import platform
from typing import Any, Dict, List, Optional

import numpy as np

OPE_COLUMNS = [("auc", "AUC"), ("precision20", "P@20px"), ("norm_precision20", "Pnorm@0.20"),
               ("ao", "AO"), ("sr50", "SR0.5"), ("sr75", "SR0.75"), ("fps", "FPS")]
VOT_COLUMNS = [("accuracy", "Accuracy"), ("robustness", "Robustness (fail/100 fr)"),
               ("failures", "Failures"), ("fps", "FPS")]
CONVENTIONS = {
    "ope": ("AUC: mean of the OPE success curve, IoU > t for t = 0, 0.05, ..., 1 (21 points), "
            "frame 0 included, mean over sequences. P@20px: centre error <= 20 px. "
            "Pnorm@0.20: centre error divided by the ground-truth size per axis <= 0.20 "
            "(LaSOT/pysot). AO / SR0.5 / SR0.75: GOT-10k style, frame 0 excluded, IoUs of all "
            "sequences pooled (frame-weighted). FPS: tracked frames / time in track() "
            "(initialisation and image decoding excluded)."),
    "vot": ("VOT reset protocol: failure = overlap 0, re-initialisation 5 frames later; "
            "Accuracy: mean IoU without the 10 burn-in frames after each (re-)initialisation; "
            "Robustness: failures per 100 frames (pysot); FPS: tracked frames / time in track()."),
}


def machine_info() -> Dict[str, Any]:
    """CPU model, core count, OS, library versions, GPU when present."""
    info: Dict[str, Any] = {"cores": os.cpu_count(), "platform": platform.platform(),
                            "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        info["cpu"] = platform.processor() or "unknown"
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    import cv2
    import numpy
    import torch
    info["torch"] = torch.__version__
    info["opencv"] = cv2.__version__
    info["numpy"] = numpy.__version__
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    try:
        from .. import __version__ as pkg_version
        info["siam_tracker_ros"] = pkg_version
    except ImportError:
        pass
    return info


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return None if not np.isfinite(v) else v
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _fmt(value, key: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    if key == "fps":
        return f"{value:.1f}"
    if key == "failures":
        return f"{int(value)}"
    if key == "robustness":
        return f"{value:.2f}"
    return f"{value:.3f}"


def columns_for(protocol: str):
    return OPE_COLUMNS if protocol == "ope" else VOT_COLUMNS


def markdown_table(scored: Dict[str, Dict], protocol: str = "ope",
                   notes: Optional[Dict[str, str]] = None) -> str:
    """Overall table, best AUC (or accuracy) first; `notes` adds a weights column."""
    cols = columns_for(protocol)
    key = "auc" if protocol == "ope" else "accuracy"
    order = sorted(scored, key=lambda k: -np.nan_to_num(scored[k]["overall"].get(key, np.nan), nan=-1))
    header = ["Tracker"] + [c[1] for c in cols] + (["Weights"] if notes else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in order:
        o = scored[name]["overall"]
        row = [name + ("" if o.get("complete", True) else " (incomplete)")]
        row += [_fmt(o.get(k), k) for k, _ in cols]
        if notes:
            row.append(notes.get(name, ""))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def markdown_sequence_table(scored: Dict[str, Dict], protocol: str = "ope") -> str:
    """Per-sequence AUC (or accuracy) per tracker."""
    key = "auc" if protocol == "ope" else "accuracy"
    names = list(scored)
    seqs: List[str] = []
    for v in scored.values():
        for s in v["sequences"]:
            if s not in seqs:
                seqs.append(s)
    header = ["Sequence"] + names
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in seqs:
        row = [s] + [_fmt(scored[n]["sequences"].get(s, {}).get(key), key) for n in names]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_reports(scored: Dict[str, Dict], out_dir: str, protocol: str, meta: Dict[str, Any],
                  notes: Optional[Dict[str, str]] = None, skipped: Optional[Dict[str, str]] = None,
                  errors: Optional[Dict[str, Dict[str, str]]] = None) -> Dict[str, str]:
    """results.json, results_overall.csv, results_per_sequence.csv, results.md in out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    cols = columns_for(protocol)
    paths = {"json": os.path.join(out_dir, "results.json"),
             "overall_csv": os.path.join(out_dir, "results_overall.csv"),
             "sequence_csv": os.path.join(out_dir, "results_per_sequence.csv"),
             "markdown": os.path.join(out_dir, "results.md")}
    trackers = {}
    for name, v in scored.items():
        seqs = {s: {k: val for k, val in m.items() if k not in ("got10k_ious", "overlaps")}
                for s, m in v["sequences"].items()}
        trackers[name] = {"weights": (notes or {}).get(name), "overall": v["overall"], "sequences": seqs}
    doc = {"meta": meta, "protocol": protocol, "conventions": CONVENTIONS[protocol],
           "trackers": trackers, "skipped": skipped or {}, "errors": errors or {}}
    with open(paths["json"], "w") as f:
        json.dump(_jsonable(doc), f, indent=1)
    with open(paths["overall_csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tracker", "sequences"] + [k for k, _ in cols] + ["weights"])
        for name, v in scored.items():
            o = v["overall"]
            w.writerow([name, o.get("sequences")] + [_csv(o.get(k)) for k, _ in cols]
                       + [(notes or {}).get(name, "")])
    with open(paths["sequence_csv"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tracker", "sequence", "frames"] + [k for k, _ in cols])
        for name, v in scored.items():
            for s, m in v["sequences"].items():
                w.writerow([name, s, m.get("frames")] + [_csv(m.get(k)) for k, _ in cols])
    md = [f"# Tracking results ({protocol.upper()})", "",
          f"- date: {meta.get('date')}", f"- dataset: {meta.get('dataset')} "
          f"({meta.get('sequences')} sequences)",
          f"- command: `{meta.get('command')}`",
          f"- machine: {meta.get('machine', {}).get('cpu')} x{meta.get('machine', {}).get('cores')}, "
          f"torch {meta.get('machine', {}).get('torch')}, OpenCV {meta.get('machine', {}).get('opencv')}",
          "", markdown_table(scored, protocol, notes), "", CONVENTIONS[protocol], "",
          "## Per sequence", "", markdown_sequence_table(scored, protocol)]
    if skipped:
        md += ["## Skipped trackers", ""] + [f"- {k}: {v}" for k, v in skipped.items()] + [""]
    if errors:
        md += ["## Failed runs", ""] + [f"- {k} / {s}: {e.splitlines()[0]}"
                                        for k, d in errors.items() for s, e in d.items()] + [""]
    with open(paths["markdown"], "w") as f:
        f.write("\n".join(md))
    return paths


def _csv(value):
    if value is None:
        return ""
    if isinstance(value, float) and not np.isfinite(value):
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return value


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
