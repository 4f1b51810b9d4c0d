#!/usr/bin/env bash
# The quantisation in front of fp8 attention (issue #19; fp8_quantise.cu: 32 columns per
# thread, 2 of the rotation's 7 butterfly stages across lanes at hd 128 instead of 4, rows
# through cp.async stages), on one GPU in about 1.5 minutes; logs and a summary under $OUT:
#   quant   raylight_cuda_tests Fp8QuantiseTest: every e4m3 code, the amax and the scale held
#           to the host bit for bit (head sizes 16-256 and an unrotated 48, odd rows and C,
#           partly valid keys, an infinite key)
#   ops     the CUDA op suite's fp8 attention cases (cuDNN fp8 after the quantisation) against
#           the CPU emulation, now with C = 640 and head size 256
#   lab     raylight_attention_lab --time-only --runs 5 --shapes self: per call at 32,760
#           tokens (12 and 40 heads) and 75,600 (40 heads), the "time fp8 parts" lines give
#           the quantisation's ms (before: 1.38 ms at 32,760 x 40 heads and 3.45 ms at 75,600
#           on an H200, 2026-12-02) beside cuDNN's fp8 kernel, and the whole calls' times
#   base    only with RAYLIGHT_BASELINE_BUILD (a build of main): the same lab run with
#           --runs 3 there, for before/after on the same card (adds about 45 s)
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu): raylight_cuda_tests,
# raylight_backend_ops_cuda, raylight_attention_lab.
# Usage: OUT=/tmp/fp8-quant [RAYLIGHT_BUILD=...] [RAYLIGHT_BASELINE_BUILD=...] bench/fp8_quant_session.sh [quant] [ops] [lab]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/fp8-quant}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu}
[ -x "$b/raylight_attention_lab" ] || b=build-gpu/bin
steps=${*:-quant ops lab}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
nvidia-smi -L | tee "$out/device.txt"
nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,power.limit --format=csv | tee -a "$out/device.txt"

if want quant; then
  timeout 60 "$b/raylight_cuda_tests" --gtest_filter='Fp8QuantiseTest.*' >"$out/quant.log" 2>&1
  note "quantisation vs the host, bit for bit: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/quant.log" | tr '\n' ' ')"
  grep -E "Failure|differ|Which is|Expected|operand|Lq " "$out/quant.log" | head -20 | tee -a "$out/summary.txt"
fi

if want ops; then
  timeout 60 "$b/raylight_backend_ops_cuda" --gtest_filter='*attention_fp8*' >"$out/ops_fp8.log" 2>&1
  note "op suite, fp8 attention vs its CPU emulation: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/ops_fp8.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|relative|Which is" "$out/ops_fp8.log" | head -20 | tee -a "$out/summary.txt"
fi

if want lab; then
  timeout 100 "$b/raylight_attention_lab" --time-only --runs 5 --shapes self >"$out/lab_self.log" 2>&1
  note "lab, self-attention, median of 5 (exit $?):"
  grep -E "^time (fp8|cudnn)" "$out/lab_self.log" | tee -a "$out/summary.txt"
  if [ -n "${RAYLIGHT_BASELINE_BUILD:-}" ]; then
    timeout 80 "$RAYLIGHT_BASELINE_BUILD/raylight_attention_lab" --time-only --runs 3 --shapes self \
      >"$out/lab_self_baseline.log" 2>&1
    note "baseline ($RAYLIGHT_BASELINE_BUILD), median of 3 (exit $?):"
    grep -E "^time fp8" "$out/lab_self_baseline.log" | tee -a "$out/summary.txt"
  fi
fi

note "total $((SECONDS - t0)) s"
