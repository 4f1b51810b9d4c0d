#!/usr/bin/env bash
# Issue #19, ninth session: where our fp8 flash kernel's time goes, 192-key tiles against
# 128-key ones, and the checks the eighth session could not run on the GPU. Builds nothing.
# Logs go to $WORK (default /tmp/s9work); $OUT gets summary.txt and logs.tar.gz only (the
# device tool returns a few files).
#   ncu     Nsight Compute over one launch each of our kernel with 128- and 192-key tiles (f32
#           exp2, ping-pong) at 32,760 tokens x 40 heads: pipe use, stall reasons, and stall
#           samples per SASS line (csv)
#   flash   CudaFp8Flash (both tile sizes against exact attention over the codes), the lab's
#           checks with RAYLIGHT_FP8_FLASH_KEYS=128 and 192
#   lab     fp8 and fp8own timed ($LAB_SHAPES, default --shapes self), every kernel form
#   own_tests  the fp8, Wan, lse and Ring GPU tests and the op suite's attention cases with our
#           kernel and $OWN_KEYS-key tiles (default 192)
#   tests   raylight_cuda_tests and the op suite against the CPU with cuDNN's fp8 kernel, then
#           the fp8 cases of both again with ours (RAYLIGHT_FP8_KERNEL=own)
#   race    bench/small_fixes_session.sh race norm (the nondeterminism fix, the norm3 fold)
#   480p / 720p   raylight bench, Wan 14B fp8 weights, --attention fp8: cuDNN's kernel, ours
#           with 128-key tiles, ours with 192 ($FWD_RUNS runs, default 3)
# Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu).
# Steps run in this order: flash lab tests own_tests race 480p 720p ncu.
# Usage: OUT=/tmp/s9 bench/ninth_session.sh [ncu] [flash] [lab] [tests] [own_tests] [race] [480p] [720p]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s9}; mkdir -p "$out"
work=${WORK:-/tmp/s9work}; mkdir -p "$work"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-ncu flash lab tests race}
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
  for keys in ${CHECK_KEYS:-128 192}; do
    RAYLIGHT_FP8_FLASH_KEYS=$keys timeout 150 "$b/raylight_attention_lab" --check-only >"$work/lab_check_$keys.log" 2>&1
    note "lab checks, $keys-key tiles: exit $? $(grep -c ' ok$' "$work/lab_check_$keys.log") ok, $(grep -c 'FAIL' "$work/lab_check_$keys.log") failed"
    grep -E "^check fp8own" "$work/lab_check_$keys.log" | grep -E "FAIL|q 256" | head -4 | tee -a "$out/summary.txt"
  done
fi

if want lab; then
  timeout 400 "$b/raylight_attention_lab" --time-only --runs 5 ${LAB_SHAPES:---shapes self} --variants fp8,fp8own \
    --inputs random >"$work/lab_time.log" 2>&1
  note "lab timing: exit $?"
  grep -E "^time" "$work/lab_time.log" | sed 's/  */ /g' | tee -a "$out/summary.txt"
fi

if want tests; then
  timeout 300 "$b/raylight_cuda_tests" >"$work/cuda_tests.log" 2>&1
  note "raylight_cuda_tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/cuda_tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$work/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
  timeout 300 "$b/raylight_backend_ops_cuda" >"$work/op_suite.log" 2>&1
  note "op suite: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/op_suite.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$work/op_suite.log" | head -20 | tee -a "$out/summary.txt"
  RAYLIGHT_FP8_KERNEL=own timeout 200 "$b/raylight_cuda_tests" --gtest_filter='*Fp8*:*fp8*:*Wan*' >"$work/cuda_tests_own.log" 2>&1
  note "raylight_cuda_tests fp8/Wan, own kernel: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/cuda_tests_own.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$work/cuda_tests_own.log" | head -20 | tee -a "$out/summary.txt"
  RAYLIGHT_FP8_KERNEL=own timeout 200 "$b/raylight_backend_ops_cuda" --gtest_filter='*ttention*' >"$work/op_suite_own.log" 2>&1
  note "op suite attention, own kernel: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/op_suite_own.log" | tr '\n' ' ')"
  note "tests: $((SECONDS - t0)) s so far"
fi

# The fp8 tests with our kernel and $OWN_KEYS-key tiles (default 192) as they would run by default.
if want own_tests; then
  export_keys=${OWN_KEYS:-192}
  RAYLIGHT_FP8_KERNEL=own RAYLIGHT_FP8_FLASH_KEYS=$export_keys timeout 200 "$b/raylight_cuda_tests" \
    --gtest_filter='*Fp8*:*fp8*:*Wan*:*Lse*:*Ring*' >"$work/cuda_tests_own.log" 2>&1
  note "raylight_cuda_tests fp8/Wan/lse/ring, own $export_keys: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/cuda_tests_own.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$work/cuda_tests_own.log" | head -20 | tee -a "$out/summary.txt"
  RAYLIGHT_FP8_KERNEL=own RAYLIGHT_FP8_FLASH_KEYS=$export_keys timeout 200 "$b/raylight_backend_ops_cuda" \
    --gtest_filter='*ttention*' >"$work/op_suite_own.log" 2>&1
  note "op suite attention, own $export_keys: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$work/op_suite_own.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$work/op_suite_own.log" | head -20 | tee -a "$out/summary.txt"
  note "own tests: $((SECONDS - t0)) s so far"
fi

if want race; then
  OUT="$work/small" RAYLIGHT_BUILD="$b" RACE_RUNS=${RACE_RUNS:-4} bench/small_fixes_session.sh race norm >/dev/null 2>&1
  note "race/norm: exit $?"
  cat "$work/small/summary.txt" >>"$out/summary.txt" 2>/dev/null
fi

# One forward bench: label, environment assignments..., then -- and raylight bench arguments.
forward() {
  local label=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout 250 "$b/raylight" bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off \
    --runs "${FWD_RUNS:-3}" --warmup 1 "$@" >"$work/forward_$label.log" 2>&1
  note "== $label (exit $?): $(grep -E '^forward:' "$work/forward_$label.log")"
  grep -E "^breakdown" "$work/forward_$label.log" | cut -c1-200 | tee -a "$out/summary.txt"
}
for size in 480p 720p; do
  want $size || continue
  args=(); [ $size = 720p ] && args=(--height 720 --width 1280)
  forward ${size}_cudnn RAYLIGHT_FP8_KERNEL=cudnn -- "${args[@]}"
  forward ${size}_own128 RAYLIGHT_FP8_KERNEL=own RAYLIGHT_FP8_FLASH_KEYS=128 -- "${args[@]}"
  forward ${size}_own192 RAYLIGHT_FP8_KERNEL=own RAYLIGHT_FP8_FLASH_KEYS=192 -- "${args[@]}"
done

if want ncu; then
  if command -v ncu >/dev/null; then
    for keys in ${NCU_KEYS:-128 192}; do
      rep="$work/fp8own_$keys"
      timeout 200 ncu --clock-control none --kernel-name-base demangled --kernel-name "regex:fp8_flash_kernel<0, 1, $keys>" \
        --launch-count 1 --set full --import-source no -f -o "$rep" \
        "$b/raylight_attention_lab" --time-only --runs 1 --shape ${NCU_SHAPE:-32760x32760x40} --variants fp8own --inputs random \
        >"$work/ncu_run_$keys.log" 2>&1
      note "ncu $keys-key tiles: exit $? $(grep -c '==PROF==' "$work/ncu_run_$keys.log") prof lines"
      grep -E "No kernels|ERROR" "$work/ncu_run_$keys.log" | head -3 | tee -a "$out/summary.txt"
      [ -f "$rep.ncu-rep" ] || continue
      ncu -i "$rep.ncu-rep" --page details >"$work/ncu_details_$keys.txt" 2>&1
      ncu -i "$rep.ncu-rep" --page raw --csv >"$work/ncu_raw_$keys.csv" 2>&1
      ncu -i "$rep.ncu-rep" --page source --print-source sass --csv >"$work/ncu_sass_$keys.csv" 2>&1
      grep -E "^  [a-z_:]|Duration|SM Frequency|Issue Slots Busy|No Eligible|Eligible Warps|Warp Cycles Per Issued|Executed Instructions  " \
        "$work/ncu_details_$keys.txt" | head -12 | tee -a "$out/summary.txt"
      rm -f "$rep.ncu-rep"
    done
  else
    note "ncu: not installed"
  fi
fi

