#!/usr/bin/env bash
# One device call (about a minute): the CLIP GPU tests - CUDA vs CPU for the tiny text and
# vision towers and for random towers at the real widths - then full-size CLIP-L (77 tokens)
# and ViT-H/14 (one image) timed with random weights ("CLIP timing:" line), and, where the
# machine's transformers can run PyTorch models, the HF cross-check of the CLIP goldens.
# Run from the repo root with raylight_cuda_tests built in $RAYLIGHT_BUILD (default
# build-gpu); logs go to $OUT.
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
b=${RAYLIGHT_BUILD:-build-gpu}/raylight_cuda_tests
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 300 "$b" --gtest_filter='CudaClip.*' 2>&1 | tee "$out/clip_cuda.log" | grep -vE '^\[ +(RUN|OK) '
# The goldens against HF CLIPTextModel / CLIPVisionModel ("HF ... max diff" lines; reads only).
timeout 120 python3 tests/fixtures/make_clip_golden.py --check-committed 2>&1 | grep -E "HF|Error" | tee "$out/clip_hf.log"
