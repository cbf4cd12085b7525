"""siam-export: export a model to ONNX (template.onnx + search.onnx), or time the engines.

Export (docs/DEPLOYMENT.md):
    siam-export nanotrack                        # -> out/onnx/nanotrack/{template,search}.onnx, engine.json
    siam-export path/to/checkpoint.pt --out deploy/mymodel
    siam-export siamfc --search-batch 3 --opset 17 --exporter torchscript

The export is checked against PyTorch with onnxruntime on random crops (max
absolute / relative difference per output), unless --no-verify. A tracker then
runs it with `loading.build_tracker(NAME, engine="onnxruntime",
engine_options={"onnx_dir": DIR})`.

Benchmark (tracker-only speed, one process, configurations interleaved):
    siam-export --bench                          # default + nanotrack, torch / onnxruntime x 1 / 2 threads,
                                                 # and cv2.TrackerNano in the same run
    siam-export --bench --models nanotrack siamfc --frames 60 --rounds 5 --threads 1 2

Every configuration tracks the same decoded frames (init on frame 0 with the
ground truth, then `frames` frames; the first `warmup` per segment untimed);
the configurations take turns, `rounds` times, in a rotating order, so that
load from other processes hits them alike. Reported: median and p90 wall time
of tracker.track(image) (crop + network + post-processing), the median
network part, FPS = 1000 / median, and the ratio to cv2.TrackerNano with the
same thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

DEFAULT_BENCH_MODELS = ("default", "nanotrack")
DEFAULT_BENCH_SEQUENCES = ("OTB_Crossing", "VOT2015_ball1")


def _parser() -> argparse.ArgumentParser:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(prog="siam-export", description=doc.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(doc.split("\n")[2:]))
    p.add_argument("model", nargs="*", help="model name, model YAML or checkpoint to export")
    p.add_argument("--weights", help="weights file overriding the model config's")
    p.add_argument("--out", help="export: output folder (default out/onnx/NAME); "
                                 "--bench: folder for bench.json / bench.md (default out/engines)")
    p.add_argument("--search-batch", type=int, help="search crops per frame (default: the tracker's, "
                                                    "scale_num for siamfc-type trackers, else 1)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="export / time a model that has no trained weights (random init) instead of refusing it")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch.onnx exporter (default torchscript; dynamo needs onnxscript)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    b = p.add_argument_group("benchmark")
    b.add_argument("--bench", action="store_true", help="time the engines instead of exporting")
    b.add_argument("--models", nargs="+", default=None,
                   help=f"models to time (default: {' '.join(DEFAULT_BENCH_MODELS)}; 'all' = every model)")
    b.add_argument("--engines", nargs="+", default=["torch", "onnxruntime"],
                   help="engines to time (default: torch onnxruntime, whose idle threads do not spin; "
                        "also onnxruntime-spin: idle threads spin, onnxruntime's own default)")
    b.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts (default 1 2)")
    b.add_argument("--sequences", nargs="+", default=None,
                   help="sequence folders or names under ../shared/data/sequences "
                        f"(default: {' '.join(DEFAULT_BENCH_SEQUENCES)})")
    b.add_argument("--frames", type=int, default=40, help="tracked frames per sequence and segment (default 40)")
    b.add_argument("--warmup", type=int, default=3, help="untimed frames at the start of each segment (default 3)")
    b.add_argument("--rounds", type=int, default=3, help="times every configuration runs (default 3)")
    b.add_argument("--no-opencv", action="store_true", help="do not time cv2.TrackerNano")
    b.add_argument("--cache-dir", help="where exports are cached (default ~/.cache/siam_tracker_ros/onnx)")
    return p


# --------------------------------------------------------------------------- export
def export_command(args) -> int:
    from ..core.engines import export
    from ..core.models.registry import load_model
    from ..core.tracking.loading import check_model

    if not args.model:
        print("siam-export: name a model to export (or --bench)", file=sys.stderr)
        return 2
    if args.out and len(args.model) > 1:
        print("siam-export: --out takes one model", file=sys.stderr)
        return 2
    status = 0
    for name in args.model:
        try:
            check_model(name, args.weights, args.allow_untrained)
            config, model, weights = load_model(name, weights=args.weights)
        except (ValueError, FileNotFoundError, OSError) as exc:
            print(f"siam-export: {name}: {exc}", file=sys.stderr)
            status = 2
            continue
        out = args.out or os.path.join("out", "onnx", str(config.get("name") or "model"))
        t0 = time.perf_counter()
        try:
            meta = export.export_model(model, config, out, search_batch=args.search_batch,
                                       opset=args.opset, exporter=args.exporter,
                                       verify=not args.no_verify)
        except export.ExportError as exc:
            print(f"siam-export: {name}: {exc}", file=sys.stderr)
            status = 2
            continue
        print(f"{config.get('name')}: exported in {time.perf_counter() - t0:.1f} s to {out}/ "
              f"(weights: {weights or 'none, random initialisation'})")
        for part in ("template", "search"):
            info = meta[part]
            size = os.path.getsize(os.path.join(out, info["file"])) / 1e6
            ins = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info["inputs"].items())
            outs = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in info["outputs"].items())
            print(f"  {info['file']:<14} {size:7.1f} MB   in: {ins}   out: {outs}")
        verify = meta.get("verify")
        if isinstance(verify, dict) and "skipped" not in verify:
            worst = max(v["rel"] for v in verify.values())
            print("  onnxruntime vs PyTorch (max |diff| / max(1, |output|)): "
                  + ", ".join(f"{k} {v['rel']:.1e}" for k, v in verify.items()))
            if worst > 1e-3:
                print(f"siam-export: {name}: difference {worst:.1e} above 1e-3", file=sys.stderr)
                status = 1
        elif verify:
            print(f"  verify skipped: {verify.get('skipped')}")
    return status


# --------------------------------------------------------------------------- benchmark
def _resolve_sequences(names: Optional[Sequence[str]]) -> List[str]:
    from ..evaluation.datasets import default_sequences_root
    root = default_sequences_root()
    out = []
    for name in names or DEFAULT_BENCH_SEQUENCES:
        if os.path.isdir(name):
            out.append(name)
        elif root and os.path.isdir(os.path.join(root, name)):
            out.append(os.path.join(root, name))
        elif names:
            raise FileNotFoundError(f"sequence {name} not found (looked under {root})")
    return out


def _stats_ms(values: List[float]) -> Dict[str, float]:
    v = np.asarray(values, dtype=np.float64) * 1000.0
    if v.size == 0:
        return {"median": float("nan"), "p90": float("nan"), "mean": float("nan")}
    return {"median": float(np.median(v)), "p90": float(np.percentile(v, 90)), "mean": float(v.mean())}


class _Config:
    def __init__(self, model: str, engine: str, threads: int, factory):
        self.model, self.engine, self.threads = model, engine, threads
        self.factory = factory
        self.tracker = None
        self.total: List[float] = []
        self.network: List[float] = []
        self.error = ""

    @property
    def label(self) -> str:
        return f"{self.model} {self.engine} {self.threads}t"


def build_configurations(models: Sequence[str], engines: Sequence[str], threads: Sequence[int],
                         opencv_nano: bool = True, cache_dir: Optional[str] = None,
                         log=print, allow_untrained: bool = False) -> List[_Config]:
    """One _Config per (model, engine, threads) plus cv2.TrackerNano per thread count."""
    import torch

    from ..core.engines import canonical_engine, export, wrap_engine
    from ..core.models import registry
    from ..core.tracking.loading import build_tracker_from_config, check_model

    configs: List[_Config] = []
    for name in models:
        try:
            torch.manual_seed(0)
            check_model(name, allow_untrained=allow_untrained)
            config, model, _ = registry.load_model(name)
        except Exception as exc:  # noqa: BLE001 - missing weights, bad config ...
            log(f"siam-export: {name}: cannot build ({type(exc).__name__}: {exc}); skipped")
            continue
        label = str(config.get("name") or name)
        for engine in engines:
            # "onnxruntime-spin": idle pool threads spinning (onnxruntime's own default; the
            # project's is off); "onnxruntime-nospin" says the project default explicitly.
            engine = str(engine)
            spin = True if engine.endswith("-spin") else (False if engine.endswith("-nospin") else None)
            kind = canonical_engine(engine.replace("-nospin", "").replace("-spin", ""))
            if spin is not None and kind != "onnxruntime":
                log(f"siam-export: {engine}: -spin / -nospin are onnxruntime options; skipped")
                continue
            if kind == "onnxruntime":
                try:
                    t0 = time.perf_counter()
                    directory, meta = export.ensure_exported(model, config, cache_dir=cache_dir)
                    log(f"siam-export: {label}: ONNX export {directory} "
                        f"({time.perf_counter() - t0:.1f} s)")
                except Exception as exc:  # noqa: BLE001
                    log(f"siam-export: {label}: export failed ({type(exc).__name__}: {exc})")
                    continue
            for n in threads:
                if kind == "torch":
                    def factory(config=config, model=model, n=n):
                        eng = wrap_engine(model, config, "torch", device="cpu", threads=n)
                        return build_tracker_from_config(config, model=eng, device="cpu", cpu_threads=n)
                else:
                    def factory(config=config, directory=directory, n=n, spin=spin):
                        eng = wrap_engine(None, config, "onnxruntime", device="cpu", threads=n,
                                          onnx_dir=directory, allow_spinning=spin)
                        return build_tracker_from_config(config, model=eng, device="cpu", cpu_threads=n)
                configs.append(_Config(label, kind if spin is None else f"{kind}-{'spin' if spin else 'nospin'}",
                                       n, factory))
    if opencv_nano:
        from ..evaluation.peers import OpenCVTracker, available_peers
        if "opencv-nanotrack" in available_peers():
            for n in threads:
                configs.append(_Config("cv2.TrackerNano", "opencv", n,
                                       lambda: OpenCVTracker("opencv-nanotrack")))
        else:
            log("siam-export: cv2.TrackerNano unavailable (no TrackerNano or no NanoTrack ONNX files)")
    return configs


def run_benchmark(models: Sequence[str] = DEFAULT_BENCH_MODELS, engines=("torch", "onnxruntime"),
                  threads=(1, 2), sequences: Optional[Sequence[str]] = None, frames: int = 40,
                  warmup: int = 3, rounds: int = 3, opencv_nano: bool = True,
                  cache_dir: Optional[str] = None, log=print, allow_untrained: bool = False) -> Dict[str, Any]:
    """Time every configuration in this process; return {"meta", "results"}."""
    import cv2
    import torch

    from ..evaluation.report import machine_info
    from ..evaluation.speed import load_frames

    seq_dirs = _resolve_sequences(sequences)
    clips = []
    for d in seq_dirs or [None]:
        imgs, box, desc = load_frames(d, frames + 1)
        clips.append((imgs, box, desc))
    machine = machine_info()          # load average before the runs
    configs = build_configurations(models, engines, threads, opencv_nano, cache_dir, log, allow_untrained)
    saved = (torch.get_num_threads(), cv2.getNumThreads())
    start = time.time()
    try:
        for r in range(rounds):
            order = configs[r % len(configs):] + configs[:r % len(configs)] if configs else []
            for cfg in order:
                if cfg.error:
                    continue
                torch.set_num_threads(cfg.threads)
                cv2.setNumThreads(cfg.threads)
                try:
                    if cfg.tracker is None:
                        cfg.tracker = cfg.factory()
                    for imgs, box, _ in clips:
                        cfg.tracker.init(imgs[0], box)
                        for i, img in enumerate(imgs[1:]):
                            t0 = time.perf_counter()
                            res = cfg.tracker.track(img)
                            dt = time.perf_counter() - t0
                            if i < warmup:
                                continue
                            cfg.total.append(dt)
                            if "network" in res.timing:
                                cfg.network.append(float(res.timing["network"]))
                except Exception as exc:  # noqa: BLE001 - report and go on with the others
                    cfg.error = f"{type(exc).__name__}: {exc}"
                    log(f"siam-export: {cfg.label}: {cfg.error}")
            log(f"siam-export: round {r + 1}/{rounds} done ({time.time() - start:.0f} s)")
    finally:
        torch.set_num_threads(saved[0])
        cv2.setNumThreads(saved[1])

    nano = {c.threads: _stats_ms(c.total)["median"] for c in configs
            if c.engine == "opencv" and c.total}
    results = []
    for c in configs:
        total = _stats_ms(c.total)
        row = {"model": c.model, "engine": c.engine, "threads": c.threads, "frames": len(c.total),
               "ms": total, "network_ms": _stats_ms(c.network)["median"] if c.network else None,
               "fps": 1000.0 / total["median"] if c.total else float("nan"), "error": c.error}
        if c.threads in nano and c.total:
            row["vs_opencv_nano"] = nano[c.threads] / total["median"]     # > 1: faster than TrackerNano
        results.append(row)
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine, "sequences": [c[2] for c in clips],
            "frames": frames, "warmup": warmup, "rounds": rounds,
            "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    try:
        import onnxruntime
        meta["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return {"meta": meta, "results": results}


def markdown(report: Dict[str, Any]) -> str:
    lines = ["| model | engine | threads | median ms/frame | p90 ms | network ms | FPS | x cv2.TrackerNano |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        if r["error"] and not r["frames"]:
            lines.append(f"| {r['model']} | {r['engine']} | {r['threads']} | failed: {r['error']} ||||")
            continue
        net = f"{r['network_ms']:.1f}" if r.get("network_ms") is not None else "-"
        ratio = f"{r['vs_opencv_nano']:.2f}" if "vs_opencv_nano" in r else "-"
        lines.append(f"| {r['model']} | {r['engine']} | {r['threads']} | {r['ms']['median']:.1f} | "
                     f"{r['ms']['p90']:.1f} | {net} | {r['fps']:.1f} | {ratio} |")
    return "\n".join(lines)


def acceptance_lines(report: Dict[str, Any]) -> List[str]:
    """Per model: its fastest configuration against the fastest cv2.TrackerNano one."""
    ok = [r for r in report["results"] if r["frames"]]
    nano = [r for r in ok if r["engine"] == "opencv"]
    if not nano:
        return []
    best_nano = min(nano, key=lambda r: r["ms"]["median"])
    out = []
    for model in dict.fromkeys(r["model"] for r in ok if r["engine"] != "opencv"):
        rows = [r for r in ok if r["model"] == model]
        best = min(rows, key=lambda r: r["ms"]["median"])
        ratio = best_nano["ms"]["median"] / best["ms"]["median"]
        out.append(f"{model}: fastest {best['engine']} {best['threads']} thread(s) "
                   f"{best['ms']['median']:.1f} ms ({best['fps']:.0f} FPS) vs cv2.TrackerNano "
                   f"{best_nano['threads']} thread(s) {best_nano['ms']['median']:.1f} ms "
                   f"({best_nano['fps']:.0f} FPS): {ratio:.2f}x "
                   f"{'(at least as fast)' if ratio >= 1.0 else '(slower)'}")
    return out


def bench_command(args, argv) -> int:
    models = args.models or list(DEFAULT_BENCH_MODELS)
    if models == ["all"]:
        from ..core.models.registry import available_models
        models = available_models()
    try:
        report = run_benchmark(models, args.engines, args.threads, args.sequences, args.frames,
                               args.warmup, args.rounds, not args.no_opencv, args.cache_dir,
                               log=lambda m: print(m, file=sys.stderr, flush=True),
                               allow_untrained=args.allow_untrained)
    except (FileNotFoundError, ValueError) as exc:
        print(f"siam-export: {exc}", file=sys.stderr)
        return 2
    command = "siam-export " + " ".join(shlex.quote(a) for a in argv)
    report["meta"]["command"] = command
    table = markdown(report)
    accept = acceptance_lines(report)
    m = report["meta"]["machine"]
    head = [f"- command: `{command}`", f"- date: {report['meta']['date']}",
            f"- machine: {m.get('cpu')} x{m.get('cores')}, load average before {m.get('load_average')}, "
            f"after {[round(v, 2) for v in report['meta']['load_average_after'] or []]}",
            f"- torch {m.get('torch')}, onnxruntime {report['meta'].get('onnxruntime')}, "
            f"opencv {m.get('opencv')}",
            f"- frames: {'; '.join(report['meta']['sequences'])}; {args.warmup} untimed per segment, "
            f"{args.rounds} rounds"]
    print("\n".join(head))
    print()
    print(table)
    for line in accept:
        print(line)
    out = args.out or os.path.join("out", "engines")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    with open(os.path.join(out, "bench.md"), "w") as f:
        f.write("# Engine benchmark\n\n" + "\n".join(head) + "\n\n" + table + "\n\n"
                + "\n".join(f"- {a}" for a in accept) + "\n")
    print(f"written: {out}/bench.json, {out}/bench.md", file=sys.stderr)
    return 0 if any(r["frames"] for r in report["results"]) else 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.bench:
        if args.model:
            print("siam-export: --bench takes --models, not positional models", file=sys.stderr)
            return 2
        return bench_command(args, argv)
    return export_command(args)


if __name__ == "__main__":
    sys.exit(main())
