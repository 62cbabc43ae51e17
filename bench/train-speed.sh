#!/usr/bin/env bash
# Training speed of each method of a run, measured on its own: a long run's train.json records
# tokens/s, but a system that trained beside builds or another run records that contention,
# not its speed. This trains each METHOD for STEPS steps of the run's own setting (same model,
# layers, units, routes, batch and data; only `pairs` lowered) in a scratch copy of the run
# folder, one after another, and prints a table of tokens/s.
#
#   bash bench/train-speed.sh configs/paper-joint.toml lora full landermt landermt-ls landermt-lg layers
#
# Stop other work on the machine first (e.g. `kill -STOP` a background run, `kill -CONT` after).
# SPEED_PAIRS (default 8) pairs per direction: 8 pairs × 10 directions = 10 steps of batch 8 in
# joint mode. XTASK picks the binary (default target/debug/xtask, the one `cargo xtask` runs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 CONFIG METHOD..." >&2; exit 2; }
config=$1; shift
XTASK=${XTASK:-target/debug/xtask}
PAIRS=${SPEED_PAIRS:-8}
[ -x "$XTASK" ] || cargo build -q -p xtask
run_dir=$(sed -n 's/^dir = "\([^"]*\)".*/\1/p' "$config" | head -1)
[ -f "$run_dir/layers.json" ] || { echo "$run_dir/layers.json: missing; run the pipeline's probe, score and route first" >&2; exit 1; }
scratch=$(mktemp -d /tmp/train-speed.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
# The run's upstream artifacts and stamps, so that training starts at once; no weights.
for f in layers.json neurons.json neurons.safetensors route.json routes.json; do
  [ -e "$run_dir/$f" ] && cp "$run_dir/$f" "$scratch/"
done
[ -d "$run_dir/.stamps" ] && cp -r "$run_dir/.stamps" "$scratch/" && rm -f "$scratch"/.stamps/train-*
sed -e "s#^dir = \"$run_dir\".*#dir = \"$scratch\"#" -e "s/^pairs = [0-9]*/pairs = $PAIRS/" -e 's/^dev_pairs = [0-9]*/dev_pairs = 1/' "$config" > "$scratch/config.toml"
grep -q "^dir = \"$scratch\"" "$scratch/config.toml"
echo "| method | steps | tokens | seconds | tokens/s |"
echo "|---|---:|---:|---:|---:|"
for method in "$@"; do
  "$XTASK" train --config "$scratch/config.toml" --method "$method" < /dev/null > "$scratch/$method.log" 2>&1 || { cat "$scratch/$method.log" >&2; exit 1; }
  python3 - "$scratch/train/$method/train.json" "$method" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {t['steps']} | {t['tokens']} | {t['seconds']:.1f} | {t['tokens_per_second']:.1f} |")
PY
done
