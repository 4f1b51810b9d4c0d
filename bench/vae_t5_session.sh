#!/usr/bin/env bash
# One device call: the VAE op tests on the GPU, then the umT5-XXL-shaped encode and the
# real-size Wan VAE decodes (480p, profiled 480p, 720p) of bench/cuda_model_bench.cpp.
# Run from the repo root on the GPU machine with raylight_cuda_tests and raylight_cuda_bench
# built in $RAYLIGHT_BUILD
# (default build-cuda) and the libraries the host lacks in .devlibs / .gpurun/lib.
# Logs go to $OUT (or /tmp). Numbers: docs/benchmarks.md, "Video VAE and umT5 on CUDA".
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
b=${RAYLIGHT_BUILD:-build-cuda}/raylight_cuda_tests
bench=${RAYLIGHT_BUILD:-build-cuda}/raylight_cuda_bench
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 120 "$b" --gtest_filter='CudaVaeOps.*' 2>&1 | tee "$out/vae_ops.log" | grep -vE '^\[ +(RUN|OK) '
timeout 120 "$bench" --umt5 2>&1 | tee "$out/umt5.log" | grep -E 'BENCH|umt5|error'
timeout 300 "$bench" --vae --profile --720p 2>&1 | tee "$out/vae_decode.log" | grep -E 'BENCH|PROFILE|error'
