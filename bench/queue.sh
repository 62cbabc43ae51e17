#!/usr/bin/env bash
# The open studies, one after another, each resumable, so that one command restarts the
# machine's background work in a new sitting:
#
#   nohup nice -n 19 bash bench/queue.sh >> runs/queue.log 2>&1 &
#
# 1. issue 38: the joint pipeline (bench/joint.sh, `pipeline`), every system and seed;
# 2. issue 38: each joint method's training speed measured on its own
#    (results/paper-joint/train-speed.md; the run's own tokens/s recorded contention);
# 3. issue 44, item 5: landermt's CAR modes on the joint dev set (bench/joint.sh, `car`);
# 4. issue 38, item 4: the `ends` and `pairs` layer rules (bench/rules.sh);
# 5. issue 39: the choice of neurons, en-fr study protocol (bench/neurons.sh), then joint
#    (bench/neurons-joint.sh).
# Each script's log says what finished; commit results/ after each `done` line. QUEUE_FROM=N
# starts at step N.
set -euo pipefail
cd "$(dirname "$0")/.."
FROM=${QUEUE_FROM:-1}
log() { echo "[$(date -u +%FT%TZ)] queue: $*"; }
# The machine's own OpenBLAS settings are left out, so `gemm = "auto"` measures what the CPU has.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

step() {
  local n=$1; shift
  [ "$n" -ge "$FROM" ] || return 0
  log "step $n: $*"
  "$@"
  log "step $n done"
}

speed() {
  local out=results/paper-joint/train-speed.md
  [ -e "$out" ] && return 0
  bash bench/train-speed.sh configs/paper-joint.toml lora full landermt landermt-ls landermt-lg layers > "$out.tmp"
  mv "$out.tmp" "$out"
}

step 1 env JOINT_ONLY=pipeline bash bench/joint.sh
step 2 speed
step 3 env JOINT_ONLY=car bash bench/joint.sh
step 4 bash bench/rules.sh
step 5 bash bench/neurons.sh
step 6 bash bench/neurons-joint.sh
