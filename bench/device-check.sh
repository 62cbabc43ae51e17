#!/usr/bin/env bash
# Runs `xtask device-check` on a GPU machine that reaches no registry, from a prebuilt binary.
#
# What travels is at most 64 MiB: the working tree plus the carried files. The tree is 69 MB,
# 40 MB of it the training TSVs of data/corpus, which the check does not read, and the stripped
# binary is about 80 MB (22 MB gzipped, wgpu only). So, here (a machine with crates.io), once:
#   cargo xtask check-gpu                                   # xtask with cuda + wgpu, ~1 h cold
#   mkdir -p .gpu && strip -o .gpu/xtask target/gpu-check/debug/xtask && gzip -9 .gpu/xtask
#   echo /.gpu/ >> .git/info/exclude
#   mv data/corpus /tmp/corpus-aside                        # back with `git checkout data/corpus`
# Vulkan loader for wgpu, if the GPU machine lacks libvulkan (see the device tool's notes):
#   put libvulkan1's .deb in .gpu/ too.
# There (carry .gpu):
#   bash bench/device-check.sh "$OUT"
# The table is printed and written to $OUT/device-check.md; bench results beside it.
set -uo pipefail
out="${1:-target/device-check}"
[ -e .gpu/xtask.gz ] && gunzip -f .gpu/xtask.gz && chmod +x .gpu/xtask
for deb in .gpu/*.deb; do [ -e "$deb" ] && dpkg -x "$deb" / ; done
ldconfig 2>/dev/null || true
# NVRTC and the CUDA headers: a toolkit's, or fetched with `xtask fetch-cuda-runtime`.
export CUDA_PATH="${CUDA_PATH:-/usr/local/cuda}"
export LD_LIBRARY_PATH="$CUDA_PATH/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -d /usr/local/nvidia/share/vulkan/icd.d ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
RUST_LOG=info timeout 540 .gpu/xtask device-check --python python3 --out "$out"
