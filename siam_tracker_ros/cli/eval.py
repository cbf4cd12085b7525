"""siam-eval: run trackers over a dataset and write metrics, plots and tables.

Examples:
    siam-eval                                   # every registered model + OpenCV peers
                                                # on ../shared/data/sequences
    siam-eval --trackers siamfc nanotrack opencv-csrt opencv-kcf opencv-nanotrack \\
              --dataset ~/data/OTB100 --format otb --out out/eval_otb
    siam-eval --trackers work_dirs/run1/best.pt --protocol vot --dataset ~/data/VOT2018

Outputs in --out: results.json, results_overall.csv, results_per_sequence.csv,
results.md, success_plot.png, precision_plot.png, norm_precision_plot.png,
boxes/<tracker>/<sequence>.txt and the cache (cache/, reused by later runs).
Conventions of every metric: siam_tracker_ros.evaluation.metrics and docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from typing import List, Optional

import numpy as np


def _parser() -> argparse.ArgumentParser:
    from ..evaluation.datasets import FORMATS
    p = argparse.ArgumentParser(prog="siam-eval", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("--dataset", help="dataset root (default: ../shared/data/sequences)")
    p.add_argument("--format", default="auto", choices=("auto",) + FORMATS, help="dataset layout")
    p.add_argument("--sequences", nargs="+", help="only these sequences")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each sequence")
    p.add_argument("--trackers", nargs="+",
                   help="model names (config/models), YAML or checkpoint paths, and peers "
                        "opencv-csrt / opencv-kcf / opencv-nanotrack (aliases csrt, kcf, nanotrack-cv); "
                        "default: every registered model and every available peer. NAME@onnxruntime "
                        "runs a model through that engine (docs/DEPLOYMENT.md)")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="weights file for model NAME (repeatable)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="also run models that have no trained weights (random init); without it they "
                        "are refused, and left out of the default tracker list")
    p.add_argument("--nano-onnx", nargs=2, metavar=("BACKBONE", "HEAD"),
                   help="ONNX files for opencv-nanotrack (default: ../shared/weights/nanotrack_v2)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when present)")
    p.add_argument("--protocol", default="ope", choices=("ope", "vot"),
                   help="ope: one-pass evaluation; vot: re-initialise 5 frames after each failure")
    p.add_argument("--absent", default="exclude", choices=("exclude", "pysot"),
                   help="frames without a target: exclude them (got10k toolkit) or score them as pysot does")
    p.add_argument("--workers", type=int, default=None,
                   help="parallel worker processes (default: number of cores)")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenCV threads per worker (default 1)")
    p.add_argument("--out", default="out/eval", help="output folder (default out/eval)")
    p.add_argument("--cache-dir", help="results cache (default OUT/cache)")
    p.add_argument("--no-cache", action="store_true", help="ignore cached results (they are still rewritten)")
    p.add_argument("--cache-only", action="store_true",
                   help="run nothing: report what the cache holds (missing sequences are listed)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def default_trackers(allow_untrained: bool = False) -> List[str]:
    """Every model with weights (every registered model with allow_untrained) and every peer."""
    from ..core.models.registry import available_models, load_model_config, resolve_weights_path
    from ..evaluation.peers import available_peers
    models = [m for m in available_models() if m != "default"]
    if not allow_untrained:
        def has_weights(name):
            config = load_model_config(name)
            return bool(resolve_weights_path(config.get("weights"), config))
        models = [m for m in models if has_weights(m)]
    return models + available_peers()


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="siam-eval: %(levelname)s: %(message)s")
    from ..evaluation import datasets, plots, report, runner

    root = args.dataset or datasets.default_sequences_root()
    if not root or not os.path.isdir(root):
        print(f"siam-eval: dataset root not found ({root or '../shared/data/sequences'}); "
              "give one with --dataset", file=sys.stderr)
        return 2
    try:
        seqs = datasets.open_dataset(root, args.format, args.sequences, args.max_frames)
    except (ValueError, FileNotFoundError) as exc:
        print(f"siam-eval: {exc}", file=sys.stderr)
        return 2
    if not seqs:
        print(f"siam-eval: no sequences found in {root}", file=sys.stderr)
        return 2
    weights = {}
    for item in args.weights:
        if "=" not in item:
            print(f"siam-eval: --weights expects NAME=PATH, got {item!r}", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        weights[k] = v
    names = args.trackers or default_trackers(args.allow_untrained)
    specs = [runner.TrackerSpec(n, device=args.device, weights=weights.get(n),
                                onnx=tuple(args.nano_onnx) if args.nano_onnx else None,
                                allow_untrained=args.allow_untrained) for n in names]
    from ..core.tracking.loading import check_model
    for s in specs:         # an unknown or untrained model: refused before anything runs
        if s.kind == "model":
            try:
                check_model(s.spec, s.weights, args.allow_untrained)
            except ValueError as exc:
                print(f"siam-eval: {s.spec}: {exc}", file=sys.stderr)
                return 2
    labels = [s.label for s in specs]
    for i, s in enumerate(specs):             # unique labels
        if labels.count(s.label) > 1:
            s.label = f"{s.label}#{labels[:i + 1].count(s.label)}"
    cache_dir = args.cache_dir or os.path.join(args.out, "cache")
    workers = args.workers or runner.default_workers(args.device)
    run = runner.run_trackers(specs, seqs, cache_dir=cache_dir, protocol=args.protocol,
                              workers=workers, threads=args.threads, use_cache=not args.no_cache,
                              progress=not args.quiet, cache_only=args.cache_only)
    scored = runner.score_run(run, args.absent)
    notes = {}
    for s in specs:
        if s.label in run.records:
            notes[s.label] = s.weights_note()
    parts = os.path.normpath(os.path.abspath(root)).split(os.sep)
    dataset_label = f"{'/'.join(parts[-2:])}, {len(seqs)} sequences"
    meta = {"date": report.now_iso(), "command": "siam-eval " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "dataset": os.path.abspath(root), "format": seqs[0].dataset, "sequences": len(seqs),
            "sequence_names": [s.name for s in seqs], "max_frames": args.max_frames,
            "protocol": args.protocol, "absent_policy": args.absent, "workers": workers,
            "threads": args.threads, "device": args.device, "machine": report.machine_info(),
            "ran": run.ran, "from_cache": run.cached, "missing": run.missing}
    paths = report.write_reports(scored, args.out, args.protocol, meta, notes, run.skipped, run.errors)
    _write_boxes(run, args.out)
    if not args.no_plots and args.protocol == "ope":
        plots.write_plots(scored, args.out, dataset_label, notes)
    print(report.markdown_table(scored, args.protocol, notes))
    for k, v in run.skipped.items():
        print(f"skipped {k}: {v}")
    for k, v in run.missing.items():
        print(f"{k}: no cached results for {len(v)} sequence(s): {', '.join(v)}")
    print(f"ran {run.ran} tracker-sequence runs, {run.cached} from cache; results in {args.out} "
          f"({os.path.basename(paths['json'])}, {os.path.basename(paths['markdown'])}"
          f"{', plots' if not args.no_plots and args.protocol == 'ope' else ''})")
    return 1 if (run.errors or not scored) else 0


def _write_boxes(run, out_dir: str) -> None:
    """boxes/<tracker>/<sequence>.txt: x,y,w,h per frame (pysot/got10k result format)."""
    for label, recs in run.records.items():
        folder = os.path.join(out_dir, "boxes", label)
        os.makedirs(folder, exist_ok=True)
        for name, rec in recs.items():
            if "boxes" in rec:
                np.savetxt(os.path.join(folder, f"{name}.txt"), np.asarray(rec["boxes"]),
                           fmt="%.3f", delimiter=",")


if __name__ == "__main__":
    sys.exit(main())
