#!/usr/bin/env bash
# `[eval] weights = "bf16"` (training in f32, decoding with the weights rounded to bf16)
# against f32 on the default run's test sets (configs/en-fr.toml: FLORES devtest 501-600,
# en-fr, fr-en and en-de; every system). First, from the repository root:
#   cargo xtask pipeline --config configs/en-fr.toml                 (f32, runs/en-fr)
#   copy runs/en-fr/eval aside; configs/en-fr.toml with `weights = "bf16"` under [eval]
#     > runs/en-fr-evalbf16.toml (same name and dir: the stage keys hold the run folder, so
#     only the decoding runs again); cargo xtask pipeline --config runs/en-fr-evalbf16.toml
#   move runs/en-fr/eval to runs/en-fr-evalbf16/eval and put the f32 copy back
# Then this script (SACREBLEU: a sacrebleu 2.x command): identical lines, and sacreBLEU's
# paired bootstrap with f32 as the baseline.
set -uo pipefail
cd "$(dirname "$0")/../.."
SACREBLEU=${SACREBLEU:-sacrebleu}
# The two decodings' folders; the 2026-12-07 ones are kept in docs/bf16-check/eval-weights/
# (F32=docs/bf16-check/eval-weights/f32 BF16=docs/bf16-check/eval-weights/bf16 reruns the
# comparison without decoding; its output is eval-weights/comparison.txt).
F32=${F32:-runs/en-fr/eval}; BF16=${BF16:-runs/en-fr-evalbf16/eval}
refs=$(mktemp -d)
for l in eng_Latn:en fra_Latn:fr deu_Latn:de; do sed -n 501,600p "data/flores200-devtest/${l%%:*}.devtest" > "$refs/ref.${l##*:}"; done
for sys in none lora full landermt; do
  for dir in en-fr fr-en en-de; do
    a=$F32/$sys/flores.$dir.hyp; b=$BF16/$sys/flores.$dir.hyp
    echo "== $sys $dir: identical lines $(paste -d '\t' "$a" "$b" | awk -F'\t' '$1==$2' | wc -l)/$(wc -l < "$a")"
    "$SACREBLEU" "$refs/ref.${dir#*-}" -i "$a" "$b" -m bleu chrf --paired-bs --paired-bs-n 1000 -f text 2>/dev/null | grep -E "Baseline|\.hyp|p ="
  done
done
