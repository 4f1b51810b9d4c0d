#!/usr/bin/env bash
# Issue 18 on the GPU machine, one call: the Wan 2.1 VAE (real shapes, random weights)
# decoding 480x832x81 and 720x1280x81 untiled and by tiles, time and peak GPU memory, under
# 8 and 12 GiB caps (tile size from the VAE's memory model), and the tiled vs untiled
# difference in bf16; with more than one GPU also the tiles spread over all of them against
# rank 0's single-GPU tiled decode (MODE=multi forces it, MODE=single skips it).
# Run from the repo root with raylight_vae_tiles_bench built in $RAYLIGHT_BUILD (build-gpu).
# Prints the BENCH / BOUND / EXACT lines; full logs in $OUT. About 3 minutes on one H200.
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
bench=${RAYLIGHT_BUILD:-build-gpu}/raylight_vae_tiles_bench
out=${OUT:-/tmp}
mode=${MODE:-auto}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
gpus=$(nvidia-smi -L | wc -l)
if [ "$mode" != multi ]; then
  timeout 480 "$bench" --sizes 480,720 --caps 8,12 2>&1 | tee "$out/vae_tiles_single.log" | grep -E 'BENCH|BOUND|error'
fi
if [ "$mode" = multi ] || { [ "$mode" = auto ] && [ "$gpus" -gt 1 ]; }; then
  timeout 300 "$bench" --ranks "$gpus" --sizes 480,720 2>&1 | tee "$out/vae_tiles_multi.log" | grep -E 'BENCH|EXACT|error'
fi
