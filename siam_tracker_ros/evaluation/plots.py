"""Success / precision plots (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np

from . import metrics

_STYLES = ["-", "--", "-.", ":"]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def plot_curves(curves: Dict[str, np.ndarray], scores: Dict[str, float], x: np.ndarray,
                path: str, title: str, xlabel: str, ylabel: str, score_name: str) -> str:
    """One curve per tracker, sorted by score, the score in the legend; saves a PNG."""
    plt = _pyplot()
    order = sorted(curves, key=lambda k: -np.nan_to_num(scores.get(k, 0.0), nan=-1.0))
    fig, ax = plt.subplots(figsize=(9.0, 4.8), dpi=120)
    cmap = plt.get_cmap("tab10")
    for i, name in enumerate(order):
        ax.plot(x, curves[name], _STYLES[(i // 10) % len(_STYLES)], color=cmap(i % 10), linewidth=2,
                label=f"{name} [{score_name} {scores[name]:.3f}]")
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel(ylabel, fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.set_xlim(float(x[0]), float(x[-1]))
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.4)
    # outside the axes, right: never hides a curve
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_plots(scored: Dict[str, Dict], out_dir: str, dataset_label: str = "",
                notes: Dict[str, str] = None) -> List[str]:
    """success_plot.png, precision_plot.png, norm_precision_plot.png from score_run() output.

    `notes`: weights note per tracker; trackers without weights are labelled "(untrained)"."""
    if not scored:
        return []
    suffix = f" - {dataset_label}" if dataset_label else ""
    notes = notes or {}

    def label(name):
        return f"{name} (untrained)" if notes.get(name, "").startswith("none") else name

    # trackers with results for only some sequences would not compare: left out
    overall = {label(k): v["overall"] for k, v in scored.items() if v["overall"].get("complete", True)}
    if not overall:
        return []
    paths = [
        plot_curves({k: o["success_curve"] for k, o in overall.items()},
                    {k: o["auc"] for k, o in overall.items()}, metrics.IOU_THRESHOLDS,
                    os.path.join(out_dir, "success_plot.png"), f"Success plot of OPE{suffix}",
                    "Overlap threshold (IoU)", "Success rate", "AUC"),
        plot_curves({k: o["precision_curve"] for k, o in overall.items()},
                    {k: o["precision20"] for k, o in overall.items()}, metrics.PIXEL_THRESHOLDS,
                    os.path.join(out_dir, "precision_plot.png"), f"Precision plot of OPE{suffix}",
                    "Location error threshold (px)", "Precision", "P@20px"),
        plot_curves({k: o["norm_precision_curve"] for k, o in overall.items()},
                    {k: o["norm_precision20"] for k, o in overall.items()}, metrics.NORM_THRESHOLDS,
                    os.path.join(out_dir, "norm_precision_plot.png"),
                    f"Normalised precision plot of OPE{suffix}",
                    "Normalised location error threshold", "Normalised precision", "P_norm@0.20"),
    ]
    return paths
