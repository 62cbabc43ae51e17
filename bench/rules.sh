#!/usr/bin/env bash
# Issue 38, item 4: which layers, by which rule? `probe.rule = "ends"` (one adjacent pair of
# blocks near each end, the authors' choice) against `"pairs"` (the study's default), with the
# hand-named blocks 0–2 as a reference point. Resumable:
#
#   nohup nice -n 19 bash bench/rules.sh >> runs/rules.log 2>&1 &
#
# 1. en-fr study protocol (configs/en-fr-study.toml, 500 pairs per direction): landermt's dev
#    sweep over the two rules (100 dev lines; blocks 0–2 are the study's existing
#    `probe.layers` sweep), then `ends` on the study's test sets, as its own run in
#    results/en-fr-rules/ (none and landermt; the study's systems are the comparison).
# 2. Joint (configs/paper-joint-sweep.toml at landermt's joint rate, 1e-4): the same dev sweep
#    over the rules, and blocks 0–2, on the joint dev set (20 lines a direction).
# RULES_ONLY=REGEX picks steps (study-sweep, study-test, joint-sweep). Commit results/ after each
# `done` line of the log.
set -euo pipefail
cd "$(dirname "$0")/.."
XTASK=${XTASK:-runs/bin/xtask-rules}   # a copy of target/debug/xtask, so rebuilds do not disturb it
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
ONLY=${RULES_ONLY:-study-sweep|study-test|joint-sweep}
log() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p runs "$(dirname "$XTASK")"
[ -x "$XTASK" ] || { cargo build -q -p xtask && cp target/debug/xtask "$XTASK.tmp" && mv "$XTASK.tmp" "$XTASK"; }

if [[ study-sweep =~ $ONLY ]]; then
  log "study-sweep"
  "$XTASK" sweep --config configs/en-fr-study.toml --method landermt --set probe.rule=pairs,ends --dev-lines 100 < /dev/null
  log "study-sweep done"
fi

if [[ study-test =~ $ONLY ]]; then
  log "study-test"
  cfg=runs/rules-ends.toml
  sed -e 's|^name = "en-fr-study"|name = "en-fr-rules-ends"|' \
      -e 's|^dir = "results/en-fr-study".*|dir = "results/en-fr-rules/ends"|' \
      -e 's|^methods = \[.*|methods = ["none", "landermt"]|' \
      -e 's|^icl_shots = .*|icl_shots = 0            # the study'"'"'s icl row is not decoded again|' \
      -e 's|^rule = "pairs".*|rule = "ends"|' configs/en-fr-study.toml > "$cfg.tmp"
  grep -q '^rule = "ends"$' "$cfg.tmp" && grep -q 'results/en-fr-rules/ends' "$cfg.tmp"
  mv "$cfg.tmp" "$cfg"
  "$XTASK" pipeline --config "$cfg" < /dev/null
  log "study-test done"
fi

if [[ joint-sweep =~ $ONLY ]]; then
  log "joint-sweep"
  # At landermt's joint rate (the sweep config's base rate is 3e-4), as bench/joint.sh's CAR sweep.
  sed 's/^lr = 3e-4 .*/lr = 1e-4/' configs/paper-joint-sweep.toml > runs/paper-joint-rules.toml
  grep -q '^lr = 1e-4$' runs/paper-joint-rules.toml
  "$XTASK" sweep --config runs/paper-joint-rules.toml --method landermt --set probe.rule=ends,pairs --dev-lines 20 < /dev/null
  "$XTASK" sweep --config runs/paper-joint-rules.toml --method landermt --set 'probe.layers=[0,1,2]' --dev-lines 20 < /dev/null
  log "joint-sweep done"
fi
