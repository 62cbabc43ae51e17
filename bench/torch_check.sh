#!/usr/bin/env bash
# Issue 13's trainer check, start to finish: our `lora` and `full` and PyTorch's (transformers +
# PEFT, bench/train_reference.py) on configs/en-fr-torch-check.toml, each model decoded by our
# decoder on the same 100 FLORES lines, then loss curves and paired bootstrap side by side.
#
#   nohup nice -n 10 bash bench/torch_check.sh [lora|full ...] >> runs/torch-check.log 2>&1 &
#
# Every step is skipped when its output exists (our trainer resumes from its checkpoint), so
# the script can be killed and run again. The results worth keeping (train.json, loss.csv,
# hypotheses, comparisons) are copied to docs/torch-check/ as each method finishes: runs/ is
# not kept between machines, the repository is.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=configs/en-fr-torch-check.toml
RUN=runs/en-fr-torch-check
PY=${LANDERMT_PYTHON:-.venv/bin/python}
XTASK=${XTASK:-runs/bin/xtask}   # a copy of target/debug/xtask, so rebuilds do not disturb it
KEEP=docs/torch-check
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
METHODS=("$@")
[ ${#METHODS[@]} -gt 0 ] || METHODS=(lora full)

log() { echo "[$(date -u +%FT%TZ)] $*"; }

mkdir -p "$(dirname "$XTASK")" "$KEEP"
[ -x "$XTASK" ] || { cargo build -q -p xtask && cp target/debug/xtask "$XTASK"; }

# Probe, score and route are tiny here (8 sentences): training needs their artifacts to exist.
for stage in probe score route; do "$XTASK" pipeline --config "$CONFIG" --only "$stage"; done

# The reference sentences the hypotheses are scored against.
sed -n 501,600p data/flores200-devtest/fra_Latn.devtest > "$RUN/ref.en-fr"
sed -n 501,600p data/flores200-devtest/eng_Latn.devtest > "$RUN/ref.fr-en"

for m in "${METHODS[@]}"; do
  log "ours: train $m"
  "$XTASK" train --config "$CONFIG" --method "$m"
  if [ ! -f "$RUN/torch/$m/hf/config.json" ]; then
    log "PyTorch: train $m"
    "$PY" bench/train_reference.py --config "$CONFIG" --method "$m" --checkpoint-every 7 \
      --out "$RUN/torch/$m" --save "$RUN/torch/$m/hf"
  fi
  # Our decoder on both models: ours as a trained system of the run, theirs as a plain model.
  view="$RUN/eval-$m.toml"
  sed "s/^methods = .*/methods = [\"none\", \"$m\"]/; s/^compare = .*//" "$CONFIG" > "$view"
  log "decode ours ($m) and theirs"
  "$XTASK" eval --config "$view"
  "$XTASK" eval --config "$RUN/torch/$m/eval.toml"
  mkdir -p "$KEEP/$m/ours" "$KEEP/$m/torch"
  cp "$RUN/train/$m/train.json" "$KEEP/$m/ours/"
  cp "$RUN/torch/$m/train.json" "$RUN/torch/$m/loss.csv" "$KEEP/$m/torch/"
  for d in en-fr fr-en; do
    cp "$RUN/eval/$m/flores.$d.hyp" "$KEEP/$m/ours/"
    cp "$RUN/torch/$m/eval/eval/none/flores.$d.hyp" "$KEEP/$m/torch/"
    cp "$RUN/eval/none/flores.$d.hyp" "$KEEP/none.flores.$d.hyp"
  done
  "$PY" bench/compare_training.py "$RUN/train/$m/train.json" "$RUN/torch/$m/train.json" \
    > "$KEEP/$m/loss-comparison.txt" || true
  for d in en-fr fr-en; do
    # sacreBLEU's own CLI: ours, then theirs, against 0-shot as the baseline column.
    "$PY" -m sacrebleu "$RUN/ref.$d" -i "$KEEP/none.flores.$d.hyp" "$KEEP/$m/ours/flores.$d.hyp" \
      "$KEEP/$m/torch/flores.$d.hyp" --paired-bs -m bleu chrf -f text > "$KEEP/$m/paired-bs.$d.txt"
    # And ours against theirs directly: is the difference within noise?
    "$PY" -m sacrebleu "$RUN/ref.$d" -i "$KEEP/$m/torch/flores.$d.hyp" "$KEEP/$m/ours/flores.$d.hyp" \
      --paired-bs -m bleu chrf -f text > "$KEEP/$m/ours-vs-torch.$d.txt"
  done
  log "done: $m → $KEEP/$m"
done
