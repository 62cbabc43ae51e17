#!/usr/bin/env bash
# Issue 38's joint study on two CPU cores, resumable: the learning-rate sweeps on the joint dev
# set (configs/paper-joint-sweep.toml: 100 pairs per direction, sharing results/paper-joint/;
# the first runs the joint probe, score and routes there), then the full run.
#
#   nohup nice -n 19 bash bench/joint.sh >> runs/joint.log 2>&1 &
#
# Commit results/paper-joint/ after each `done` line of the log. JOINT_ONLY=REGEX runs only
# the matching steps (sweep-landermt, sweep-lora, sweep-full, pipeline); by default the sweeps
# only. After them, put each method's best rate in configs/paper-joint.toml
# ([train.methods.M] lr; the sweeps' sweep.md name it) and run JOINT_ONLY=pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
XTASK=${XTASK:-runs/bin/xtask-joint}   # a copy of target/debug/xtask, so rebuilds do not disturb it
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
ONLY=${JOINT_ONLY:-sweep}
log() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p "$(dirname "$XTASK")"
[ -x "$XTASK" ] || { cargo build -q -p xtask && cp target/debug/xtask "$XTASK.tmp" && mv "$XTASK.tmp" "$XTASK"; }

sweep() {
  local method=$1 rates=$2
  [[ sweep-$method =~ $ONLY ]] || return 0
  log "sweep $method $rates"
  "$XTASK" sweep --config configs/paper-joint-sweep.toml --method "$method" --set "train.lr=$rates" --dev-lines 20 < /dev/null
  log "sweep $method done"
}
sweep landermt 3e-5,1e-4,3e-4,1e-3   # 1e-4 led 3e-4 on 2026-12-06; the authors use 5e-5
sweep lora 3e-4,1e-3
sweep full 3e-6,1e-5
if [[ pipeline =~ $ONLY ]]; then
  log "pipeline"
  "$XTASK" pipeline --config configs/paper-joint.toml < /dev/null
  log "pipeline done"
fi
