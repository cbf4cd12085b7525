"""Attention ablation runner (issue 5, item 7): train every config/train/ablation_*.yaml
with the same backbone, data, schedule, seed and pair budget, evaluate each final
checkpoint with siam-eval on the shared sequences, and write a markdown table.

    OMP_NUM_THREADS=1 python -m siam_tracker_ros.evaluation.ablation --seeds 0 1   # all variants
    python -m siam_tracker_ros.evaluation.ablation --only siamfc_light rasnet_light
    python -m siam_tracker_ros.evaluation.ablation --report-only                # table from what is there

Each (variant, seed) trains in its own `siam-train` process (--no-val: the
validation sequences are not looked at during training; the final checkpoint is
the one evaluated, no model selection), into OUT/<variant>_s<seed>/; its last.pt
is copied to OUT/checkpoints/<variant>_s<seed>.pt so siam-eval labels it by run.
Runs go seed by seed (every variant with seed 0, then with seed 1, ...), so a
campaign cut short still has comparable pairs. A run already finished is not
retrained unless --retrain. One siam-eval run scores every checkpoint at the end.

Columns: AUC (OPE success AUC) as mean over seeds ± half the range, the per-seed
AUCs, the change in AUC against the variant's baseline (config key
ablation.baseline) seed by seed, P@20 px, SR0.5 and train time (wall seconds of
the siam-train process).
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import yaml

DEFAULT_OUT = "work_dirs/ablation"
DEFAULT_DOC = "docs/benchmarks/ablation.md"


def variant_name(config_path: str) -> str:
    base = os.path.splitext(os.path.basename(config_path))[0]
    return base[len("ablation_"):] if base.startswith("ablation_") else base


def load_variants(pattern: str, only: Optional[List[str]] = None) -> List[Dict[str, Any]]:
    variants = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            cfg = yaml.safe_load(f)
        name = variant_name(path)
        if only and name not in only:
            continue
        abl = dict(cfg.get("ablation", {}))
        variants.append({"name": name, "config": path, "cfg": cfg, "ablation": abl,
                         "order": abl.get("order", 99)})
    variants.sort(key=lambda v: (v["order"], v["name"]))
    return variants


def pair_budget(cfg: Dict[str, Any]) -> int:
    t = cfg.get("train", {})
    return int(t.get("epochs", 0)) * int(t.get("samples_per_epoch", 0))


def read_log(run_dir: str) -> Dict[str, Any]:
    path = os.path.join(run_dir, "log.csv")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    last = rows[-1]
    return {"epochs": int(float(last["epoch"])),
            "pairs": sum(int(float(r.get("samples") or 0)) for r in rows),
            "epoch_seconds": sum(float(r.get("seconds") or 0) for r in rows),
            "final_loss": float(last.get("loss") or "nan")}


def train_variant(v: Dict[str, Any], out: str, device: str, retrain: bool,
                  seed: Optional[int] = None) -> Dict[str, Any]:
    run_dir = os.path.join(out, v["name"])
    info_path = os.path.join(run_dir, "ablation_run.json")
    epochs = int(v["cfg"].get("train", {}).get("epochs", 0))
    log = read_log(run_dir)
    if not retrain and log.get("epochs") == epochs and os.path.isfile(os.path.join(run_dir, "last.pt")) \
            and os.path.isfile(info_path):
        with open(info_path) as f:
            return json.load(f)
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "siam_tracker_ros.cli.train", "--config", v["config"], "--device", device,
           "--no-val", "--no-progress", "--out", run_dir]
    if seed is not None:
        cmd += ["--set", f"seed={int(seed)}"]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    print(f"[ablation] training {v['name']}: {' '.join(cmd)}", flush=True)
    t0 = time.time()
    with open(os.path.join(run_dir, "train_stdout.log"), "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    wall = time.time() - t0
    if rc != 0:
        raise RuntimeError(f"siam-train failed for {v['name']} (rc {rc}); see {run_dir}/train_stdout.log")
    log = read_log(run_dir)
    info = {"variant": v["name"], "config": v["config"], "train_wall_s": wall, **log,
            "seed": int(seed if seed is not None else v["cfg"].get("seed", 0)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(info_path, "w") as f:
        json.dump(info, f, indent=1)
    return info


def evaluate(names: List[str], out: str, dataset: Optional[str], device: str, workers: int = 1) -> Dict[str, Any]:
    """siam-eval on the final checkpoints (cached per tracker, so only new ones run)."""
    ckpt_dir = os.path.join(out, "checkpoints")
    os.makedirs(ckpt_dir, exist_ok=True)
    specs = []
    for n in names:
        src = os.path.join(out, n, "last.pt")
        dst = os.path.join(ckpt_dir, f"{n}.pt")
        if os.path.isfile(src) and (not os.path.isfile(dst) or os.path.getmtime(dst) < os.path.getmtime(src)):
            shutil.copy2(src, dst)
        if os.path.isfile(dst):
            specs.append(dst)
    if not specs:
        return {}
    eval_out = os.path.join(out, "eval")
    cmd = [sys.executable, "-m", "siam_tracker_ros.cli.eval", "--trackers", *specs, "--workers", str(int(workers)),
           "--threads", "1", "--device", device, "--out", eval_out, "--no-plots", "--quiet"]
    if dataset:
        cmd += ["--dataset", dataset]
    print(f"[ablation] evaluating: {' '.join(cmd)}", flush=True)
    subprocess.check_call(cmd)
    with open(os.path.join(eval_out, "results.json")) as f:
        return json.load(f)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(x, spec=".3f"):
    return "n/a" if x is None else format(x, spec)


def _mean_spread(values: List[float]) -> Tuple[Optional[float], Optional[float]]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(sum(vals) / len(vals)), (float(max(vals) - min(vals)) if len(vals) > 1 else None)


def _ms(mean, spread, spec=".3f", signed=False):
    if mean is None:
        return "n/a"
    m = format(mean, ("+" if signed else "") + spec)
    return m if spread is None else f"{m} ± {spread / 2:{spec}}"


def run_name(variant: str, seed: int) -> str:
    """Checkpoint / tracker label of one run (no '@': siam-eval reads NAME@ENGINE)."""
    return f"{variant}_s{seed}"


def write_table(variants: List[Dict[str, Any]], runs: Dict[str, Dict[str, Any]], results: Dict[str, Any],
                doc: str, command: str, seeds: List[int]) -> str:
    """Markdown: per variant the mean over seeds and half the range (±), per-seed
    AUCs, and the change against the variant's baseline seed by seed."""
    trackers = (results or {}).get("trackers", {})
    auc = {n: trackers[n]["overall"].get("auc") for n in trackers}
    seq_names: List[str] = []
    for n in trackers:
        seq_names = sorted(trackers[n].get("sequences", {}))
        break
    budgets = sorted({pair_budget(v["cfg"]) for v in variants})
    lines = ["# Attention ablation: light paper models vs plain baselines", "",
             "Generated by `siam_tracker_ros/evaluation/ablation.py` (do not edit by hand).", "",
             "Command:", "", "```bash", command, "```", "",
             f"Machine: {cpu_name()} CPU ({os.cpu_count()} cores visible, shared with other jobs, so "
             "train times are only indicative), "
             f"torch threads 1 (OMP_NUM_THREADS=1), 1 data-loading worker, python {platform.python_version()}. "
             f"Pair budget per run: {', '.join(str(b) for b in budgets)} pairs (the same for every variant), "
             f"seeds {', '.join(map(str, seeds))}. Evaluation: one siam-eval OPE run on the shared "
             "validation sequences over every run's final checkpoint (no validation during training, "
             "no model selection). AUC: mean over seeds ± half the range.", "",
             "| variant | family | what differs | AUC (mean ± half range) | per seed | "
             "ΔAUC vs its baseline (mean ± half range) | P@20 (mean) | SR0.5 (mean) | train min per run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        n, a = v["name"], v["ablation"]
        per_seed = [auc.get(run_name(n, s)) for s in seeds]
        base = a.get("baseline")
        deltas = []
        if base:
            for s in seeds:
                x, y = auc.get(run_name(n, s)), auc.get(run_name(base, s))
                deltas.append(None if x is None or y is None else x - y)
        p20 = _mean_spread([trackers.get(run_name(n, s), {}).get("overall", {}).get("precision20") for s in seeds])
        sr = _mean_spread([trackers.get(run_name(n, s), {}).get("overall", {}).get("sr50") for s in seeds])
        mins = _mean_spread([(runs.get(run_name(n, s)) or {}).get("train_wall_s") for s in seeds])
        role = "(baseline)" if not base else _ms(*_mean_spread(deltas), signed=True) + (
            f" vs {base}" if a.get("role") == "recipe" else "")
        lines.append(f"| {n} | {a.get('family', '')} | {a.get('attention', '')} | {_ms(*_mean_spread(per_seed))} | "
                     f"{' / '.join(_fmt(x) for x in per_seed)} | {role} | {_fmt(p20[0])} | {_fmt(sr[0])} | "
                     f"{'n/a' if mins[0] is None else format(mins[0] / 60, '.1f')} |")
    if trackers and seq_names:
        lines += ["", "Per sequence (AUC, every run):", "",
                  "| run | " + " | ".join(seq_names) + " |",
                  "|---|" + "---|" * len(seq_names)]
        for v in variants:
            for s in seeds:
                seqs = trackers.get(run_name(v["name"], s), {}).get("sequences", {})
                if seqs:
                    lines.append(f"| {run_name(v['name'], s)} | "
                                 + " | ".join(_fmt(seqs.get(q, {}).get("auc")) for q in seq_names) + " |")
    lines += ["", "Final training loss (last epoch mean; losses differ between families, compare within one):", ""]
    for v in variants:
        for s in seeds:
            r = runs.get(run_name(v["name"], s), {})
            if r:
                lines.append(f"- {run_name(v['name'], s)}: {_fmt(r.get('final_loss'), '.4f')} after "
                             f"{r.get('epochs')} epochs, {r.get('pairs')} pairs "
                             f"({_fmt(r.get('epoch_seconds'), '.0f')} s in epochs)")
    os.makedirs(os.path.dirname(doc) or ".", exist_ok=True)
    text = "\n".join(lines) + "\n"
    with open(doc, "w") as f:
        f.write(text)
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="config/train/ablation_*.yaml", help="glob of the variant configs")
    ap.add_argument("--only", nargs="+", help="only these variants (names without 'ablation_')")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds to train each variant with")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--doc", default=DEFAULT_DOC, help="markdown table to write")
    ap.add_argument("--dataset", default=None, help="evaluation sequences (siam-eval's default: ../shared/data/sequences)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--retrain", action="store_true", help="train again even where a finished run exists")
    ap.add_argument("--report-only", action="store_true", help="train nothing, evaluate what is there")
    ap.add_argument("--train-only", action="store_true",
                    help="train, evaluate nothing: seeds can then train in parallel processes "
                         "(one --seeds N each, same --out) and one --report-only run scores them all")
    ap.add_argument("--workers", type=int, default=1, help="siam-eval worker processes")
    ap.add_argument("--eval-each", action="store_true",
                    help="evaluate after every run (a cut-short campaign still reports; costs CPU)")
    args = ap.parse_args(argv)
    all_variants = load_variants(args.configs)
    todo = [v for v in all_variants if not args.only or v["name"] in args.only]
    if not todo:
        print(f"no ablation configs match {args.configs}", file=sys.stderr)
        return 2
    command = ("OMP_NUM_THREADS=1 python -m siam_tracker_ros.evaluation.ablation --seeds "
               + " ".join(map(str, args.seeds)))
    runs: Dict[str, Dict[str, Any]] = {}
    for v in all_variants:
        for s in args.seeds:
            p = os.path.join(args.out, run_name(v["name"], s), "ablation_run.json")
            if os.path.isfile(p):
                with open(p) as f:
                    runs[run_name(v["name"], s)] = json.load(f)
    results: Dict[str, Any] = {}
    # seed-major: every variant once before any repeats, so a cut-short run compares
    for s in ([] if args.report_only else args.seeds):
        for v in todo:
            name = run_name(v["name"], s)
            runs[name] = train_variant(dict(v, name=name), args.out, args.device, args.retrain, s)
            if args.eval_each and not args.train_only:
                results = evaluate(sorted(runs), args.out, args.dataset, args.device, args.workers) or results
                print(write_table(all_variants, runs, results, args.doc, command, args.seeds), flush=True)
    if args.train_only:
        print(f"[ablation] trained {len(runs)} run(s) in {args.out}; score them with --report-only", flush=True)
        return 0
    results = evaluate(sorted(runs), args.out, args.dataset, args.device, args.workers)
    print(write_table(all_variants, runs, results, args.doc, command, args.seeds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
