# Helpers of the training campaign scripts (sourced: scripts/campaign_issue12*.sh).
stamp() { date -u +%H:%M:%S; }
run() { echo "[$(stamp)] start: $*"; local t0=$(date +%s); "$@"; local rc=$?;
        echo "[$(stamp)] done rc=$rc in $(( $(date +%s) - t0 ))s: $*"; return $rc; }
train() {   # train CONFIG OUT: skip when OUT/last.pt has all epochs
  local cfg=$1 out=$2
  local epochs; epochs=$(python -c "import yaml; print(yaml.safe_load(open('$cfg'))['train']['epochs'])")
  if [ -f "$out/log.csv" ] && [ -f "$out/last.pt" ] && \
     [ "$(python -c "import csv; r=list(csv.DictReader(open('$out/log.csv'))); print(int(float(r[-1]['epoch'])) if r else 0)")" = "$epochs" ]; then
    echo "[$(stamp)] skip (done): $cfg"; return 0; fi
  rm -rf "$out"; mkdir -p "$out"
  run siam-train --config "$cfg" --device cpu --no-val --no-progress --out "$out" > "$out/train_stdout.log" 2>&1
  tail -n 3 "$out/train_stdout.log"
}
