#!/usr/bin/env bash
# Issue #19, tenth session: clusters of two blocks for our fp8 flash kernel (each K / V^T tile
# crosses from L2 once per two query blocks), measured where it matters, in forwards at the
# power cap; and the full GPU suites with our kernel as the default. Builds nothing.
# Logs go to $WORK (default /tmp/s10work); $OUT gets summary.txt and logs.tar.gz only.
#   flash   CudaFp8Flash (tile sizes x clusters against exact attention over the codes), the
#           lab's checks with RAYLIGHT_FP8_FLASH_CLUSTER=2
#   tests   raylight_cuda_tests and the op suite against the CPU, as they run by default
#   lab     fp8 and fp8own at 32,760 x 40 heads, $LAB_RUNS runs a setting (default 40: long
#           enough to reach the power cap)
#   480p / 720p   raylight bench, Wan 14B fp8 weights, --attention fp8, our kernel in the forms
#           $FWD_VARIANTS (tile keys:cluster blocks, default "128:1 128:2 192:2") alternated
#           ($FWD_ROUNDS rounds, default 2; $FWD_RUNS runs each, default 2), nvidia-smi's power
#           and SM clock sampled through each
# Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu).
# Steps run in this order: flash lab 480p tests 720p.
# Usage: OUT=/tmp/s10 bench/tenth_session.sh [flash] [lab] [480p] [tests] [720p]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s10}; mkdir -p "$out"
work=${WORK:-/tmp/s10work}; mkdir -p "$work"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-flash tests lab 480p}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
finish() { tar -C "$work" -czf "$out/logs.tar.gz" . 2>/dev/null; note "total $((SECONDS - t0)) s"; }
trap finish EXIT
t0=$SECONDS
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader | tee -a "$out/summary.txt"

if want flash; then
  timeout 300 "$b/raylight_cuda_tests" --gtest_filter='CudaFp8Flash.*' >"$work/flash_tests.log" 2>&1
  note "CudaFp8Flash tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/flash_tests.log" | tr '\n' ' ')"
  grep -E "Failure|Expected|Which is|rel_err|worst_lse|Trace|Lq " "$work/flash_tests.log" | head -20 | tee -a "$out/summary.txt"
  RAYLIGHT_FP8_FLASH_CLUSTER=2 timeout 150 "$b/raylight_attention_lab" --check-only >"$work/lab_check_cl2.log" 2>&1
  note "lab checks, clusters of 2: exit $? $(grep -c ' ok$' "$work/lab_check_cl2.log") ok, $(grep -c 'FAIL' "$work/lab_check_cl2.log") failed"
  grep -E "FAIL" "$work/lab_check_cl2.log" | head -4 | tee -a "$out/summary.txt"
fi

if want lab; then
  timeout 300 "$b/raylight_attention_lab" --time-only --runs "${LAB_RUNS:-40}" --shape 32760x32760x40 \
    --variants fp8,fp8own --inputs random >"$work/lab_time.log" 2>&1
  note "lab timing: exit $?"
  grep -E "^time" "$work/lab_time.log" | grep -vE "exp2 (f16|poly)" | sed 's/  */ /g' | tee -a "$out/summary.txt"
fi

# One forward bench with nvidia-smi sampling: label, environment assignments..., --, bench arguments.
source bench/session_helpers.sh
forward() {
  local label=$1; shift
  forward_power "$label" "$b" "$@"
}
run_size() {
  local size=$1 args=()
  [ $size = 720p ] && args=(--height 720 --width 1280)
  for round in $(seq "${FWD_ROUNDS:-2}"); do
    for v in ${FWD_VARIANTS:-128:1 128:2 192:2}; do
      forward ${size}_k${v%:*}_cl${v#*:}_r$round RAYLIGHT_FP8_FLASH_KEYS=${v%:*} RAYLIGHT_FP8_FLASH_CLUSTER=${v#*:} -- "${args[@]}"
    done
  done
}
want 480p && run_size 480p

if want tests; then
  timeout 300 "$b/raylight_cuda_tests" >"$work/cuda_tests.log" 2>&1
  note "raylight_cuda_tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/cuda_tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$work/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
  timeout 300 "$b/raylight_backend_ops_cuda" >"$work/op_suite.log" 2>&1
  note "op suite: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/op_suite.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$work/op_suite.log" | head -20 | tee -a "$out/summary.txt"
  note "tests: $((SECONDS - t0)) s so far"
fi

want 720p && run_size 720p
