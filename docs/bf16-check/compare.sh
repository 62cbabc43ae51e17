#!/usr/bin/env bash
# bf16 against f32 on the default run's test sets (configs/en-fr.toml's: FLORES devtest 501-600,
# en-fr, fr-en and en-de; systems none and landermt). First, from the repository root:
#   sed ... configs/en-fr.toml > runs/en-fr-f32.toml   (name, dir, methods = ["none", "landermt"])
#   the same with `dtype = "bf16"` under [model] > runs/en-fr-bf16.toml (this folder's copy)
#   cargo xtask pipeline --config runs/en-fr-f32.toml && cargo xtask pipeline --config runs/en-fr-bf16.toml
# Then this script: paired bootstrap with f32 as the baseline, and identical lines.
set -uo pipefail
cd "$(dirname "$0")/../.."
refs=$(mktemp -d)
for l in eng_Latn:en fra_Latn:fr deu_Latn:de; do sed -n 501,600p "data/flores200-devtest/${l%%:*}.devtest" > "$refs/ref.${l##*:}"; done
for sys in none landermt; do
  for dir in en-fr fr-en en-de; do
    a=runs/en-fr-f32/eval/$sys/flores.$dir.hyp; b=runs/en-fr-bf16/eval/$sys/flores.$dir.hyp
    echo "== $sys $dir: identical lines $(paste -d '\t' "$a" "$b" | awk -F'\t' '$1==$2' | wc -l)/$(wc -l < "$a")"
    .venv/bin/sacrebleu "$refs/ref.${dir#*-}" -i "$a" "$b" -m bleu chrf --paired-bs --paired-bs-n 1000 -f text 2>/dev/null | grep -E "Baseline|runs/|p ="
  done
done
