#!/usr/bin/env bash
# One device call for issue 14 (Flux.1 end to end), with random weights at real shapes (the
# GPU machine has no checkpoints): writes Flux.1 dev fp8 (ComfyUI scaled fp8), T5-XXL fp16,
# CLIP-L and the Flux VAE into a ComfyUI-style folder (bench/make_random_flux_parts.py, about
# 20 GB, a few minutes), runs the Flux VAE GPU tests (CUDA vs CPU), then
#   1. `raylight generate --comfyui-dir` at 1024x1024, 28 steps, Euler, guidance 3.5: the
#      timing line (load, encode, sample, decode, write; models resident after load, so
#      encode + sample + decode + write is the figure to compare with 4.3 s);
#   2. the Flux VAE decode at 1024x1024 in PyTorch eager (bench/torch_flux_vae_bench.py:
#      diffusers' AutoencoderKL when installed, else the functional decoder), beside the
#      `decode` figure of step 1.
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu). Results: $OUT.
# Usage: bench/flux_e2e_session.sh [tests] [generate] [vae]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/flux-e2e}; mkdir -p "$out"
build=${RAYLIGHT_BUILD:-build-gpu}
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
steps=${*:-tests generate vae}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
root=/tmp/flux-comfy
m=$root/models
mkdir -p $m/diffusion_models $m/text_encoders $m/vae
if want generate || want vae; then
  if [ ! -f $m/diffusion_models/flux1-dev-fp8.safetensors ]; then
    t0=$(date +%s)
    timeout 900 python3 bench/make_random_flux_parts.py --out $root/parts >"$out/make_parts.log" 2>&1 \
      || note "make_random_flux_parts failed: $(tail -2 "$out/make_parts.log")"
    mv $root/parts/flux1-dev-fp8.safetensors $m/diffusion_models/ 2>/dev/null
    mv $root/parts/t5xxl_fp16.safetensors $root/parts/clip_l.safetensors $m/text_encoders/ 2>/dev/null
    mv $root/parts/ae.safetensors $m/vae/ 2>/dev/null
    note "random parts written in $(( $(date +%s) - t0 )) s"
  fi
fi
if want tests; then
  timeout 300 "$build/raylight_cuda_tests" --gtest_filter='CudaFluxVae.*:CudaFlux*' >"$out/cuda_tests.log" 2>&1
  note "CUDA tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')"
  grep -E "FAILED|rel L2" "$out/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
fi
if want generate; then
  timeout 420 "$build/raylight" generate --comfyui-dir $root --model $m/diffusion_models/flux1-dev-fp8.safetensors --width 1024 --height 1024 --steps 28 \
    --prompt "a red fox running through fresh snow" --out "$out/flux_1024.png" >"$out/generate.log" 2>&1
  note "generate 1024x1024 28 steps fp8: exit $?"
  grep -E "^model:|^timing:|error|peak" "$out/generate.log" | tee -a "$out/summary.txt"
fi
if want vae; then
  timeout 300 python3 bench/torch_flux_vae_bench.py --vae $m/vae/ae.safetensors --size 1024 >"$out/torch_vae.log" 2>&1
  note "PyTorch eager VAE: $(grep -E 'TORCH_VAE|Error' "$out/torch_vae.log" | tail -1)"
fi
