"""siam-train: train a tracker from a training config.

    siam-train --config config/train/NAME.yaml [--resume PATH] [--out DIR]

One GPU / CPU:        siam-train --config config/train/siamfc.yaml
Several GPUs / nodes: torchrun --nproc_per_node=4 -m siam_tracker_ros.cli.train --config ...
                      (DistributedDataParallel; nccl on CUDA, gloo on CPU)

Writes DIR/last.pt, DIR/epoch_NNN.pt, DIR/best.pt (project checkpoints: the
model config travels inside, so `siam-track --model DIR/best.pt` works),
DIR/last.state.pt (for --resume), DIR/log.csv, DIR/train_config.yaml.
Validation (OPE AUC on ../shared/data/sequences, or val.sequences /
$SIAM_TRACKER_SEQUENCES) runs every epoch on rank 0 and is skipped, with the
reason printed, where no such folder exists.
"""
from __future__ import annotations

import argparse
import sys

import yaml


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="siam-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="training config YAML (config/train/NAME.yaml)")
    ap.add_argument("--resume", default=None,
                    help="continue a run: its output folder, its last.pt or last.state.pt")
    ap.add_argument("--out", default=None, help="output folder (default: config 'out' or work_dirs/NAME)")
    ap.add_argument("--device", default=None, help="cpu, cuda or auto (default: config or auto)")
    ap.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    ap.add_argument("--batch-size", type=int, default=None, help="override train.batch_size")
    ap.add_argument("--workers", type=int, default=None, help="override train.num_workers")
    ap.add_argument("--no-val", action="store_true", help="skip the per-epoch validation")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any config entry, dotted key, YAML value (e.g. train.loss.type=ban)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return ap


def apply_override(cfg: dict, assignment: str) -> None:
    if "=" not in assignment:
        raise SystemExit(f"--set needs KEY=VALUE, got '{assignment}'")
    key, value = assignment.split("=", 1)
    node = cfg
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SystemExit(f"--set {key}: '{p}' is not a section")
    node[parts[-1]] = yaml.safe_load(value)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..train.config import load_train_config
    from ..train.trainer import train
    try:
        cfg = load_train_config(args.config)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"siam-train: {exc}", file=sys.stderr)
        return 2
    for a in args.set:
        apply_override(cfg, a)
    tcfg = cfg.setdefault("train", {})
    if args.epochs is not None:
        tcfg["epochs"] = args.epochs
    if args.batch_size is not None:
        tcfg["batch_size"] = args.batch_size
    if args.workers is not None:
        tcfg["num_workers"] = args.workers
    if args.no_val:
        cfg.setdefault("val", {})["enabled"] = False
    trainer = train(cfg, out_dir=args.out, resume=args.resume, device=args.device,
                    progress=not args.no_progress)
    if trainer.is_main:
        print(f"done: checkpoints in {trainer.out_dir} (last.pt"
              f"{', best.pt' if trainer.best_auc >= 0 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
