#!/usr/bin/env bash
# fp8 attention on one H200 in one call (issue #19), under 5 minutes, logs under $OUT:
#   lab    the attention kernel lab: own / cuDNN bf16 / cuDNN fp8 checked against the CPU on
#          small shapes (random and outlier-channel inputs, 4x), then timed at hd 128 with
#          32,760 and 75,600 tokens (self) and 512 keys (cross), TFLOP/s and rel L2 vs bf16
#   bench  raylight bench, fp8 weights: Wan 1.3B and Wan 14B at 480x832x81, cuDNN bf16
#          attention then --attention fp8 (which also prints the forward's rel L2 vs bf16)
#   ops    the CUDA op suite (attention and attention_fp8 cases first, then all of it)
# Run from the repo root. Binaries in $RAYLIGHT_BUILD (default build-gpu/bin, else build-gpu):
# raylight, raylight_attention_lab, raylight_backend_ops_cuda.
#   outlier16 (when time is left) the lab's self-attention timing with 16x outlier channels
# Usage: bench/attention_fp8_session.sh [lab] [bench] [ops] [outlier16]   (default: all four)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-lab bench ops outlier16}
want() { [[ " $steps " == *" $1 "* ]]; }
nvidia-smi -L | tee "$out/device.txt"
summary=()
t0=$SECONDS
if want lab; then
  # Checks with cuDNN's plan notes on (why a graph is refused, which engine runs), then timing.
  RAYLIGHT_CUDNN_DEBUG=1 timeout 90 "$b/raylight_attention_lab" --check-only >"$out/lab_check.log" 2>&1
  summary+=("lab checks: exit $?")
  grep -E "^check|^kernels|checks:|no .* plan|refused|failed|error" "$out/lab_check.log" | head -60
  timeout 150 "$b/raylight_attention_lab" --time-only --runs 5 2>&1 | tee "$out/lab_time.log" | grep -E "^time|plan|error"
  summary+=("lab timing: exit ${PIPESTATUS[0]} ($((SECONDS - t0)) s so far)")
fi
if want bench; then
  for m in wan-1.3b wan-14b; do
    for a in cudnn fp8; do
      echo "== $m --dtype fp8 --attention $a"
      # fp8 on the 1.3B with cuDNN's notes: plans, and the amax of P and O at real shapes.
      dbg=; [ "$m$a" = wan-1.3bfp8 ] && dbg=1
      RAYLIGHT_CUDNN_DEBUG=$dbg timeout 120 "$b/raylight" bench --model $m --dtype fp8 --attention $a --runs 3 --warmup 1 2>&1
    done
  done | tee "$out/bench.log" | grep -E "^==|^attention|forward:|breakdown|fp8 attention vs|plan for|no .* plan|error"
  summary+=("bench: done ($((SECONDS - t0)) s so far)")
fi
if want ops; then
  timeout 60 "$b/raylight_backend_ops_cuda" --gtest_filter='*attention*' >"$out/ops_attention.log" 2>&1
  summary+=("op suite, attention cases: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/ops_attention.log" | tr '\n' ' ')")
  grep -E "^\[  FAILED  \]|relative|Failure|Which is|Expected" "$out/ops_attention.log" | head -30
  left=$((290 - (SECONDS - t0)))
  if [ "$left" -gt 30 ]; then
    timeout "$left" "$b/raylight_backend_ops_cuda" >"$out/ops_all.log" 2>&1
    summary+=("op suite, all: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/ops_all.log" | tr '\n' ' ')")
    grep -E "^\[  FAILED  \]" "$out/ops_all.log" | head -20
  else
    summary+=("op suite, all: skipped (time)")
  fi
fi
if want outlier16 && [ $((SECONDS - t0)) -lt 240 ]; then
  # The first run's outlier inputs (16x: a one-hot softmax) at the 14B shape, for comparison.
  timeout 40 "$b/raylight_attention_lab" --time-only --runs 1 --shapes self --outlier 16 2>&1 |
    tee "$out/lab_outlier16.log" | grep -E "^time (fp8|cudnn).*14B 480"
fi
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
echo "total $((SECONDS - t0)) s"
