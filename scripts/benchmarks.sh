#!/usr/bin/env bash
# Regenerates docs/BENCHMARKS.md (one command):
#   bash scripts/benchmarks.sh
# Runs siam-eval (one-pass evaluation) over the 7 shared sequences with every
# registered model and the OpenCV peers, siam-eval --protocol vot for the
# trackers in VOT_TRACKERS, and siam-bench (speed / memory), then writes
# docs/BENCHMARKS.md and docs/benchmarks/*.png from their JSON outputs.
# It also includes, as they are, the tables that have their own (longer) commands,
# each named inside its file: docs/benchmarks/lost_state.md and lost_state_grey.md (evaluation.lost_bench),
# multi_target.md (siam-bench --targets), soak.md (ros.soak, 10 min) and
# ablation.md (evaluation.ablation, about 1 h of CPU).
#
# Variables:
#   MODELS="default nanotrack"  models for siam-eval (default: every shipped trained model
#                               and nanotrack)
#   BENCH_MODELS="..."          models for siam-bench (default: the same models, each also
#                               @onnxruntime: NAME@ENGINE times a model through that engine)
#   PEERS="opencv-csrt ..."     OpenCV peers (default: csrt, kcf, nanotrack)
#   VOT_TRACKERS="..."          trackers for the reset protocol (default: the trained
#                               default and nanotrack + PEERS: untrained models only fail and restart;
#                               "none" to skip)
#   SEQUENCES=DIR               dataset root (default ../shared/data/sequences)
#   OUT=DIR                     outputs and cache (default out/benchmarks)
#   WORKERS=N                   siam-eval worker processes (default: number of cores)
#   BENCH_FRAMES=N              siam-bench timed frames (default 30)
#   SKIP_BENCH=1 / SKIP_EVAL=1  reuse what OUT already has for that part
#   EVAL_CACHE_ONLY=1           siam-eval --cache-only: tables from the cached runs only
#                               (unfinished trackers are listed apart)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
    if [ -f env.sh ] && [ -f .venv/bin/activate ]; then
        # shellcheck disable=SC1091
        . ./env.sh
    elif [ -f .venv/bin/activate ]; then
        # shellcheck disable=SC1091
        . .venv/bin/activate
    fi
fi
command -v siam-eval >/dev/null || { echo "benchmarks.sh: siam-eval not found: run 'make env' first" >&2; exit 2; }

SEQUENCES=${SEQUENCES:-../shared/data/sequences}
OUT=${OUT:-out/benchmarks}
PEERS=${PEERS:-opencv-csrt opencv-kcf opencv-nanotrack}
# The trained models: every one shipped as package data, and nanotrack (NanoTrack
# v2's published weights from ../shared). The full-size paper models ship without
# weights: loading refuses them, so they are not in the default lists.
SHIPPED="$(python -c "from siam_tracker_ros.core.tracking.loading import shipped_trained_models as s; print(' '.join(s()))")"
MODELS=${MODELS:-$SHIPPED nanotrack}
if [ -z "${BENCH_MODELS:-}" ]; then
    # NAME@onnxruntime: the same model through onnxruntime (the node's CPU engine)
    BENCH_MODELS="$(for m in $SHIPPED nanotrack; do printf '%s %s@onnxruntime ' "$m" "$m"; done)"
fi
VOT_TRACKERS=${VOT_TRACKERS:-default nanotrack $PEERS}
WORKERS=${WORKERS:-$(python -c "import os; print(os.cpu_count() or 1)")}
BENCH_FRAMES=${BENCH_FRAMES:-20}
CACHE_ONLY=()
if [ -n "${EVAL_CACHE_ONLY:-}" ]; then CACHE_ONLY=(--cache-only); fi

if [ ! -d "$SEQUENCES" ]; then
    echo "benchmarks.sh: $SEQUENCES not found (set SEQUENCES=DIR)" >&2
    exit 2
fi
echo "benchmarks.sh: models: $MODELS; bench: $BENCH_MODELS; peers: $PEERS; sequences: $SEQUENCES; out: $OUT"

# shellcheck disable=SC2086
if [ -z "${SKIP_EVAL:-}" ]; then
    siam-eval --dataset "$SEQUENCES" --trackers $MODELS $PEERS --device cpu \
        --workers "$WORKERS" --out "$OUT/eval" --quiet "${CACHE_ONLY[@]}" || echo "benchmarks.sh: siam-eval reported failures (see $OUT/eval/results.md)" >&2
    if [ "$VOT_TRACKERS" != "none" ]; then
        siam-eval --dataset "$SEQUENCES" --trackers $VOT_TRACKERS --device cpu --protocol vot \
            --workers "$WORKERS" --out "$OUT/eval_vot" --quiet "${CACHE_ONLY[@]}" || echo "benchmarks.sh: siam-eval --protocol vot reported failures" >&2
    fi
fi
if [ -z "${SKIP_BENCH:-}" ]; then
    siam-bench --models $BENCH_MODELS --peers $PEERS --frames "$BENCH_FRAMES" --out "$OUT/bench"
fi
vot_arg=()
if [ "$VOT_TRACKERS" != "none" ] && [ -f "$OUT/eval_vot/results.json" ]; then
    vot_arg=(--vot "$OUT/eval_vot")
fi
python -m siam_tracker_ros.evaluation.benchmarks_doc --eval "$OUT/eval" "${vot_arg[@]}" \
    --bench "$OUT/bench" --images docs/benchmarks --out docs/BENCHMARKS.md
