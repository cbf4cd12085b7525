"""Write docs/BENCHMARKS.md from siam-eval and siam-bench outputs (scripts/benchmarks.sh).

    python -m siam_tracker_ros.evaluation.benchmarks_doc --eval out/benchmarks/eval \\
        --bench out/benchmarks/bench [--vot out/benchmarks/eval_vot] \\
        --images docs/benchmarks --out docs/BENCHMARKS.md
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any, Dict, List, Optional

from . import report, speed
from .metrics import VOT_BURNIN, VOT_SKIP_FRAMES

CONVENTIONS_MD = f"""\
## Metric conventions

Every number above follows these definitions (implemented in
`siam_tracker_ros/evaluation/metrics.py`, tested on hand-computed cases in
`test/test_metrics.py`):

| Metric | Definition | As in |
|---|---|---|
| AUC (success) | per frame IoU; success at t = IoU **>** t for t = 0, 0.05, ..., 1.0 (21 points); AUC = mean of the 21 points; frame 0 (ground-truth initialisation) included; overall = mean over sequences | pysot `success_overlap`, got10k `ExperimentOTB` |
| P@20px | centre distance **<=** 20 px (curve 0..50 px); overall = mean over sequences | OTB, pysot, got10k |
| Pnorm@0.20 | centre distance with x divided by the ground-truth width and y by its height, **<=** 0.20 (curve 0..0.50) | LaSOT / TrackingNet, pysot `eval_norm_precision` |
| AO, SR0.5, SR0.75 | mean IoU; fraction of frames with IoU > 0.5 / > 0.75; frame 0 **excluded**; IoUs of all sequences pooled (frame-weighted); boxes clipped to the image on the GOT-10k layout | got10k `ExperimentGOT10k` |
| VOT accuracy / robustness | failure = overlap 0 (boxes clipped to the image), re-initialisation {VOT_SKIP_FRAMES} frames later; accuracy = mean overlap without the {VOT_BURNIN} burn-in frames after each (re-)initialisation, failure and skipped frames; robustness = failures per 100 frames | pysot `AccuracyRobustnessBenchmark`, VOT2016-2019 baseline |
| FPS (siam-eval) | tracked frames / summed wall time of `track()` (initialisation and image decoding excluded), overall = all frames / all time; measured while the worker processes run in parallel | got10k records per-frame times the same way |
| ms/frame (siam-bench) | median and 90th percentile of `track()` wall time over the timed frames after a warm-up, one configuration at a time in a fresh process; crop / network / post from `TrackResult.timing` | - |

Frames without a target: a ground-truth row with NaN (UAV123) or a width or
height not > 0 is invalid; datasets can flag absent frames (LaSOT
full_occlusion / out_of_view, GOT-10k absence / cover = 0). The default
(`--absent exclude`, got10k toolkit) drops them from every metric;
`--absent pysot` reproduces pysot (invalid and absent frames count as
failures in the success curve; absent frames are failures in precision, while
pysot scores invalid ground truth as a precision *success*). GOT-10k AO/SR
always exclude them. The 7 shared sequences have no such frames, so both
policies give the same numbers here.
"""


def _load(path: str) -> Optional[Dict[str, Any]]:
    if path and os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return None


def _machine_line(m: Dict[str, Any]) -> str:
    parts = [f"{m.get('cpu', 'unknown CPU')}, {m.get('cores')} cores", m.get("platform", "")]
    if m.get("gpu"):
        parts.append(f"GPU {m['gpu']} (CUDA {m.get('cuda')})")
    else:
        parts.append("no GPU")
    vers = f"Python {m.get('python')}, torch {m.get('torch')}, OpenCV {m.get('opencv')}, numpy {m.get('numpy')}"
    load = m.get("load_average")
    load_s = f"; 1/5/15-min load average at the start: {', '.join(str(v) for v in load)}" if load else ""
    return "; ".join(p for p in parts if p) + f"; {vers}{load_s}"


def _eval_section(doc: Dict[str, Any], title: str, images: Optional[str], image_rel: Optional[str]) -> List[str]:
    meta = doc["meta"]
    protocol = doc["protocol"]
    complete = {k: v for k, v in doc["trackers"].items() if v["overall"].get("complete", True)}
    partial = {k: v for k, v in doc["trackers"].items() if k not in complete}
    scored = {k: {"overall": v["overall"], "sequences": v["sequences"]} for k, v in complete.items()}
    notes = {k: _label_weights(v.get("weights") or "") for k, v in complete.items()}
    lines = [f"## {title}", "",
             f"- command: `{meta['command']}`",
             f"- date: {meta['date']}",
             f"- data: {meta['sequences']} sequences ({', '.join(meta.get('sequence_names', []))})"
             + (f", first {meta['max_frames']} frames of each" if meta.get("max_frames") else ", all frames"),
             f"- machine: {_machine_line(meta['machine'])}",
             f"- {meta.get('workers')} worker processes x {meta.get('threads')} thread(s), device {meta.get('device')}; "
             f"absent-frame policy: {meta.get('absent_policy')}; the FPS column is measured while the workers "
             "share the cores (see siam-bench below for speed)"]
    if meta.get("ran") == 0 and meta.get("from_cache"):
        lines.append("- every result came from the cache of earlier runs with the same trackers (identity: "
                     "config, weights hash, code), data and settings; `--cache-only` only reports them")
    lines += ["",
             report.markdown_table(scored, protocol, notes), ""]
    if protocol == "ope" and images and image_rel:
        lines += [f"![success plot]({image_rel}/success_plot.png) "
                  f"![precision plot]({image_rel}/precision_plot.png)", ""]
    lines += ["Per sequence (" + ("AUC" if protocol == "ope" else "accuracy") + "):", "",
              report.markdown_sequence_table(scored, protocol), ""]
    if partial:
        lines += ["Not in the table (unfinished when this file was generated; mean numbers over a "
                  "subset of the sequences would not compare):", ""]
        for k, v in partial.items():
            done = ", ".join(f"{s} {m['auc']:.3f}" if protocol == "ope" else s
                             for s, m in v["sequences"].items())
            lines.append(f"- {k} ({_label_weights(v.get('weights') or '')}): {len(v['sequences'])} of "
                         f"{meta['sequences']} sequences done" + (f" (AUC: {done})" if done else ""))
        lines.append("")
    never = {k: v for k, v in (meta.get("missing") or {}).items() if k not in doc["trackers"]}
    if never:
        lines += ["Not run yet (no cached results when this file was generated):", ""]
        lines += [f"- {k}: 0 of {meta['sequences']} sequences" for k in never] + [""]
    if doc.get("skipped"):
        lines += ["Not evaluated:", ""] + [f"- {k}: {v}" for k, v in doc["skipped"].items()] + [""]
    if doc.get("errors"):
        lines += ["Failed runs:", ""] + [f"- {k} / {s}: {e.splitlines()[0]}"
                                         for k, d in doc["errors"].items() for s, e in d.items()] + [""]
    return lines


def _label_weights(note: str) -> str:
    if note.startswith("none"):
        return "**untrained** (random init, seed 0)"
    return note


def _bench_section(doc: Dict[str, Any]) -> List[str]:
    meta = doc["meta"]
    results = [speed.BenchResult(**r) for r in doc["results"]]
    for r in results:
        if r.weights.startswith("none"):
            r.weights = "untrained"
    lines = ["## Speed and memory (siam-bench)", "",
             f"- command: `{meta['command']}`",
             f"- date: {meta['date']}",
             f"- frames: {meta['frames']}; {meta['timed_frames']} timed frames after {meta['warmup']} warm-up frames",
             f"- machine: {_machine_line(meta['machine'])}",
             "- CUDA rows: " + ("measured" if meta.get("cuda") else
                                "none — no GPU on this machine (`siam-bench` adds CUDA fp32 and fp16-autocast rows where one is present)"),
             "", speed.markdown_table(results), ""]
    load = (meta.get("machine") or {}).get("load_average")
    cores = (meta.get("machine") or {}).get("cores") or 1
    if load and load[0] > cores:
        lines += [f"The load average ({load[0]}) at the start was above the core count ({cores}): other "
                  "jobs shared the cores, so every time here is inflated, and the 2-thread rows can be slower "
                  "than the 1-thread rows (a second thread mostly waits for a core).", ""]
    lines += ["crop / network / post: the tracker's own `TrackResult.timing` split ('-' where it gives none: "
             "the OpenCV peers report the total only). Peak memory: resident-set growth from building the "
             "tracker to the end of tracking (CPU) or `torch.cuda.max_memory_allocated` (GPU).", ""]
    if doc.get("skipped"):
        lines += ["Skipped:", ""] + [f"- {k}: {v}" for k, v in doc["skipped"].items()] + [""]
    if doc.get("failed_configurations"):
        lines += ["Failed configurations:", ""] + [f"- {k}: {v}" for k, v in doc["failed_configurations"].items()] + [""]
    return lines


USAGE_MD = """\
## Evaluating on other data

```
siam-eval --dataset ~/data/OTB100 --trackers nanotrack work_dirs/run1/best.pt opencv-csrt \\
          --out out/eval_otb                      # layout detected; --format to force it
siam-eval --dataset ~/data/VOT2018 --protocol vot --trackers nanotrack
siam-bench --models nanotrack --threads 1 2 4 --frames 200
```

| --format | layout (dataset root) | absent frames |
|---|---|---|
| shared | `NAME/img/*.jpg`, `NAME/groundtruth.txt` | - |
| otb | `NAME/img/*.jpg`, `NAME/groundtruth_rect[.N].txt` (comma / space / tab); Jogging, Skating2 -> NAME-1, NAME-2; David from frame 300 | - |
| uav123 | `anno/UAV123/NAME.txt`, `data_seq/UAV123/FOLDER/*.jpg`; split sequences need the official `configSeqs.m` under the root | NaN rows |
| got10k | `[val/]NAME/*.jpg`, `groundtruth.txt`, `absence.label`, `cover.label` | absence = 1 or cover = 0 |
| lasot | `[CATEGORY/]NAME/img/*.jpg`, `groundtruth.txt`, `full_occlusion.txt`, `out_of_view.txt` | either flag |
| vot | `NAME/[color/]*.jpg`, `groundtruth.txt`: rectangles, polygons (-> min/max box) or VOT2020 masks (-> mask box) | - |

Outputs: `results.json` (all curves and numbers, per sequence and overall),
`results_overall.csv`, `results_per_sequence.csv`, `results.md`, the three
plots, `boxes/TRACKER/SEQUENCE.txt` (x,y,w,h per frame, the pysot / got10k result
format) and `cache/`. Sequences run in parallel worker processes (`--workers`,
default = cores, each with `--threads 1`); trackers that cannot be built
(missing weights, unknown name) are reported as skipped.
"""


HEADER = """\
# Benchmarks

Generated by `scripts/benchmarks.sh` (do not edit by hand: rerun it). It runs
`siam-eval` on the 7 labelled validation sequences in `../shared/data/sequences`
(GOT-10k, OTB, UAV123 and VOT excerpts, 769 frames; see that folder's README) and
`siam-bench` on one of them, then writes this file from their JSON outputs.

Read the numbers with their caveats:
- 7 short sequences are a smoke test of tracking quality, not a benchmark
  result comparable with papers (OTB-100, LaSOT, GOT-10k test have 100-280
  sequences). By default the tables hold the trained models only: the ones
  shipped as package data (docs/MODEL_CARD.md) and `nanotrack` (NanoTrack v2's
  published weights). The full-size paper models ship without weights and are
  refused without `--allow-untrained`, so they are not in these tables (a row
  marked **untrained**, from a run of your own with that flag, shows the pipeline
  works, not what the architecture can do).
- These 7 sequences are also the validation set: docs/MODEL_CARD.md lists every
  decision taken by looking at them; held-out footage is what tells whether the
  numbers generalise.
- FPS in the accuracy tables comes from the run that produced each cached result
  (parallel workers, other jobs): use the siam-bench table for speed.
- The machine is shared with other jobs while these run; FPS and ms/frame are
  indicative (the load average at the start is listed with each table).
- OpenCV's NanoTrack (`opencv-nanotrack`, published NanoTrack v2 ONNX) and CSRT /
  KCF are the peers; the project's `nanotrack` runs the same published weights in
  PyTorch. The design guide measured, on these 7 sequences, NanoTrack mean AUC
  0.771 and CSRT 0.629 (~400 and ~73 FPS on 2 cores).
"""


# Benchmarks with their own commands (each file names its command, machine and
# date); build() includes them so that docs/BENCHMARKS.md holds every figure.
INCLUDED = (
    ("lost_state.md", "Lost state: LOST latency, false LOST, re-acquisition (node supervisor)"),
    ("lost_state_grey.md", "Lost state on grey frames (a mono camera: no colour evidence)"),
    ("multi_target.md", "Several targets: batched vs one by one"),
    ("soak.md", "Soak: 10 minutes of 30 Hz input through the node"),
    ("ablation.md", "Ablation: the papers' attention vs plain light models"),
)


def _included_sections(folder: str) -> List[str]:
    lines: List[str] = []
    for name, title in INCLUDED:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            lines += [f"## {title}", "", f"(not generated yet: docs/benchmarks/{name} is missing)", ""]
            continue
        with open(path) as f:
            body = f.read().strip().splitlines()
        # The file's own top heading becomes this section's heading; deeper ones move down a level.
        if body and body[0].startswith("# "):
            body = body[1:]
        fenced, demoted = False, []
        for ln in body:
            if ln.startswith("```"):
                fenced = not fenced
            demoted.append("#" + ln if ln.startswith("#") and not fenced else ln)
        body = demoted
        lines += [f"## {title}", "", f"Included from `docs/benchmarks/{name}` (its command is inside).", ""]
        lines += body + [""]
    return lines


def build(eval_dir: Optional[str], bench_dir: Optional[str], vot_dir: Optional[str],
          images: Optional[str], out_path: str) -> str:
    lines = [HEADER]
    image_rel = None
    if images:
        image_rel = os.path.relpath(images, os.path.dirname(os.path.abspath(out_path)))
    ev = _load(os.path.join(eval_dir, "results.json")) if eval_dir else None
    if ev:
        if images:
            os.makedirs(images, exist_ok=True)
            for name in ("success_plot.png", "precision_plot.png", "norm_precision_plot.png"):
                src = os.path.join(eval_dir, name)
                if os.path.isfile(src):
                    shutil.copyfile(src, os.path.join(images, name))
        lines += _eval_section(ev, "Tracking quality: one-pass evaluation (siam-eval)", images, image_rel)
    else:
        lines += ["## Tracking quality", "", f"(no siam-eval results in {eval_dir})", ""]
    vot = _load(os.path.join(vot_dir, "results.json")) if vot_dir else None
    if vot:
        lines += _eval_section(vot, "Tracking quality: VOT reset protocol (siam-eval --protocol vot)", None, None)
    bench = _load(os.path.join(bench_dir, "bench.json")) if bench_dir else None
    if bench:
        lines += _bench_section(bench)
    else:
        lines += ["## Speed and memory", "", f"(no siam-bench results in {bench_dir})", ""]
    lines += _included_sections(os.path.join(os.path.dirname(os.path.abspath(out_path)), "benchmarks"))
    lines += [CONVENTIONS_MD, USAGE_MD, "## Regenerating", "",
              "```", "bash scripts/benchmarks.sh            # all registered models + peers",
              "MODELS=\"siamfc nanotrack\" bash scripts/benchmarks.sh   # a subset", "```", "",
              "Results are cached per tracker identity (config, weights hash, code) and sequence "
              "under `out/benchmarks/eval/cache`, so a rerun only tracks what changed.", ""]
    text = "\n".join(lines)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write(text)
    return text


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="write docs/BENCHMARKS.md from siam-eval / siam-bench outputs")
    p.add_argument("--eval", dest="eval_dir")
    p.add_argument("--vot", dest="vot_dir")
    p.add_argument("--bench", dest="bench_dir")
    p.add_argument("--images", help="copy the plots here and link them")
    p.add_argument("--out", default="docs/BENCHMARKS.md")
    args = p.parse_args(argv)
    build(args.eval_dir, args.bench_dir, args.vot_dir, args.images, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
