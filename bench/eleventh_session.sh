#!/usr/bin/env bash
# Issue #19, eleventh session: our fp8 kernel with Q held in registers (S's products read only
# K from shared memory: less operand traffic under the power cap), against the default, in the
# lab and in Wan 14B forwards; and the checks the tenth session could not rerun. Builds nothing.
# Logs go to $WORK (default /tmp/s11work); $OUT gets summary.txt and logs.tar.gz only.
#   checks  CudaFp8Flash (every form, Q in registers among them) and CudaFp8Rows, the lab's
#           checks as they run by default and with Q in registers, the op suite's gated cases
#   lab     fp8own at 32,760 x 40 heads, $LAB_RUNS runs a setting (default 40: long enough to
#           reach the power cap)
#   480p / 720p   raylight bench, Wan 14B fp8 weights, --attention fp8, in the forms
#           $FWD_VARIANTS (label=ENV=VALUE[,ENV=VALUE...], default "base=RAYLIGHT_FP8_FLASH_QREGS=0
#           qregs=RAYLIGHT_FP8_FLASH_QREGS=1") alternated ($FWD_ROUNDS rounds, default 2; $FWD_RUNS
#           runs each, default 2), nvidia-smi's power and SM clock sampled through each; BIN=dir
#           among the assignments takes that build's raylight (an A/B of two builds)
#   tests   raylight_cuda_tests and the op suite against the CPU, as they run by default
# Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu). Steps run in the order given.
# Usage: OUT=/tmp/s11 bench/eleventh_session.sh [checks] [lab] [480p] [720p] [tests]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s11}; mkdir -p "$out"
work=${WORK:-/tmp/s11work}; mkdir -p "$work"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-checks lab 480p}
note() { echo "$1" | tee -a "$out/summary.txt"; }
finish() { tar -C "$work" -czf "$out/logs.tar.gz" . 2>/dev/null; note "total $((SECONDS - t0)) s"; }
trap finish EXIT
t0=$SECONDS
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader | tee -a "$out/summary.txt"

source bench/session_helpers.sh  # gtest, forward_power, forward_variant

checks() {
  gtest flash_tests 400 raylight_cuda_tests --gtest_filter='CudaFp8Flash.*:CudaFp8Rows.*'
  timeout 150 "$b/raylight_attention_lab" --check-only >"$work/lab_check.log" 2>&1
  note "lab checks, defaults: exit $? $(grep -c ' ok$' "$work/lab_check.log") ok, $(grep -c 'FAIL' "$work/lab_check.log") failed"
  RAYLIGHT_FP8_FLASH_KEYS=128 RAYLIGHT_FP8_FLASH_QREGS=1 timeout 150 "$b/raylight_attention_lab" --check-only >"$work/lab_check_qregs.log" 2>&1
  note "lab checks, Q in registers: exit $? $(grep -c ' ok$' "$work/lab_check_qregs.log") ok, $(grep -c 'FAIL' "$work/lab_check_qregs.log") failed"
  grep -E "FAIL" "$work/lab_check_qregs.log" | head -4 | tee -a "$out/summary.txt"
  gtest gated_cases 300 raylight_backend_ops_cuda --gtest_filter='*gated*'
}

lab() {  # each build in $LAB_BUILDS (default: $b alone), alternated $LAB_ROUNDS times (default 1)
  local r d
  for r in $(seq "${LAB_ROUNDS:-1}"); do
    for d in ${LAB_BUILDS:-$b}; do
      local log="$work/lab_time_${d//\//_}_$r.log"
      timeout 300 "$d/raylight_attention_lab" --time-only --runs "${LAB_RUNS:-40}" --shape 32760x32760x40 \
        --variants fp8own --inputs random >"$log" 2>&1
      note "lab timing, $d, round $r: exit $?"
      grep -E "^(time|check)" "$log" | grep -vE "exp2 (f16|poly)|cluster 2|parts|resident" | sed 's/  */ /g' |
        tee -a "$out/summary.txt"
    done
  done
}

run_size() {
  local size=$1 args=()
  [ "$size" = 720p ] && args=(--height 720 --width 1280)
  for round in $(seq "${FWD_ROUNDS:-2}"); do
    for v in ${FWD_VARIANTS:-base=RAYLIGHT_FP8_FLASH_QREGS=0 qregs=RAYLIGHT_FP8_FLASH_QREGS=1}; do
      forward_variant "${size}_${v%%=*}_r$round" "${v#*=}" "${args[@]}"
    done
  done
}

tests() {
  gtest cuda_tests 300 raylight_cuda_tests
  gtest op_suite 300 raylight_backend_ops_cuda
}

for step in $steps; do
  case $step in
    checks) checks ;;
    lab) lab ;;
    480p | 720p) run_size "$step" ;;
    tests) tests ;;
    *) note "unknown step $step" ;;
  esac
  note "after $step: $((SECONDS - t0)) s"
done
