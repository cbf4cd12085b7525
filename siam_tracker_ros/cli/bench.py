"""siam-bench: speed (ms/frame split into crop / network / post) and peak memory per model.

Examples:
    siam-bench                               # every registered model + OpenCV peers
    siam-bench --models nanotrack siamfc --frames 100 --threads 1 2 4
    siam-bench --no-peers --out out/bench
    siam-bench --models default --targets 1 2 5 --threads 1   # several targets: batched vs one by one

Each (tracker, configuration) runs in a fresh process: CPU with 1 and 2
threads (fp32), and CUDA fp32 / fp16 autocast when CUDA is present. Frames come
from a short real sequence (../shared/data/sequences/VOT2015_ball1 by default)
or, when none is found, synthetic frames (the output says which). Models that
cannot be built (missing weights ...) are listed as skipped with the reason.
See siam_tracker_ros.evaluation.speed for exactly what is timed.

--targets N ...: instead of the single-target table, time N targets per frame
through MultiTargetTracker (one batched network call) and through N trackers
run one by one, in the same process on the same frames; prints per-target ms
of both and their ratio (siam_tracker_ros.evaluation.multi_speed; models
default to `default`; peers are not timed). Writes multi_target.json / .md.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import asdict
from typing import List, Optional


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="siam-bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.split("\n")[2:]))
    p.add_argument("--models", nargs="+", help="model names / YAML / checkpoints (default: all registered); "
                        "NAME@onnxruntime times a model through that engine")
    p.add_argument("--allow-untrained", action="store_true",
                   help="also time models without trained weights (random init; timing does not depend on "
                        "the weights); without it they are refused, and left out of the default list")
    p.add_argument("--peers", nargs="*", default=None,
                   help="OpenCV peers to time (default: every available one)")
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--sequence", help="a sequence folder (img/ + groundtruth.txt) or a name under "
                                      "../shared/data/sequences (default VOT2015_ball1)")
    p.add_argument("--synthetic", action="store_true", help="use synthetic frames even if sequences exist")
    p.add_argument("--frames", type=int, default=60, help="timed frames (default 60)")
    p.add_argument("--warmup", type=int, default=5, help="untimed frames first (default 5)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts (default 1 2)")
    p.add_argument("--no-cuda", action="store_true", help="skip CUDA even when present")
    p.add_argument("--nano-onnx", nargs=2, metavar=("BACKBONE", "HEAD"))
    p.add_argument("--timeout", type=float, default=900, help="seconds per measurement (default 900)")
    p.add_argument("--targets", type=int, nargs="+", metavar="N",
                   help="time N targets per frame: batched (MultiTargetTracker) vs one by one")
    p.add_argument("--out", default="out/bench", help="output folder: bench.json, bench.md")
    return p



def _run_meta(args, argv, source: str, cuda: bool) -> dict:
    """What every siam-bench JSON records about the run."""
    from ..evaluation import report
    return {"date": report.now_iso(),
            "command": "siam-bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "frames": source, "timed_frames": args.frames, "warmup": args.warmup,
            "machine": report.machine_info(), "cuda": cuda}

def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    from ..core.models.registry import available_models
    from ..core.engines import split_engine_spec
    from ..core.tracking.loading import UntrainedModelError, check_model
    from ..evaluation import report, speed
    from ..evaluation.datasets import default_sequences_root
    from ..evaluation.peers import available_peers, canonical_peer

    for name in args.models or []:   # a typo or an untrained model: one line and exit 2, before any timing
        try:
            check_model(split_engine_spec(name)[0], allow_untrained=args.allow_untrained)
        except (ValueError, FileNotFoundError) as exc:
            print(f"siam-bench: {name}: {exc}", file=sys.stderr)
            return 2
    seq_dir = None
    if not args.synthetic:
        if args.sequence and os.path.isdir(args.sequence):
            seq_dir = args.sequence
        else:
            root = default_sequences_root()
            name = args.sequence or speed.DEFAULT_SEQUENCE
            if root and os.path.isdir(os.path.join(root, name)):
                seq_dir = os.path.join(root, name)
            elif args.sequence:
                print(f"siam-bench: sequence {args.sequence} not found", file=sys.stderr)
                return 2
    if args.targets:
        return _multi_target(args, argv, seq_dir, torch.cuda.is_available() and not args.no_cuda)
    if args.models:
        models = args.models
    else:
        models = []
        for name in available_models():
            try:
                check_model(name, allow_untrained=args.allow_untrained)
                if name != "default":
                    models.append(name)
            except UntrainedModelError:
                pass
    if args.no_peers:
        peers = []
    elif args.peers is None:
        peers = available_peers()
    else:
        peers = [canonical_peer(p) or p for p in args.peers]
        unknown = [p for p in args.peers if canonical_peer(p) is None]
        if unknown:
            print(f"siam-bench: unknown peer(s) {', '.join(unknown)}; available: {', '.join(available_peers())}",
                  file=sys.stderr)
            return 2
    cuda = torch.cuda.is_available() and not args.no_cuda
    configs = speed.configurations(cuda, tuple(args.threads))
    results = []
    failed = {}
    for name in models + peers:
        is_peer = canonical_peer(name) is not None
        for cfg in configs:
            if is_peer and cfg["device"] != "cpu":
                continue
            job = speed.BenchJob(name, device=cfg["device"], threads=cfg["threads"],
                                 precision=cfg["precision"], frames=args.frames, warmup=args.warmup,
                                 sequence_dir=seq_dir, onnx=args.nano_onnx,
                                 allow_untrained=args.allow_untrained)
            label = f"{name} {cfg['device']} threads={cfg['threads']} {cfg['precision']}"
            print(f"siam-bench: {label} ...", file=sys.stderr, flush=True)
            res = speed.run_isolated(job, timeout=args.timeout)
            results.append(res)
            if not res.ok:
                failed[label] = res.reason
                print(f"siam-bench:   failed: {res.reason}", file=sys.stderr)
                if cfg is configs[0]:
                    break       # cannot build: do not retry every configuration
            else:
                print(f"siam-bench:   total {res.ms['total']['median']:.2f} ms median "
                      f"({res.fps:.1f} FPS), memory {res.memory_mb:.0f} MB", file=sys.stderr)
    ok_names = {r.tracker for r in results if r.ok}
    skipped = {r.tracker: r.reason for r in results if not r.ok and r.tracker not in ok_names}
    partial = {k: v for k, v in failed.items() if k.split(" ")[0] in ok_names}
    source = next((r.source for r in results if r.ok), seq_dir or "synthetic")
    meta = _run_meta(args, argv, source, cuda)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(report._jsonable({"meta": meta, "results": [asdict(r) for r in results],
                                    "skipped": skipped, "failed_configurations": partial}), f, indent=1)
    table = speed.markdown_table(results)
    md = ["# Speed benchmark", "", f"- date: {meta['date']}", f"- frames: {source}",
          f"- command: `{meta['command']}`",
          f"- machine: {meta['machine'].get('cpu')} x{meta['machine'].get('cores')}"
          + (f", GPU {meta['machine'].get('gpu')}" if cuda else ", no CUDA"), "", table]
    if skipped:
        md += ["Skipped (could not run):", ""] + [f"- {k}: {v}" for k, v in skipped.items()] + [""]
    if partial:
        md += ["Failed configurations:", ""] + [f"- {k}: {v}" for k, v in partial.items()] + [""]
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write("\n".join(md))
    print(f"frames: {source}")
    print(table)
    for k, v in skipped.items():
        print(f"skipped {k}: {v}")
    return 0 if any(r.ok for r in results) else 1


def _multi_target(args, argv, seq_dir, cuda: bool) -> int:
    from ..evaluation import multi_speed, report
    if any(n < 1 for n in args.targets):
        print("siam-bench: --targets must be >= 1", file=sys.stderr)
        return 2
    models = args.models or ["default"]
    devices = [("cpu", t) for t in args.threads] + ([("cuda", None)] if cuda else [])
    results = []
    for name in models:
        for device, threads in devices:
            for n in args.targets:
                job = multi_speed.MultiJob(name, n, device=device, threads=threads, frames=args.frames,
                                           allow_untrained=args.allow_untrained,
                                           warmup=args.warmup, sequence_dir=seq_dir)
                label = f"{name} {device} threads={threads or '-'} targets={n}"
                print(f"siam-bench: {label} ...", file=sys.stderr, flush=True)
                res = multi_speed.run_isolated(job, timeout=args.timeout)
                results.append(res)
                if res.ok:
                    print(f"siam-bench:   per target: batched {res.batched_ms['median']:.2f} ms, one by one "
                          f"{res.sequential_ms['median']:.2f} ms ({res.speedup:.2f}x); CPU time "
                          f"{res.batched_cpu_ms['median']:.2f} vs {res.sequential_cpu_ms['median']:.2f} ms "
                          f"({res.cpu_speedup:.2f}x)", file=sys.stderr)
                else:
                    print(f"siam-bench:   failed: {res.reason}", file=sys.stderr)
    source = next((r.source for r in results if r.ok), seq_dir or "synthetic")
    meta = _run_meta(args, argv, source, cuda)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "multi_target.json"), "w") as f:
        json.dump(report._jsonable({"meta": meta, "results": [asdict(r) for r in results]}), f, indent=1)
    table = multi_speed.markdown_table(results)
    failed = [f"- {r.model} {r.device} threads={r.threads} targets={r.targets}: {r.reason}"
              for r in results if not r.ok]
    md = ["# Several targets: batched vs one by one", "", f"- date: {meta['date']}", f"- frames: {source}",
          f"- command: `{meta['command']}`",
          f"- machine: {meta['machine'].get('cpu')} x{meta['machine'].get('cores')}"
          + (f", GPU {meta['machine'].get('gpu')}" if cuda else ", no CUDA"), "", table]
    if failed:
        md += ["Failed:", ""] + failed + [""]
    with open(os.path.join(args.out, "multi_target.md"), "w") as f:
        f.write("\n".join(md))
    print(f"frames: {source}")
    print(table)
    for line in failed:
        print(line)
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
