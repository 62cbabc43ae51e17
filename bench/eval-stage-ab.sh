#!/usr/bin/env bash
# The eval stage of a trained run, timed back to back with two xtask binaries (issue 41:
# BENCHMARKS.md, "The eval stage"), on the same trained deltas:
#
#   bash bench/eval-stage-ab.sh OLD_XTASK NEW_XTASK [CONFIG]   # CONFIG: configs/en-fr.toml
#
# The run folder named by CONFIG must hold its trained systems (`cargo xtask pipeline --config
# CONFIG` first). A scratch folder links to its `train/*/delta.*`, `layers.json`, `neurons.*`,
# `route.json` and `score`, and each binary runs `eval` there from nothing, with niced
# background xtask processes stopped meanwhile. Then: both times, identical hypotheses per
# file, and the largest per-sentence change of each LM loss.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "${1:?the old xtask binary}"); new=$(realpath "${2:?the new xtask binary}")
config=${3:-configs/en-fr.toml}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2}
run=$(python3 -c "import sys, tomllib; print(tomllib.load(open(sys.argv[1], 'rb'))['run']['dir'])" "$config")
work=$(mktemp -d)
mkdir -p "$work/run/train"
for f in layers.json neurons.json neurons.safetensors route.json score; do
  [ -e "$run/$f" ] && ln -s "$(realpath "$run/$f")" "$work/run/$f"
done
for m in "$run"/train/*/; do
  m=$(basename "$m"); mkdir -p "$work/run/train/$m"
  for f in delta.safetensors delta.sha256 train.json; do
    [ -e "$run/train/$m/$f" ] && ln -s "$(realpath "$run/train/$m/$f")" "$work/run/train/$m/$f"
  done
done
sed "s#^dir = .*#dir = \"$work/run\"#" "$config" > "$work/config.toml"
bg=$(pgrep -f "xtask" | while read -r p; do [ "$(ps -o ni= -p "$p" | tr -d ' ')" -gt 0 ] 2>/dev/null && echo "$p"; done | tr '\n' ' ' || true)
[ -n "$bg" ] && kill -STOP $bg
trap '[ -n "${bg:-}" ] && kill -CONT $bg; echo "outputs kept in $work"' EXIT
for which in old new; do
  bin=$old; [ $which = new ] && bin=$new
  rm -rf "$work/run/eval" "$work/run/report.json" "$work/run/report.md"
  start=$(date +%s.%N)
  "$bin" eval --config "$work/config.toml" > "$work/$which.out" 2>&1
  echo "$which: $(echo "$(date +%s.%N) - $start" | bc) s ($(grep -o 'NO_AFFINITY [A-Za-z]*' "$work/$which.out" | head -1))"
  cp -r "$work/run/eval" "$work/eval-$which"
done
python3 - "$work" <<'PY'
import glob, json, os, sys
w = sys.argv[1]
for f in sorted(glob.glob(f"{w}/eval-old/*/*.hyp")):
    a, b = open(f).read().splitlines(), open(f.replace("eval-old", "eval-new")).read().splitlines()
    print(f"{os.path.relpath(f, w + '/eval-old')}: {sum(x == y for x, y in zip(a, b))}/{len(a)} lines identical")
for f in sorted(glob.glob(f"{w}/eval-old/*/lm.*.json")):
    a, b = json.load(open(f)), json.load(open(f.replace("eval-old", "eval-new")))
    d = max(abs(x - y) for x, y in zip(a["losses"], b["losses"]))
    print(f"{os.path.relpath(f, w + '/eval-old')}: {a['loss']:.6f} -> {b['loss']:.6f}, largest per-sentence change {d:.1e}")
PY
