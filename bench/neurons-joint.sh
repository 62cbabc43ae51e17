#!/usr/bin/env bash
# Issue 39's comparison in the paper's joint setting (configs/paper-joint.toml: one model for
# the ten directions), as bench/neurons.sh does it on the en-fr study protocol. Resumable:
#
#   nohup nice -n 19 bash bench/neurons-joint.sh >> runs/neurons-joint.log 2>&1 &
#
# Each variant is the joint config with one change, as its own run in
# results/paper-joint-neurons/NAME/ (seeded with the joint run's probe; the score's stamp names
# its run folder, so each variant scores again):
#   lape      score.method = "lape": landermt on LAPE's units, and the `lape` system
#   random    score.method = "random": landermt on random units, Taylor's counts per layer
#   identity  route.start = "identity": landermt with Taylor's units, starting as the base model
# Each method's rate is swept on the joint dev set first (130 steps a point, the first 20 dev
# lines of each direction, as bench/joint.sh's sweeps) and the best one written into the
# variant's config before its pipeline runs. `lora`, `full` and landermt with Taylor units come
# from results/paper-joint. JOINT_NEURONS_ONLY=REGEX picks variants. Commit
# results/paper-joint-neurons/ after each `done` line of the log.
set -euo pipefail
cd "$(dirname "$0")/.."
XTASK=${XTASK:-runs/bin/xtask-neurons}   # a copy of target/debug/xtask, so rebuilds do not disturb it
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
ONLY=${JOINT_NEURONS_ONLY:-lape|random|identity}
log() { echo "[$(date -u +%FT%TZ)] $*"; }
mkdir -p runs "$(dirname "$XTASK")"
[ -x "$XTASK" ] || { cargo build -q -p xtask && cp target/debug/xtask "$XTASK.tmp" && mv "$XTASK.tmp" "$XTASK"; }

# runs/neurons-joint-NAME.toml: the joint config in its own folder, with METHODS, one seed and
# one EDIT (a sed script) applied; the folder starts with the joint run's probe.
derive() {
  local name=$1 methods=$2 edit=$3 cfg=runs/neurons-joint-$1.toml dir=results/paper-joint-neurons/$1
  sed -e "s|^name = \"paper-joint\"|name = \"paper-joint-neurons-$name\"|" \
      -e "s|^dir = \"results/paper-joint\".*|dir = \"$dir\"|" \
      -e "s|^methods = \[.*|methods = $methods|" \
      -e "s|^seeds = .*|seeds = [1]|" \
      -e "s|^seeded = .*|seeded = []|" \
      -e "$edit" configs/paper-joint.toml > "$cfg.tmp"
  grep -qF "dir = \"$dir\"" "$cfg.tmp" && grep -qF "methods = $methods" "$cfg.tmp"
  mv "$cfg.tmp" "$cfg"
  if [ ! -e "$dir/layers.json" ]; then
    mkdir -p "$dir/.stamps"
    cp results/paper-joint/layers.json "$dir/" && cp results/paper-joint/.stamps/probe "$dir/.stamps/"
  fi
}

# METHOD's rate in variant NAME over RATES: swept on 20 dev lines a direction (as
# bench/joint.sh's sweeps), the best written into its config.
source bench/tune-rate.sh
tune() {
  tune_rate "runs/neurons-joint-$1.toml" "results/paper-joint-neurons/$1" "$2" "$3" 20
}

run_variant() {
  local name=$1 methods=$2 edit=$3
  [[ $name =~ $ONLY ]] || return 0
  log "$name"
  derive "$name" "$methods" "$edit"
  # Taylor units' joint rate was 1e-4 of 3e-5..1e-3 (1e-3 far below): the grid around it.
  tune "$name" landermt 3e-5,1e-4,3e-4
  [[ $methods == *'"lape"'* ]] && tune "$name" lape 3e-5,1e-4,3e-4,1e-3
  "$XTASK" pipeline --config "runs/neurons-joint-$name.toml" < /dev/null
  log "$name done"
}

run_variant identity '["none", "landermt"]' '/^\[route\]/a start = "identity"'
run_variant random '["none", "landermt"]' '/^\[score\]/a method = "random"'
run_variant lape '["none", "landermt", "lape"]' '/^\[score\]/a method = "lape"'
