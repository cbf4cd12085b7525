#!/bin/bash
# After scripts/campaign_issue12.sh: copy the trained checkpoints into the package
# (siam_tracker_ros/weights/NAME.pt, named by config/models/NAME.yaml's `weights:`),
# then the acceptance measurements of issue 12 in one siam-eval run and one
# siam-bench run (docs/MODEL_CARD.md quotes both):
#
#   scripts/issue12_ship_and_eval.sh DEFAULT_CANDIDATE     # e.g. default_ft_nanotrack
set -eu
cd "$(dirname "$0")/.." && . ./env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
best=${1:?which default candidate (work_dirs/default_cand/NAME/last.pt) ships as default.pt}
python scripts/ship_checkpoint.py work_dirs/default_cand/$best/last.pt default
for m in rasnet_light ta_asiam_light siamcan_light siamaf_msa_light plain_light; do
  # the last stage that ran (work_dirs/light3, light2, light); then set `weights: NAME.pt` in config/models/NAME.yaml
  for stage in light3 light2 light; do src=work_dirs/$stage/$m/last.pt; [ -f $src ] && break; done
  python scripts/ship_checkpoint.py $src $m
done
ls -l siam_tracker_ros/weights/*.pt
SHIPPED="default rasnet_light ta_asiam_light siamcan_light siamaf_msa_light plain_light"
nice -n 5 siam-eval --dataset ../shared/data/sequences --trackers $SHIPPED nanotrack opencv-nanotrack opencv-csrt opencv-kcf \
  --device cpu --workers 1 --threads 1 --no-cache --out out/issue12/eval
nice -n 5 siam-bench --models $(for m in $SHIPPED; do echo $m $m@onnxruntime; done) nanotrack nanotrack@onnxruntime \
  --peers opencv-nanotrack opencv-csrt opencv-kcf --frames 60 --threads 1 --out out/issue12/bench
