#!/usr/bin/env bash
# Sets up the Python that checks `cargo xtask export` independently (issue 44): transformers,
# PEFT and gguf-py, pinned in bench/hf-requirements.txt, in a venv outside the clone so that it
# is built once per machine. The export tests find it at $LANDERMT_HF_PYTHON, or else at
# hf-venv/bin/python in the model cache (`$LANDERMT_CACHE`, else `$XDG_CACHE_HOME/landermt`, else
# ~/.cache/landermt), and say SKIPPED without it.
#
#   bash bench/hf-venv.sh            # prints the python's path last
set -euo pipefail
cd "$(dirname "$0")/.."
# The model cache's folder rule (landermt_model::cache::cache_dir), which the tests follow.
VENV=${LANDERMT_HF_VENV:-${LANDERMT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/landermt}/hf-venv}
STAMP="$VENV/requirements.txt"
if ! cmp -s bench/hf-requirements.txt "$STAMP" 2>/dev/null; then
  # The stamp is written last: an interrupted set-up starts again from scratch.
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir -r bench/hf-requirements.txt
  cp bench/hf-requirements.txt "$STAMP"
fi
echo "$VENV/bin/python"
