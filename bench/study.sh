#!/usr/bin/env bash
# Issue 13's study, start to finish: the 500-pair pipeline (configs/en-fr-study.toml), then the
# sweeps that check its learning rates and its method choices on dev; `full`'s sweep, three hours
# a point, runs last.
#
#   nohup nice -n 19 bash bench/study.sh >> runs/study.log 2>&1 &
#
# STUDY_ONLY=REGEX runs only the sweeps whose line below matches it (the pipeline always runs
# first, and is a no-op once everything is decoded), e.g. STUDY_ONLY=score.epsilon.
#
# Every command resumes from its stamps, checkpoints and kept outputs, so the script can be
# killed and run again, on this machine or on a fresh clone of a repository where results/ was
# committed: each system is kept once decoded (its `decode:` line in the log), each sweep point
# once scored on dev. Commit results/ between sittings (DEVELOPERS.md, "Long runs").
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=configs/en-fr-study.toml
XTASK=${XTASK:-runs/bin/xtask-study}   # a copy of target/debug/xtask, so rebuilds do not disturb it
# The sweeps run a later build (360f26a or newer), whose points at the config's own values take
# the pipeline's trained systems instead of training them again.
XTASK_SWEEP=${XTASK_SWEEP:-runs/bin/xtask-sweep}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}

log() { echo "[$(date -u +%FT%TZ)] $*"; }

mkdir -p "$(dirname "$XTASK")"
for bin in "$XTASK" "$XTASK_SWEEP"; do
  [ -x "$bin" ] || { cargo build -q -p xtask && cp target/debug/xtask "$bin"; }
done

log "pipeline"
"$XTASK" pipeline --config "$CONFIG"
ONLY=${STUDY_ONLY:-.}
while read -r method key values; do
  [[ "$method $key" =~ $ONLY ]] || continue
  log "sweep $method $key=$values"
  "$XTASK_SWEEP" sweep --config "$CONFIG" --method "$method" --set "$key=$values" --dev-lines 100 < /dev/null
done <<'EOF'
landermt train.lr 1e-4,3e-4,1e-3
landermt route.car taylor,static,learned,off
lora train.lr 3e-4,1e-3
layers train.lr 3e-5,1e-4,3e-4
landermt probe.k 2,4,6
landermt score.epsilon 0.8,0.9,0.95
layers probe.k 4,6
layers probe.layers [0,1,2],[15,16,17]
landermt probe.layers [0,1,2]
full train.lr 1e-5,3e-5
EOF
log "done: results/en-fr-study/report.md and results/en-fr-study/sweep/"
