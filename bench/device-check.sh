#!/usr/bin/env bash
# Runs `xtask device-check` on a GPU machine that reaches no registry, from a prebuilt binary.
#
# What travels is at most 64 MiB: the working tree plus the carried files. The tree is 69 MB,
# 42 MB of it the training TSVs of data/corpus, which the check does not read, and the stripped
# binary is about 90 MB (about 25 MB gzipped). Gemma 3 270M's GGUF (253 MB) cannot travel: the
# check then runs a model of its shape with random weights, written there. So, here (a machine
# with crates.io), once:
#   cargo xtask check-gpu                                   # xtask with cuda + wgpu, ~1 h cold
#   mkdir -p .gpu && strip -o .gpu/xtask target/gpu-check/debug/xtask && gzip -9f .gpu/xtask
#   echo /.gpu/ >> .git/info/exclude
#   (cd .gpu && apt-get download libvulkan1 libglvnd0 libglx0 libegl1 libgl1 libopengl0 libgles2)  # wgpu's loader and glvnd
#   (cd ~/.cache/landermt/cuda-12.8 && tar -cJf - include) > .gpu/cuda-12.8-include.tar.xz  # headers, if it lacks a toolkit
#   mv data/corpus /tmp/corpus-aside; mv results /tmp/results-aside   # the tree must stay under 64 MiB
# There (carry .gpu):
#   bash bench/device-check.sh "$OUT"
# The table is printed and written to $OUT/device-check.md, the log to $OUT/device-check.log, and
# each backend's bench table to $OUT/bench-{cuda,wgpu}.md.
set -uo pipefail
out="${1:-target/device-check}"
work=target/device-check                                   # all of it; $out gets the summary
mkdir -p "$out" "$work"
[ -e .gpu/xtask.gz ] && gunzip -f .gpu/xtask.gz && chmod +x .gpu/xtask
# Vulkan's loader and glvnd, which NVIDIA's Vulkan driver (libGLX_nvidia) needs: each carried
# package the machine lacks (one lent H200 had the loader but not glvnd: "Found no drivers").
for deb in .gpu/*.deb; do
  [ -e "$deb" ] && ! dpkg -s "$(dpkg-deb -f "$deb" Package)" >/dev/null 2>&1 && dpkg -x "$deb" /
done
ldconfig 2>/dev/null || true
# NVRTC and the CUDA headers: the machine's toolkit (the lent H200s have CUDA 13), else the
# 12.8 headers carried in .gpu (`tar -cJf .gpu/cuda-12.8-include.tar.xz include` in the folder
# `xtask fetch-cuda-runtime` fills, 1.3 MB) and NVRTC from python's nvidia wheels.
export CUDA_PATH="${CUDA_PATH:-/usr/local/cuda}"
if [ ! -e "$CUDA_PATH/include/cuda_fp16.h" ] && [ -e .gpu/cuda-12.8-include.tar.xz ]; then
  mkdir -p /tmp/cuda-carried && tar -xJf .gpu/cuda-12.8-include.tar.xz -C /tmp/cuda-carried && export CUDA_PATH=/tmp/cuda-carried
fi
nvrtc=$(ls "$CUDA_PATH"/lib64/libnvrtc.so.* "$CUDA_PATH"/targets/*/lib/libnvrtc.so.* /usr/local/cuda/lib64/libnvrtc.so.* 2>/dev/null | head -1)
[ -z "$nvrtc" ] && nvrtc=$(python3 -c 'import glob, site; print(next(iter(sorted(f for d in site.getsitepackages() for f in glob.glob(d + "/nvidia/**/libnvrtc.so.*", recursive=True))), ""))' 2>/dev/null)
nvrtc_dir=$(dirname "${nvrtc:-/nonexistent/x}")
# cudarc opens libnvrtc.so or libnvrtc.so.12; a CUDA 13 runtime may have only libnvrtc.so.13.
mkdir -p /tmp/nvrtc-link && [ -n "$nvrtc" ] && ln -sf "$nvrtc" /tmp/nvrtc-link/libnvrtc.so
export LD_LIBRARY_PATH="/tmp/nvrtc-link:$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
[ -e /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] && export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  echo "CUDA_PATH=$CUDA_PATH nvrtc=$nvrtc ($(ls "$nvrtc_dir" 2>/dev/null | grep nvrtc | tr '\n' ' '))"
  ls "$CUDA_PATH/include/cuda_fp16.h" "$CUDA_PATH/include/cccl" -d 2>&1
  ldconfig -p | grep -E "libvulkan.so.1|libcuda.so.1" | head -3
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
} 2>&1 | tee "$out/device-check.log"
# The machine reaches no registry: the CPU side (Gemma against flex) runs the pure-Rust GEMM
# rather than trying to fetch OpenBLAS.
export LANDERMT_GEMM="${LANDERMT_GEMM:-rust}"
RUST_LOG=info,cubecl=warn,wgpu=warn,naga=warn timeout "${CHECK_SECONDS:-520}" .gpu/xtask device-check --python python3 --out "$work" ${CHECK_ARGS:-} 2>&1 | tee -a "$out/device-check.log"
# At most 8 files come back from a device machine: the table and each backend's bench results.
[ "$out" != "$work" ] && cp "$work/device-check.md" "$out/" 2>/dev/null
for b in cuda wgpu; do [ -e "$work/bench-$b/results.md" ] && cp "$work/bench-$b/results.md" "$out/bench-$b.md"; done
true
