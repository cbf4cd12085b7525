#!/bin/bash
# Second queue of issue 12's campaign (after scripts/campaign_issue12.sh's
# stage-1 light models): finishes stage 1 where missing, then stage 2 of every
# shipped light model (config/train/light2_*.yaml -> work_dirs/light2/NAME), then
# the ablation (seeds 0 and 1). One process at a time; resumable (finished runs
# are skipped).
#
#   nohup nice -n 5 scripts/campaign_issue12_stage2.sh [PID_TO_WAIT_FOR] > work_dirs/logs/campaign2.log 2>&1 &
set -u
cd "$(dirname "$0")/.." && . ./env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -n "${1:-}" ]; then while kill -0 "$1" 2>/dev/null; do sleep 20; done; fi
. scripts/campaign_lib.sh   # stamp, run, train
echo "code: $(git rev-parse --short HEAD)"
MODELS="rasnet_light ta_asiam_light siamcan_light siamaf_msa_light plain_light"
for m in $MODELS; do train config/train/light_$m.yaml work_dirs/light/$m; done
for m in $MODELS; do train config/train/light2_$m.yaml work_dirs/light2/$m; done
run python -m siam_tracker_ros.evaluation.ablation --seeds 0 1 --out work_dirs/ablation --doc docs/benchmarks/ablation.md
echo "[$(stamp)] campaign (stage 2 + ablation) finished"
