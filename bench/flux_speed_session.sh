#!/usr/bin/env bash
# One GPU call for issue 14's Flux forward targets and issue 19's fused q/k norm + RoPE
# (branch flux-fused): builds nothing, runs from the repo root with the binaries in
# $RAYLIGHT_BUILD (default build-gpu), logs and summary.txt under $OUT. Under 240 s:
#   1. the CUDA op suite filtered to the new ops (qkv_norm_rope, norm_rope, linear_pair,
#      add_gated_layer_norm);
#   2. the model-level CUDA tests that run these ops (Flux, Wan, LoRA, numerics, TI2V, demo);
#   3. `raylight bench` with random weights: Flux.1 dev 1024x1024 (4096 image + 512 text
#      tokens) bf16 and fp8 weights (targets <= 130 / <= 100 ms), Wan 1.3B and 14B fp8
#      weights at 480x832x81 with bf16 and fp8 attention. Each prints the forward median,
#      the products / attention / rest breakdown and the rest by op name ("by op").
# Usage: bench/flux_speed_session.sh [tests] [flux] [wan]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/flux-speed}; mkdir -p "$out"
build=${RAYLIGHT_BUILD:-build-gpu}
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
# The test binaries read fixtures from the path compiled into them.
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
steps=${*:-tests flux wan}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t_start=$(date +%s)
nvidia-smi -L 2>/dev/null | head -1 | tee "$out/device.txt"
if want tests; then
  timeout 30 "$build/raylight_backend_ops_cuda" --gtest_filter='*norm_rope*:*linear_pair*:*add_gated_layer_norm*' >"$out/op_suite.log" 2>&1
  note "op suite (new ops): exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/op_suite.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$out/op_suite.log" | head -10 | tee -a "$out/summary.txt"
  timeout 80 "$build/raylight_cuda_tests" \
    --gtest_filter='CudaFlux.*:CudaWan.*:CudaLora.*:CudaNumerics.*:CudaWan22.TinyTi2v*:CudaDemo.DiT*' \
    >"$out/cuda_tests.log" 2>&1
  note "model CUDA tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|Which is|Expected" "$out/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
fi
bench() {  # name, timeout, args...
  local name=$1 limit=$2; shift 2
  local log="$out/bench_$name.log" left=$(( 235 - ($(date +%s) - t_start) ))
  # The whole call stays under 240 s: a run that could overrun is cut to the time left.
  (( left < 10 )) && { note "$name: skipped (session time spent)"; return; }
  (( limit > left )) && limit=$left
  timeout "$limit" "$build/raylight" bench "$@" >"$log" 2>&1
  note "$name: exit $? $(grep -oE 'forward: median [0-9.]+ ms' "$log")"
  grep -E "^breakdown|^by op|^fp8 attention vs" "$log" | tee -a "$out/summary.txt"
}
if want flux; then
  bench flux-dev-bf16 35 --model flux-dev --dtype bf16 --height 1024 --width 1024 --frames 1
  bench flux-dev-fp8 35 --model flux-dev --dtype fp8 --height 1024 --width 1024 --frames 1
fi
if want wan; then
  wan="--dtype fp8 --height 480 --width 832 --frames 81"
  bench wan-1.3b-fp8 25 --model wan-1.3b $wan
  bench wan-1.3b-fp8-attn-fp8 25 --model wan-1.3b $wan --attention fp8
  bench wan-14b-fp8 45 --model wan-14b $wan --runs 3 --warmup 1
  bench wan-14b-fp8-attn-fp8 55 --model wan-14b $wan --runs 3 --warmup 1 --attention fp8
fi
note "session: $(( $(date +%s) - t_start )) s"
