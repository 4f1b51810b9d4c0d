#!/usr/bin/env bash
# Wan prompt -> video end to end on the GPU machine, with random weights at real shapes (the
# machine has no checkpoints): a ComfyUI-style folder with the umT5-XXL encoder, the Wan 2.1
# VAE (bench/make_random_wan_parts.py) and a Wan 14B fp8 DiT (make_random_wan_checkpoint.py),
# then `raylight generate --comfyui-dir` at 480x832x81, resident, timed by its timing line:
#   lora4   issue 20: 4 steps, cfg 1 (a CFG-free distillation LoRA's settings), without and
#           with a random rank-64 LoRA (bench/make_random_lora.py) applied as fp8 side product
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu). Results: $OUT.
# Usage: bench/wan_e2e_session.sh [lora4]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/wan-e2e}; mkdir -p "$out"
b=${RAYLIGHT_BUILD:-build-gpu}
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
steps=${*:-lora4}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
root=/tmp/wan-comfy
m=$root/models
dit=$m/diffusion_models/wan2.1_t2v_14B_fp8_scaled.safetensors
mkdir -p $m/diffusion_models /tmp/wan-e2e-frames
t0=$(date +%s)
[ -f $m/vae/wan_2.1_vae.safetensors ] || timeout 400 python3 bench/make_random_wan_parts.py --root $root >"$out/make.log" 2>&1
[ -f $dit ] || timeout 400 python3 bench/make_random_wan_checkpoint.py --model wan-14b --out $dit >>"$out/make.log" 2>&1
note "random parts in $(( $(date +%s) - t0 )) s: $(grep -c wrote "$out/make.log") files"
if want lora4; then
  lora=/tmp/wan14b_lora64.safetensors
  [ -f $lora ] || timeout 200 python3 bench/make_random_lora.py --model $dit --rank 64 --out $lora >>"$out/make.log" 2>&1
  job="generate --comfyui-dir $root --model $dit --width 832 --height 480 --frames 81 --steps 4 --cfg 1 --device cuda --prompt 'a red fox running through fresh snow'"
  for name in base lora; do
    extra=""; [ $name = lora ] && extra="--lora $lora:1.0"
    t1=$(date +%s.%N)
    eval timeout 400 $b/raylight $job $extra --out /tmp/wan-e2e-frames/$name/ >"$out/lora4_$name.log" 2>&1
    rc=$?
    note "4 steps cfg 1 480x832x81 14B fp8 [$name]: exit $rc, process $(python3 -c "print('%.1f' % ($(date +%s.%N) - $t1))") s"
    grep -E "^timing:|^model:|LoRA|error" "$out/lora4_$name.log" | tee -a "$out/summary.txt"
  done
fi
(cd "$out" && tar cf logs.tar ./*.log 2>/dev/null && rm -f ./*.log)
