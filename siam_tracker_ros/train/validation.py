"""Validation during training: OPE success AUC on labelled sequences (rank 0).

The sequences are read by evaluation/datasets.py and scored by
evaluation/metrics.py (the siam-eval code), so a val_auc in a training log is
the AUC siam-eval reports for the same checkpoint and frames. Validation reads
the validation sequences; training never does (train/sampler.py refuses them).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..core.tracking.loading import build_tracker_from_config


def validate(model: nn.Module, model_cfg: Dict[str, Any], root: str, device: torch.device,
             max_frames: Optional[int] = None, names: Optional[List[str]] = None) -> Dict[str, Any]:
    """OPE success AUC (21 IoU thresholds, IoU > t, frame 0 included, sequences
    weighted equally) of `model` on the sequences under `root`."""
    import cv2
    from ..evaluation import datasets as ED
    from ..evaluation import metrics as EM
    sequences = ED.load_shared(root)
    if names:
        sequences = [s for s in sequences if s.name in set(names)]
    tracker = build_tracker_from_config(model_cfg, model=model, device=str(device))
    per = {}
    for seq in sequences:
        n = len(seq) if not max_frames else min(len(seq), int(max_frames))
        pred = np.zeros((n, 4))
        for i in range(n):
            img = cv2.imread(seq.frame_paths[i], cv2.IMREAD_COLOR)
            if i == 0:
                tracker.init(img, seq.gt[0])
                pred[0] = seq.gt[0]
            else:
                pred[i] = tracker.track(img).box
        per[seq.name] = float(np.mean(EM.success_curve(pred, seq.gt[:n])))
    return {"auc": float(np.mean(list(per.values()))) if per else float("nan"),
            "per_sequence": per, "source": "siam_tracker_ros.evaluation"}


def resolve_sequences_root(val_cfg: Dict[str, Any]) -> Tuple[Optional[str], str]:
    """(root or None, reason when None)."""
    if val_cfg.get("enabled", True) is False:
        return None, "validation disabled in the config (val.enabled: false)"
    root = val_cfg.get("sequences", "../shared/data/sequences")
    if root and os.path.isdir(root):
        return root, ""
    env = os.environ.get("SIAM_TRACKER_SEQUENCES")
    if env and os.path.isdir(env):
        return env, ""
    return None, f"no validation sequences at '{root}' (set val.sequences or SIAM_TRACKER_SEQUENCES)"
