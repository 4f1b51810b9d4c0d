#!/usr/bin/env bash
# One activation quantisation shared by several fp8 products (Backend::linears: Wan's q/k/v
# and cross-attention k/v) and cuBLASLt candidate timing at plan creation (issue #19), on one
# GPU in one call (about 2.5 minutes), logs and a summary under $OUT:
#   ops      the CUDA op suite's product cases (linears, linear, linear_gelu_tanh,
#            linear_pair) against the CPU reference, and tests/cuda's CudaLinears (linears
#            bit-equal to the separate products, timed plans, accumulation kept)
#   forward  raylight bench --model wan-14b --dtype fp8 --attention fp8 at 480x832x81 with
#            RAYLIGHT_GEMM_TUNE=0 (the heuristic's first kernel) and =1 (the fastest timed
#            candidate; RAYLIGHT_GEMM_DEBUG lists each plan's candidates and the one kept);
#            with RAYLIGHT_BASE_BUILD set (a build of main), that binary first as the baseline
#   720p     (not run by default) the same at 720x1280x81, tune 0 and 1, one timed run each
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu): raylight,
# raylight_backend_ops_cuda, raylight_cuda_tests.
# Usage: bench/gemm_shared_session.sh [ops] [forward] [720p]   (default: ops forward)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gemm-shared}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu}
[ -x "$b/raylight" ] || b=build-gpu/bin
steps=${*:-ops forward}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
left() { echo $((170 - (SECONDS - t0))); }
nvidia-smi -L | tee "$out/device.txt"

if want ops; then
  timeout 60 "$b/raylight_backend_ops_cuda" --gtest_filter='*_linears_*:*_linear_M*:*_linear_gelu*:*_linear_pair*' \
    >"$out/ops_products.log" 2>&1
  note "op suite, products vs the CPU (linears, linear, linear_gelu_tanh, linear_pair): exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/ops_products.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|relative|Which is" "$out/ops_products.log" | head -20 | tee -a "$out/summary.txt"
  timeout 60 "$b/raylight_cuda_tests" --gtest_filter='CudaLinears*' >"$out/cuda_linears.log" 2>&1
  note "CudaLinears (shared codes bit-equal to separate products; timed plans vs the heuristic's and the CPU; accumulate not overwritten): exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_linears.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|Which is|Expected" "$out/cuda_linears.log" | head -12 | tee -a "$out/summary.txt"
fi

# One bench: $1 label, $2 binary folder, $3 RAYLIGHT_GEMM_TUNE, then bench options.
bench() {
  local label=$1 bin=$2 tune=$3; shift 3
  RAYLIGHT_GEMM_TUNE=$tune RAYLIGHT_GEMM_DEBUG=1 timeout "$(left)" "$bin/raylight" bench --model wan-14b --dtype fp8 \
    --attention fp8 --fp8-accuracy off "$@" >"$out/forward_$label.log" 2>"$out/forward_${label}_gemm.log"
  note "== $label: wan-14b fp8 weights, --attention fp8 $* (RAYLIGHT_GEMM_TUNE=$tune, exit $?)"
  grep -E "^forward:|^breakdown|^by op|^peak" "$out/forward_$label.log" | tee -a "$out/summary.txt"
  # The plans timed and what timing kept against the heuristic's first choice.
  grep -E "kept" "$out/forward_${label}_gemm.log" | head -12 | tee -a "$out/summary.txt"
}

if want forward; then
  if [ -n "${RAYLIGHT_BASE_BUILD:-}" ] && [ -x "$RAYLIGHT_BASE_BUILD/raylight" ]; then
    bench base_480p "$RAYLIGHT_BASE_BUILD" 0 --runs 3 --warmup 1
  fi
  bench tune0_480p "$b" 0 --runs 3 --warmup 1
  bench tune1_480p "$b" 1 --runs 3 --warmup 1
  note "forward: $((SECONDS - t0)) s so far"
fi

if want 720p && [ "$(left)" -gt 70 ]; then
  bench tune0_720p "$b" 0 --height 720 --width 1280 --frames 81 --runs 1 --warmup 0
  bench tune1_720p "$b" 1 --height 720 --width 1280 --frames 81 --runs 1 --warmup 0
elif want 720p; then
  note "720p: skipped ($(left) s left)"
fi

note "total $((SECONDS - t0)) s"
