#!/usr/bin/env bash
# Issue #19, twelfth session: where the fp8 attention call's time goes around our kernel, and
# what stalls the kernel itself. Builds nothing.
# Logs go to $WORK (default /tmp/s12work); $OUT gets summary.txt and logs.tar.gz only.
#   tests   raylight_cuda_tests and the op suite against the CPU, as they run by default
#   flash   CudaFp8Flash alone (every kernel form, the deferred wait bit for bit against the
#           classic order, V quantised straight into V^T)
#   480p / 720p   raylight bench, Wan 14B fp8 weights, --attention fp8, forms $FWD_VARIANTS
#           (label=ENV=V[,ENV=V...]; BIN=dir takes that build's raylight; default "base=") over
#           $FWD_ROUNDS rounds (default 1), with the per-op breakdown (attention.* are the steps
#           inside an attention call)
#   lab     fp8own at 32,760 x 40 heads ($LAB_RUNS runs, default 40), builds $LAB_BUILDS
#   ncu     Nsight Compute, lab at 32,760 x 40 heads: one launch of our kernel as it runs by
#           default or with $NCU_ENV (ENV=V ...) set (stall reasons, stall samples per SASS
#           line), and with NCU_QUANTISE=1 the quantisation's and V^T's kernels
# Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu). Steps run in the order given.
# Usage: OUT=/tmp/s12 bench/twelfth_session.sh [tests] [flash] [480p] [720p] [lab] [ncu]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s12}; mkdir -p "$out"
work=${WORK:-/tmp/s12work}; mkdir -p "$work"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-tests 480p ncu}
note() { echo "$1" | tee -a "$out/summary.txt"; }
finish() { tar -C "$work" -czf "$out/logs.tar.gz" . 2>/dev/null; note "total $((SECONDS - t0)) s"; }
trap finish EXIT
t0=$SECONDS
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader | tee -a "$out/summary.txt"

source bench/session_helpers.sh  # gtest, forward_power, forward_variant

tests() {
  gtest cuda_tests 300 raylight_cuda_tests
  gtest op_suite 300 raylight_backend_ops_cuda
}
flash() { gtest flash_tests 300 raylight_cuda_tests --gtest_filter='CudaFp8Flash.*'; }

run_size() {
  local size=$1 args=() round v
  [ "$size" = 720p ] && args=(--height 720 --width 1280)
  for round in $(seq "${FWD_ROUNDS:-1}"); do
    for v in ${FWD_VARIANTS:-base=}; do
      local label="${size}_${v%%=*}_r$round"
      forward_variant "$label" "${v#*=}" "${args[@]}"
      grep -E "^by op" "$work/forward_$label.log" | cut -c1-700 | tee -a "$out/summary.txt"
    done
  done
}

lab() {
  local d
  for d in ${LAB_BUILDS:-$b}; do
    local log="$work/lab_time_${d//\//_}.log"
    timeout 300 "$d/raylight_attention_lab" --time-only --runs "${LAB_RUNS:-40}" --shape 32760x32760x40 \
      --variants fp8own --inputs random >"$log" 2>&1
    note "lab timing, $d: exit $?"
    grep -E "^(time|check)" "$log" | grep -vE "exp2 (f16|poly|f32alu)|cluster 2|resident|Q in reg" | sed 's/  */ /g' |
      tee -a "$out/summary.txt"
  done
}

ncu_step() {
  command -v ncu >/dev/null || { note "ncu: not installed"; return; }
  local rep="$work/fp8own_default"
  timeout 200 env ${NCU_ENV:-} ncu --clock-control none --kernel-name-base demangled --kernel-name "regex:fp8_flash_kernel" \
    --launch-count 1 --set full --import-source no -f -o "$rep" \
    "$b/raylight_attention_lab" --time-only --runs 1 --shape 32760x32760x40 --variants fp8own --inputs random \
    >"$work/ncu_run_kernel.log" 2>&1
  note "ncu kernel: exit $? $(grep -c '==PROF==' "$work/ncu_run_kernel.log") prof lines"
  if [ -f "$rep.ncu-rep" ]; then
    ncu -i "$rep.ncu-rep" --page details >"$work/ncu_details_kernel.txt" 2>&1
    ncu -i "$rep.ncu-rep" --page raw --csv >"$work/ncu_raw_kernel.csv" 2>&1
    ncu -i "$rep.ncu-rep" --page source --print-source sass --csv >"$work/ncu_sass_kernel.csv" 2>&1
    grep -E "fp8_flash_kernel|Duration|SM Frequency|Issue Slots Busy|No Eligible|Eligible Warps|Warp Cycles Per Issued" \
      "$work/ncu_details_kernel.txt" | head -8 | tee -a "$out/summary.txt"
    rm -f "$rep.ncu-rep"
  fi
  [ "${NCU_QUANTISE:-0}" = 1 ] || return
  rep="$work/quantise"
  timeout 200 ncu --clock-control none --cache-control none --kernel-name-base demangled \
    --kernel-name "regex:stats_kernel|reduce_kernel|quantise_kernel|transpose_v_kernel" --launch-count 4 --set full \
    --import-source no -f -o "$rep" \
    "$b/raylight_attention_lab" --time-only --runs 1 --shape 32760x32760x40 --variants fp8own --inputs random \
    >"$work/ncu_run_quantise.log" 2>&1
  note "ncu quantisation: exit $? $(grep -c '==PROF==' "$work/ncu_run_quantise.log") prof lines"
  if [ -f "$rep.ncu-rep" ]; then
    ncu -i "$rep.ncu-rep" --page details >"$work/ncu_details_quantise.txt" 2>&1
    ncu -i "$rep.ncu-rep" --page source --print-source sass --csv >"$work/ncu_sass_quantise.csv" 2>&1
    grep -E "_kernel|Duration|DRAM Throughput|Memory Throughput|No Eligible|Issue Slots Busy" \
      "$work/ncu_details_quantise.txt" | head -28 | tee -a "$out/summary.txt"
    rm -f "$rep.ncu-rep"
  fi
}

for step in $steps; do
  case $step in
    tests) tests ;;
    flash) flash ;;
    480p | 720p) run_size "$step" ;;
    lab) lab ;;
    ncu) ncu_step ;;
    *) note "unknown step $step" ;;
  esac
  note "after $step: $((SECONDS - t0)) s"
done
