#!/usr/bin/env bash
# LoRA on the GPU machine (issue 20), one device call, logs under $OUT:
#   tests  the CUDA LoRA tests (CudaLora.*: fp8 side product and merged bf16 copy vs the CPU
#          on resident / FSDP / offload weights, remove == never applied on the device, the
#          fp32 side term of a precise input)
#   step   per-step cost of a rank-64 side LoRA on Wan 14B fp8 (random weights at real shapes,
#          `raylight bench --lora-rank 64` against the same bench without it), 480x832x81
#   e2e    a random Wan 14B fp8 checkpoint and a random rank-64 LoRA file for it, then a
#          4-step cfg-1 480x832x81 `raylight sample` timed end to end (load + LoRA + 4 steps)
#          without and with the LoRA. No text encoder or VAE exist there, so this is the
#          DiT part of a generation, not prompt -> video.
# RAYLIGHT_BUILD names the folder holding raylight and raylight_cuda_tests (build-gpu).
# Usage: bench/lora_session.sh [tests] [step] [e2e]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
b=${RAYLIGHT_BUILD:-build-gpu}
rl=$b/raylight
steps=${*:-tests step e2e}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
nvidia-smi -L | tee "$out/device.txt"
if want tests; then
  timeout 300 $b/raylight_cuda_tests --gtest_filter='CudaLora.*' >"$out/cuda_lora.log" 2>&1
  note "CudaLora: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_lora.log" | tr '\n' ' ')"
  grep -E "relative L2|^\[  FAILED|Failure|Expected|Which is" "$out/cuda_lora.log" | head -30
fi
if want step; then
  for r in 0 64; do
    timeout 300 $rl bench --model wan-14b --dtype fp8 --runs 3 --warmup 1 --lora-rank $r >"$out/bench_lora$r.log" 2>&1
    note "wan-14b fp8 480x832x81, lora rank $r: $(grep -E '^forward:' "$out/bench_lora$r.log") $(grep -E '^lora:' "$out/bench_lora$r.log")"
  done
  a=$(grep -oE 'median [0-9.]+' "$out/bench_lora0.log" | grep -oE '[0-9.]+'); c=$(grep -oE 'median [0-9.]+' "$out/bench_lora64.log" | grep -oE '[0-9.]+')
  [ -n "$a" ] && [ -n "$c" ] && note "rank-64 side LoRA per step: $(python3 -c "print('%.1f ms (%.1f%%)' % ($c - $a, 100 * ($c - $a) / $a))")"
fi
if want e2e; then
  ck=/tmp/wan14b_fp8.safetensors ctx=/tmp/wan_ctx.safetensors lora=/tmp/wan14b_lora64.safetensors
  [ -f $ck ] || timeout 400 python3 bench/make_random_wan_checkpoint.py --model wan-14b --out $ck --context $ctx >"$out/make.log" 2>&1
  timeout 200 python3 bench/make_random_lora.py --model $ck --rank 64 --out $lora >>"$out/make.log" 2>&1
  note "$(tail -1 "$out/make.log")"
  job="sample --model $ck --context $ctx --width 832 --height 480 --frames 81 --steps 4 --cfg 1 --sampler euler --device cuda"
  for name in base lora; do
    extra=""; [ $name = lora ] && extra="--lora $lora:1.0"
    t0=$(date +%s.%N)
    timeout 400 $rl $job $extra --out "$out/e2e_$name.safetensors" >"$out/e2e_$name.log" 2>&1
    rc=$?
    note "e2e 4-step 480x832x81 fp8 [$name]: exit $rc in $(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))") s; $(grep -E 'raylight: .*LoRA|step' "$out/e2e_$name.log" | tail -2 | tr '\n' ' ')"
  done
fi
(cd "$out" && tar cf logs.tar ./*.log 2>/dev/null && rm -f ./*.log)
