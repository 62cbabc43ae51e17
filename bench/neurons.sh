#!/usr/bin/env bash
# Issue 39's comparison, "does the choice of neurons matter?", on the en-fr study protocol
# (configs/en-fr-study.toml: 500 pairs per direction, 200-line tests), resumable:
#
#   nohup nice -n 19 bash bench/neurons.sh >> runs/neurons.log 2>&1 &
#
# Each variant is the study's config with one change, as its own run in results/en-fr-neurons/:
#   lape      score.method = "lape": landermt on LAPE's units, and the `lape` system
#   random    score.method = "random": landermt on random units, Taylor's counts per layer
#   identity  route.start = "identity": landermt with Taylor's units, starting as the base model
# Each method's rate is swept on dev first (1e-4, 3e-4, 1e-3; 100 dev lines) and the best one
# written into the variant's config before its pipeline runs. `none`, `lora`, `full` and
# landermt with Taylor units come from results/en-fr-study. NEURONS_ONLY=REGEX picks variants.
# Commit results/en-fr-neurons/ after each `done` line of the log.
set -euo pipefail
cd "$(dirname "$0")/.."
XTASK=${XTASK:-runs/bin/xtask-neurons}   # a copy of target/debug/xtask, so rebuilds do not disturb it
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
ONLY=${NEURONS_ONLY:-lape|random|identity}
RATES=1e-4,3e-4,1e-3
log() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p runs "$(dirname "$XTASK")"
[ -x "$XTASK" ] || { cargo build -q -p xtask && cp target/debug/xtask "$XTASK.tmp" && mv "$XTASK.tmp" "$XTASK"; }

# runs/neurons-NAME.toml: the study's config, in its own folder, with METHODS and one EDIT
# (a sed script) applied.
derive() {
  local name=$1 methods=$2 edit=$3 cfg=runs/neurons-$1.toml
  sed -e "s|^name = \"en-fr-study\"|name = \"en-fr-neurons-$name\"|" \
      -e "s|^dir = \"results/en-fr-study\".*|dir = \"results/en-fr-neurons/$name\"|" \
      -e "s|^methods = \[.*|methods = $methods|" \
      -e "s|^icl_shots = .*|icl_shots = 0            # the study's icl row is not decoded again|" \
      -e "$edit" configs/en-fr-study.toml > "$cfg.tmp"
  grep -qF "results/en-fr-neurons/$name" "$cfg.tmp" && grep -qF "methods = $methods" "$cfg.tmp"
  mv "$cfg.tmp" "$cfg"
}

# METHOD's rate in variant NAME: swept on 100 dev lines, the best written into its config.
source bench/tune-rate.sh
tune() {
  tune_rate "runs/neurons-$1.toml" "results/en-fr-neurons/$1" "$2" "$RATES" 100
}

run_variant() {
  local name=$1 methods=$2 edit=$3
  [[ $name =~ $ONLY ]] || return 0
  log "$name"
  derive "$name" "$methods" "$edit"
  tune "$name" landermt
  [[ $methods == *'"lape"'* ]] && tune "$name" lape
  "$XTASK" pipeline --config "runs/neurons-$name.toml" < /dev/null
  log "$name done"
}

run_variant lape '["none", "landermt", "lape"]' '/^\[score\]/a method = "lape"'
run_variant random '["none", "landermt"]' '/^\[score\]/a method = "random"'
run_variant identity '["none", "landermt"]' '/^\[route\]/a start = "identity"'
