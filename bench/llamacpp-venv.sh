#!/usr/bin/env bash
# Sets up llama-cpp-python (issue 41, item 5: llama.cpp as the bench's optional third column),
# built from source by pip (PyPI carries only its sdist) for this machine's CPU, in a venv
# beside the model cache (`$LANDERMT_CACHE`, else `$XDG_CACHE_HOME/landermt`, else
# ~/.cache/landermt). Needs a C and C++ compiler; cmake comes from PyPI. About 10 minutes on
# two cores.
#
#   bash bench/llamacpp-venv.sh      # prints the python's path last
set -euo pipefail
VERSION=0.3.36
VENV=${LANDERMT_LLAMACPP_VENV:-${LANDERMT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/landermt}/llamacpp-venv}
STAMP="$VENV/llama-cpp-python-$VERSION"
if [ ! -e "$STAMP" ]; then
  # The stamp is written last: an interrupted set-up starts again from scratch.
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # GGML_NATIVE: the kernels for the CPU at hand (AVX2, AVX-512 where it has them), as a user
  # building llama.cpp on their own machine gets.
  CMAKE_ARGS="-DGGML_NATIVE=ON" "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir "llama-cpp-python==$VERSION" numpy
  touch "$STAMP"
fi
echo "$VENV/bin/python"
