#!/usr/bin/env bash
# Builds and runs the three outside projects on the fixtures (CI runs this). Each is its own
# Cargo workspace; they share the build folder ($CARGO_TARGET_DIR, else ../target) and take
# the repository's Cargo.lock, so they build against the versions the workspace is tested with.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target}"
root=..
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
build() { cp "$root/Cargo.lock" "$1/Cargo.lock"; cargo build -q --manifest-path "$1/Cargo.toml"; }
for example in metrics score-neurons train-selective; do build "$example"; done
bin="$CARGO_TARGET_DIR/debug"

echo "== metrics: two systems of tests/fixtures/bleu, as sacreBLEU --paired-bs scores them"
sets=$root/tests/fixtures/bleu/sets
"$bin/metrics-example" "$sets/en-fr.ref" "$sets/en-fr.hyp" "$sets/en-fr.sys2.hyp" | tee "$out/metrics.txt"
# sacreBLEU 2.6.0's p-values for the same files (tests/fixtures/bleu/expected.json): 0.1149, 0.0210.
grep -q "^BLEU .* p = 0.1149 " "$out/metrics.txt" && grep -q "^chrF2 .* p = 0.0210 " "$out/metrics.txt" \
  || { echo "metrics example: p-values differ from sacreBLEU's (0.1149, 0.0210)" >&2; exit 1; }

model=$root/tests/fixtures/hf-tiny/llama-tiny
flores=$root/data/flores200-devtest
echo "== score-neurons: the tiny LLaMA fixture, 4 FLORES sentences of en and fr"
"$bin/score-neurons-example" "$model" "$flores" "$out/stage2" 4
echo "== train-selective: route en–fr over blocks 2 and 3, three selective steps"
"$bin/train-selective-example" "$model" "$out/stage2" "$flores" 3 | tee "$out/train.txt"
[ -s "$out/stage2/route.json" ] || { echo "train-selective example: no route.json written" >&2; exit 1; }
grep -q "^step 3: loss" "$out/train.txt" || { echo "train-selective example: no third step" >&2; exit 1; }
