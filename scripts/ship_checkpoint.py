#!/usr/bin/env python3
"""Ship a trained checkpoint as package data: siam_tracker_ros/weights/NAME.pt.

    python scripts/ship_checkpoint.py work_dirs/light/rasnet_light/last.pt rasnet_light

The weights are the checkpoint's; the config inside becomes config/models/NAME.yaml's
(so a path alone rebuilds the shipped model under its own name), after checking
that both describe the same network; the training metadata is kept and the
source path added. Refuses files above 5 MB.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

from siam_tracker_ros.core.checkpoints import load_checkpoint
from siam_tracker_ros.core.models import registry
from siam_tracker_ros.train.config import checkpoint_model_config

LIMIT = 5 * 1024 * 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("name", help="config/models NAME; writes siam_tracker_ros/weights/NAME.pt")
    args = ap.parse_args(argv)
    trained_cfg, state, meta = load_checkpoint(args.checkpoint)
    cfg = registry.load_model_config(args.name)
    if trained_cfg["model"] != cfg["model"]:
        print(f"{args.checkpoint} was trained as {trained_cfg['model']}, not {cfg['model']}", file=sys.stderr)
        return 2
    model = registry.build_model(cfg["model"])
    model.load_state_dict(state, strict=True)
    out = os.path.join(registry.WEIGHTS_DIR, f"{args.name}.pt")
    meta = dict(meta, source=os.path.relpath(args.checkpoint), shipped_as=args.name)
    tmp = out + ".tmp"
    torch.save({"format": "siam_tracker_ros/checkpoint-v1", "config": checkpoint_model_config(cfg),
                "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                "meta": meta}, tmp)
    size = os.path.getsize(tmp)
    if size > LIMIT:
        os.remove(tmp)
        print(f"{args.name}: {size} bytes > 5 MB", file=sys.stderr)
        return 2
    os.replace(tmp, out)
    print(f"{out}: {os.path.getsize(out)} bytes, from {args.checkpoint} ({meta.get('train_config')}, "
          f"epoch {meta.get('epoch')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
