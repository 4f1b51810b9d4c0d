#!/usr/bin/env bash
# fp8 attention's e4m3 output fed straight into Wan's o-projection (issue #19: Fp8Rows,
# Backend::linear_fp8_rows), on one H200 in one call (about 3 minutes), logs and a summary
# under $OUT:
#   tests    tests/cuda CudaFp8Rows: at 4,096 tokens x 40 heads x 128 with an fp8 5,120 ->
#            5,120 weight, the codes path against today's (fp8 attention's bf16 output, then
#            linear) and both against bf16 attention (the printed rel L2s; the codes path
#            must be no worse), with and without column means in v; the one-process seam
#            hands out codes with fp8 attention only. Then the CUDA op suite's fp8 attention
#            cases (unchanged path) and the new dequantise / linear_fp8_rows cases vs the CPU
#   forward  raylight bench --model wan-14b --dtype fp8 --attention fp8 at 480x832x81: the
#            timed runs (median of 3) with the breakdown by op, then --fp8-accuracy bf16: the
#            forward's rel L2 against cuDNN bf16 attention on the same weights and inputs (it
#            runs after the timed runs, so one call gives both); with RAYLIGHT_BASE_BUILD set
#            (a build of main), that binary first, the same call, as the baseline
#   720p     (not run by default) the same at 720x1280x81, one timed run, no accuracy
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu): raylight,
# raylight_backend_ops_cuda, raylight_cuda_tests.
# Usage: bench/attn_codes_session.sh [tests] [forward] [720p]   (default: tests forward)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/attn-codes}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu}
[ -x "$b/raylight" ] || b=build-gpu/bin
steps=${*:-tests forward}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
left() { echo $((280 - (SECONDS - t0))); }
nvidia-smi -L | tee "$out/device.txt"

if want tests; then
  timeout 120 "$b/raylight_cuda_tests" --gtest_filter='CudaFp8Rows*' >"$out/cuda_fp8_rows.log" 2>&1
  note "CudaFp8Rows (codes path vs today's and vs bf16 attention; the seam's codes): exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_fp8_rows.log" | tr '\n' ' ')"
  grep -E "^\[ fp8 rows \]|^\[  FAILED  \]|Failure|Which is|Expected|actual" "$out/cuda_fp8_rows.log" | head -20 | tee -a "$out/summary.txt"
  timeout 120 "$b/raylight_backend_ops_cuda" --gtest_filter='*attention_fp8*:*linear_fp8_rows*:*dequantise*' \
    >"$out/ops_fp8.log" 2>&1
  note "op suite vs the CPU (attention_fp8, linear_fp8_rows, dequantise; three configurations): exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/ops_fp8.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|relative" "$out/ops_fp8.log" | head -20 | tee -a "$out/summary.txt"
fi

# One bench: $1 label, $2 binary folder, then bench options.
bench() {
  local label=$1 bin=$2; shift 2
  timeout "$(left)" "$bin/raylight" bench --model wan-14b --dtype fp8 --attention fp8 "$@" \
    >"$out/forward_$label.log" 2>"$out/forward_${label}.err"
  note "== $label: wan-14b fp8 weights, --attention fp8 $* (exit $?)"
  grep -E "^forward:|^breakdown|^by op|^peak|^fp8 attention vs" "$out/forward_$label.log" | tee -a "$out/summary.txt"
}

if want forward; then
  if [ -n "${RAYLIGHT_BASE_BUILD:-}" ] && [ -x "$RAYLIGHT_BASE_BUILD/raylight" ]; then
    bench base_480p "$RAYLIGHT_BASE_BUILD" --runs 3 --warmup 1 --fp8-accuracy bf16
  fi
  bench codes_480p "$b" --runs 3 --warmup 1 --fp8-accuracy bf16
  note "forward: $((SECONDS - t0)) s so far"
fi

if want 720p && [ "$(left)" -gt 80 ]; then
  if [ -n "${RAYLIGHT_BASE_BUILD:-}" ] && [ -x "$RAYLIGHT_BASE_BUILD/raylight" ]; then
    bench base_720p "$RAYLIGHT_BASE_BUILD" --height 720 --width 1280 --frames 81 --runs 1 --warmup 0 --fp8-accuracy off
  fi
  bench codes_720p "$b" --height 720 --width 1280 --frames 81 --runs 1 --warmup 0 --fp8-accuracy off
elif want 720p; then
  note "720p: skipped ($(left) s left)"
fi

note "total $((SECONDS - t0)) s"
