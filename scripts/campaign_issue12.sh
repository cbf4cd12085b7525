#!/bin/bash
# Issue 12's training campaign on the CPU, one process at a time, resumable:
# every step is skipped when its output exists. Run it in the background:
#
#   nohup nice -n 5 scripts/campaign_issue12.sh > work_dirs/logs/campaign.log 2>&1 &
#
# 1. data: pseudo-labelled clips and two synthetic sets (docs/TRAINING_DATA.md)
# 2. the default's candidates (config/train/default_ft_*.yaml)  -> work_dirs/default_cand/NAME
# 3. the shipped light models (config/train/light_*.yaml)         -> work_dirs/light/NAME
# 4. the ablation, seeds 0 and 1 (config/train/ablation_*.yaml)   -> work_dirs/ablation, docs/benchmarks/ablation.md
# 5. siam-eval of the default's candidates (the validation decision) -> work_dirs/default_cand/eval
# Evaluation of the shipped set, siam-bench and the docs follow by hand (docs/MODEL_CARD.md).
set -u
cd "$(dirname "$0")/.." && . ./env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
. scripts/campaign_lib.sh   # stamp, run, train

# 1. data
[ -f work_dirs/data/pseudo_v1/dataset.json ] || run python -m siam_tracker_ros.train.pseudo_label work_dirs/data/pseudo_v1
[ -f work_dirs/data/synth_b/dataset.json ] || run python -m siam_tracker_ros.train.synthetic work_dirs/data/synth_b --sequences 300 --frames 16 --seed 0 --workers 1
[ -f work_dirs/data/synth_c/dataset.json ] || run python -m siam_tracker_ros.train.synthetic work_dirs/data/synth_c --sequences 400 --frames 16 --seed 1 --workers 1
[ -f work_dirs/previous_default.pt ] || git show f70a468:siam_tracker_ros/weights/default.pt > work_dirs/previous_default.pt

# 2. the default's candidates
for c in default_ft_nanotrack default_ft_nanotrack_real default_ft_previous; do
  train config/train/$c.yaml work_dirs/default_cand/$c
done

# 3. the shipped light models
for m in rasnet_light ta_asiam_light siamcan_light siamaf_msa_light plain_light; do
  train config/train/light_$m.yaml work_dirs/light/$m
done

# 4. the ablation (seed by seed)
run python -m siam_tracker_ros.evaluation.ablation --seeds 0 1 --out work_dirs/ablation \
  --doc docs/benchmarks/ablation.md

# 5. the validation decision between the default's candidates
mkdir -p work_dirs/default_cand/ckpt
for c in default_ft_nanotrack default_ft_nanotrack_real default_ft_previous; do
  [ -f work_dirs/default_cand/$c/last.pt ] && cp work_dirs/default_cand/$c/last.pt work_dirs/default_cand/ckpt/$c.pt
done
run siam-eval --dataset ../shared/data/sequences --trackers work_dirs/default_cand/ckpt/*.pt nanotrack \
  --device cpu --workers 1 --threads 1 --out work_dirs/default_cand/eval --no-plots
echo "[$(stamp)] campaign finished"
