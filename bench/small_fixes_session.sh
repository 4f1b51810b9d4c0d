#!/usr/bin/env bash
# Issue #19, three small CUDA fixes (branch `small`), checked on one GPU; builds nothing.
# Steps (all by default; name some to run only those), logs and summary.txt under $OUT:
#   race    the fp8 attention nondeterminism: CudaFp8Rows.* (with Fp8QuantiseTest.* first, the
#           suite that ran before it in the failing full runs) in $RACE_RUNS fresh processes
#           (default 10): every run must pass, and "dequantised codes vs bf16 output" must be
#           0.00e+00 in each (two fp8 calls on the same inputs, bit-equal)
#   sanitize  compute-sanitizer initcheck over the first codes test once: uninitialised
#           device reads by any kernel (ours or cuDNN's); skipped without compute-sanitizer
#   linear  linear_f32: the op suite's fp32 product cases (three configurations) and the
#           real-size products (CudaLinearF32.*: the 14B head at 480p, 32,760 x 5,120 -> 64,
#           and the time projection 1 x 5,120 -> 30,720, bf16 and fp8 weights; ms printed)
#   norm    the Wan block's norm3 pass that no longer stores x: the op suite's gated norm cases,
#           the norm absmax tests, whole Wan forwards against the CPU and goldens
#   tests   raylight_cuda_tests and the whole op suite once
#   forward raylight bench, Wan 14B fp8 weights, --attention fp8, 480x832x81: by-op lines of
#           linear_f32_op, add_gated_layer_norm and gated_sum_layer_norm (and of the baseline
#           binary $RAYLIGHT_BASE when given, alternated)
# Binaries from $RAYLIGHT_BUILD (default build-gpu): raylight_cuda_tests,
# raylight_backend_ops_cuda, raylight. Run from anywhere in the checkout.
# Usage: OUT=/tmp/small RAYLIGHT_BUILD=build-gpu [RAYLIGHT_BASE=/old/raylight] bench/small_fixes_session.sh [steps]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/small_fixes}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu}
base=${RAYLIGHT_BASE:-}
steps=${*:-race sanitize linear norm tests forward}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
verdict() { grep -E '^\[  (PASSED|FAILED)  \]' "$1" | tr '\n' ' '; }
t0=$SECONDS
nvidia-smi -L | tee "$out/device.txt"

if want race; then
  runs=${RACE_RUNS:-10}
  pass=0
  for i in $(seq 1 "$runs"); do
    log="$out/race_$i.log"
    timeout 180 "$b/raylight_cuda_tests" --gtest_filter='Fp8QuantiseTest.*:CudaFp8Rows.*' >"$log" 2>&1
    rc=$?
    [ $rc -eq 0 ] && pass=$((pass + 1))
    note "race run $i: exit $rc; $(grep -oE 'dequantised codes vs bf16 output [0-9.e+-]+' "$log" | awk '{print $NF}' | tr '\n' ' ')"
    grep -E '^\[  FAILED  \]' "$log" | head -5 | tee -a "$out/summary.txt"
  done
  note "race: $pass of $runs runs passed (expected: all; each line two 0.00e+00)"
  # One more run with cuDNN's notes (not counted: they synchronise after each fp8 call): the
  # fp8 plan's engine and workspace bytes, for the record should the race persist.
  RAYLIGHT_CUDNN_DEBUG=1 timeout 180 "$b/raylight_cuda_tests" --gtest_filter='CudaFp8Rows.AttentionCodesThroughTheOProjection' \
    >"$out/race_debug.log" 2>&1
  note "race, cuDNN notes (exit $?): $(grep -E 'fp8 plan for q 4096' "$out/race_debug.log" | head -1)"
fi

if want sanitize; then
  cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$cs" ]; then
    timeout 420 "$cs" --tool initcheck --track-unused-memory no --print-limit 20 \
      "$b/raylight_cuda_tests" --gtest_filter='CudaFp8Rows.AttentionCodesThroughTheOProjection' >"$out/initcheck.log" 2>&1
    note "initcheck: exit $? $(grep -E 'ERROR SUMMARY' "$out/initcheck.log") (expected: 0 errors)"
    grep -E 'Uninitialized|at .* in ' "$out/initcheck.log" | head -10 | tee -a "$out/summary.txt"
  else
    note "initcheck: no compute-sanitizer here, skipped"
  fi
fi

if want linear; then
  timeout 300 "$b/raylight_backend_ops_cuda" --gtest_filter='*fp32_input*' >"$out/linear_suite.log" 2>&1
  note "op suite fp32 products: exit $? $(verdict "$out/linear_suite.log")"
  grep -E '^\[  FAILED  \]' "$out/linear_suite.log" | head -10 | tee -a "$out/summary.txt"
  timeout 300 "$b/raylight_cuda_tests" --gtest_filter='CudaLinearF32.*' >"$out/linear_f32.log" 2>&1
  note "CudaLinearF32: exit $? $(verdict "$out/linear_f32.log")"
  grep -E '^\[ linear_f32 \]' "$out/linear_f32.log" | tee -a "$out/summary.txt"
fi

if want norm; then
  timeout 300 "$b/raylight_backend_ops_cuda" --gtest_filter='*gated*' >"$out/norm_suite.log" 2>&1
  note "op suite gated norms: exit $? $(verdict "$out/norm_suite.log")"
  grep -E '^\[  FAILED  \]' "$out/norm_suite.log" | head -10 | tee -a "$out/summary.txt"
  timeout 400 "$b/raylight_cuda_tests" --gtest_filter='CudaNormAbsmax.*:CudaWan.*:CudaNumerics.*' >"$out/norm_wan.log" 2>&1
  note "CudaNormAbsmax, CudaWan, CudaNumerics: exit $? $(verdict "$out/norm_wan.log")"
  grep -E '^\[  FAILED  \]' "$out/norm_wan.log" | head -10 | tee -a "$out/summary.txt"
fi

if want tests; then
  timeout 400 "$b/raylight_cuda_tests" >"$out/cuda_tests.log" 2>&1
  note "raylight_cuda_tests: exit $? $(verdict "$out/cuda_tests.log")"
  grep -E '^\[  FAILED  \]' "$out/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
  timeout 400 "$b/raylight_backend_ops_cuda" >"$out/op_suite.log" 2>&1
  note "op suite: exit $? $(verdict "$out/op_suite.log")"
  grep -E '^\[  FAILED  \]' "$out/op_suite.log" | head -20 | tee -a "$out/summary.txt"
fi

# One forward bench: binary, label. From the by-op line ("name ms/calls" pairs) the ops
# these fixes touch, one per line.
forward() {
  local bin=$1 label=$2
  timeout 240 "$bin" bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off >"$out/forward_$label.log" 2>&1
  note "== $label (exit $?): $(grep -E '^forward:' "$out/forward_$label.log")"
  grep -E '^by op' "$out/forward_$label.log" | sed 's/^by op[^:]*://' |
    awk '{for (i = 1; i < NF; i += 2) if ($i ~ /linear_f32_op|layer_norm|attention/) print "   " $i, $(i + 1)}' |
    tee -a "$out/summary.txt"
}
if want forward; then
  if [ -x "$b/raylight" ]; then
    for round in 1 2; do
      [ -n "$base" ] && forward "$base" "base_$round"
      forward "$b/raylight" "new_$round"
    done
  else
    note "forward: no $b/raylight, skipped"
  fi
fi
note "total $((SECONDS - t0)) s"
