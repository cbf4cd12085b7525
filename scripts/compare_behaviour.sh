#!/bin/bash
# Behaviour before/after a refactoring, measured on one machine with one venv:
#   scripts/compare_behaviour.sh BEFORE_COMMIT AFTER_COMMIT OUT [MODELS...]
# For each commit (checked out with `git worktree` under OUT/src-*): siam-eval of MODELS on
# the shared sequences (boxes/) and evaluation.lost_bench (per-run counts, default and
# nanotrack), then a byte-for-byte comparison of every box file and of every per-run count.
# The code under test comes first on PYTHONPATH; the environment (.venv, messages) is this
# checkout's. Issue 14's record: docs/benchmarks/refactor_issue14.md.
set -euo pipefail
before=${1:?before commit}; after=${2:?after commit}; out=${3:?output folder}; shift 3
models=${*:-default nanotrack rasnet_light siamcan_light siamaf_msa_light ta_asiam_light}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/env.sh"
export OMP_NUM_THREADS=1
mkdir -p "$out"
for side in before after; do
  commit=$([ $side = before ] && echo "$before" || echo "$after")
  src="$out/src-$side"
  [ -d "$src" ] || git -C "$root" worktree add --detach -q "$src" "$commit"
  echo "[compare] $side = $(git -C "$src" rev-parse --short HEAD)"
  PYTHONPATH="$src" siam-eval --dataset "$root/../shared/data/sequences" --trackers $models \
    --allow-untrained --device cpu --workers 1 --no-plots --quiet --out "$out/$side/eval" > "$out/$side/eval.log" 2>&1 \
    || PYTHONPATH="$src" siam-eval --dataset "$root/../shared/data/sequences" --trackers $models \
       --device cpu --workers 1 --no-plots --quiet --out "$out/$side/eval" > "$out/$side/eval.log" 2>&1
  PYTHONPATH="$src" python -m siam_tracker_ros.evaluation.lost_bench --models default nanotrack --per-run \
    --jobs 1 --device cpu --json "$out/$side/lost.json" --markdown "$out/$side/lost.md" > "$out/$side/lost.log" 2>&1
done
python - "$out" <<'PY'
import filecmp, json, os, sys
out = sys.argv[1]
a, b = (os.path.join(out, s, "eval", "boxes") for s in ("before", "after"))
same = diff = 0
for tracker in sorted(os.listdir(a)):
    for f in sorted(os.listdir(os.path.join(a, tracker))):
        pb = os.path.join(b, tracker, f)
        if os.path.exists(pb) and filecmp.cmp(os.path.join(a, tracker, f), pb, shallow=False):
            same += 1
        else:
            diff += 1
            print(f"boxes differ: {tracker}/{f}")
print(f"siam-eval box files: {same} identical, {diff} different")
la, lb = (json.load(open(os.path.join(out, s, "lost.json"))) for s in ("before", "after"))
def counts(run):
    return {k: v for k, v in run.items() if "ms" not in k and "time" not in k}
for model in la["models"]:
    ra, rb = la["models"][model]["runs"], lb["models"][model]["runs"]
    equal = sum(counts(x) == counts(y) for x, y in zip(ra, rb))
    print(f"lost_bench {model}: {equal} of {len(ra)} runs with identical counts")
PY
