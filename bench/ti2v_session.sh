#!/usr/bin/env bash
# Issue 17's TI2V-5B on one GPU, one call (about 3 minutes on an H200): the Wan 2.2 GPU tests
# (tiny VAE and TI2V forward against the CPU), one TI2V-5B forward at 704x1280x121 with
# random weights made on the GPU (raylight bench: median time, TFLOP/s, peak memory), and
# the Wan 2.2 VAE decode of that latent ([48, 31, 44, 80]) untiled and by tiles under a
# 12 GiB cap (time, peak memory, tiled vs untiled difference). Run from the repo root with
# the build in $RAYLIGHT_BUILD (build-gpu); logs under $OUT. Prints the test verdicts, the
# bench summary lines and the BENCH / BOUND lines.
set -uo pipefail
out=${OUT:-/tmp}
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
b=${RAYLIGHT_BUILD:-build-gpu}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 120 "$b/raylight_cuda_tests" --gtest_filter='CudaWan22*' 2>&1 | tee "$out/ti2v_tests.log" |
  grep -E '^\[  (FAILED|PASSED)|OK \]|FAILED \]|relative|error'
timeout 150 "$b/raylight" bench --model wan2.2-ti2v-5b --frames 121 --height 704 --width 1280 --runs 2 --warmup 1 \
  2>&1 | tee "$out/ti2v_forward.log" | grep -vE '^\s*$' | tail -20
timeout 240 "$b/raylight_wan22_vae_bench" --frames 121 --height 704 --width 1280 --cap 12 2>&1 |
  tee "$out/ti2v_vae.log" | grep -E 'BENCH|BOUND|weights|error'
