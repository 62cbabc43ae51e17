#!/usr/bin/env bash
# Issue 37's re-scoring: every committed table decoded again under the newline rule
# ("after-text"), with off-target rates, runaway counts and forgetting intervals.
#
#   nohup nice -n 19 bash bench/rescore.sh >> runs/rescore.log 2>&1 &
#
# 1. The default run (configs/en-fr.toml) from scratch; its report is copied to
#    docs/study-en-fr/ (runs/ is not committed), where the README's table is read from.
# 2. configs/paper-cpu.toml: `none` is decoded again; a trained system is kept where its
#    hypotheses have no empty line (the old cut and the new rule agree there), otherwise
#    trained again (its delta is not committed) and decoded.
# 3. configs/en-fr-study.toml: the same, for `none`, `icl` and the systems with an empty line.
#
# Each command resumes from its stamps and kept outputs; commit results/ after each `decode:`
# line of the log (DEVELOPERS.md, "Long runs"). RESCORE_ONLY=REGEX runs only the matching steps.
set -euo pipefail
cd "$(dirname "$0")/.."
XTASK=${XTASK:-runs/bin/xtask-rescore}   # a copy of target/debug/xtask, so rebuilds do not disturb it
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
ONLY=${RESCORE_ONLY:-.}

log() { echo "[$(date -u +%FT%TZ)] $*"; }

mkdir -p "$(dirname "$XTASK")"
[ -x "$XTASK" ] || { cargo build -q -p xtask && cp target/debug/xtask "$XTASK.tmp" && mv "$XTASK.tmp" "$XTASK"; }

if [[ default =~ $ONLY ]]; then
  log "default run"
  start=$(date +%s)
  "$XTASK" pipeline --config configs/en-fr.toml < /dev/null
  log "default run: $(( $(date +%s) - start )) s"
  cp runs/en-fr/report.json runs/en-fr/report.md docs/study-en-fr/
  cp runs/en-fr/figures/forgetting-*.svg docs/study-en-fr/ 2>/dev/null || true
fi
for config in paper-cpu en-fr-study; do
  [[ $config =~ $ONLY ]] || continue
  log "$config"
  "$XTASK" pipeline --config "configs/$config.toml" < /dev/null
done
log "done"
