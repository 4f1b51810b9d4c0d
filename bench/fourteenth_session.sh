#!/usr/bin/env bash
# Issue #19, fourteenth session: clusters of two blocks with the peer's stage released at cta
# scope (no memory barrier before each arrival), and the GPU checks of the thirteenth session's
# shared quantisation helpers. Builds nothing.
# Logs go to $WORK (default /tmp/s14work); $OUT gets summary.txt and logs.tar.gz only.
#   check   CudaNormAbsmax, CudaLinears, CudaFp8RowScales, CudaFp8Flash (every kernel form)
#   sass    memory barriers and arrivals per fp8 kernel form (cuobjdump, where installed)
#   clab    lab, fp8own at 32,760 x 40 heads, clusters of 1 and 2 side by side ($LAB_RUNS, default 20),
#           builds $LAB_BUILDS
#   tests / flash / 480p / 720p / lab / ncu   as bench/twelfth_session.sh (FWD_VARIANTS
#           "cl2=RAYLIGHT_FP8_FLASH_CLUSTER=2" for clusters in a forward)
# Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu). Steps run in the order given.
# Usage: OUT=/tmp/s14 bench/fourteenth_session.sh [check] [sass] [clab] [480p] ...
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s14}; mkdir -p "$out"
work=${WORK:-/tmp/s14work}; mkdir -p "$work"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-check clab}
note() { echo "$1" | tee -a "$out/summary.txt"; }
source bench/session_helpers.sh  # gtest, run_twelfth_steps

check() {
  gtest check 400 raylight_cuda_tests --gtest_filter='CudaNormAbsmax.*:CudaLinears.*:CudaFp8RowScales.*:CudaFp8Flash.*'
}

sass() {
  local dump=cuobjdump
  command -v $dump >/dev/null || dump=/usr/local/cuda/bin/cuobjdump
  [ -x "$(command -v $dump)" ] || { note "sass: no cuobjdump"; return; }
  $dump -sass "$b/raylight_attention_lab" >"$work/lab.sass" 2>&1
  note "sass: exit $?"
  # Per fp8_flash_kernel form: its template arguments, memory barriers, remote arrivals.
  awk '/Function :/ {f = ($0 ~ /fp8_flash_kernel/) ? $3 : ""; if (f != "") {n[f] = 0; a[f] = 0}}
       f != "" && /MEMBAR/ {n[f]++}
       f != "" && /SYNCS.ARRIVE/ {a[f]++}
       END {for (k in n) printf "sass %s: %d MEMBAR, %d SYNCS.ARRIVE\n", k, n[k], a[k]}' "$work/lab.sass" |
    sort | tee -a "$out/summary.txt"
  rm -f "$work/lab.sass"
}

clab() {
  local d
  for d in ${LAB_BUILDS:-$b}; do
    local log="$work/clab_${d//\//_}.log"
    timeout 400 "$d/raylight_attention_lab" --time-only --runs "${LAB_RUNS:-20}" --shape 32760x32760x40 \
      --variants fp8own --inputs random >"$log" 2>&1
    note "cluster lab, $d: exit $?"
    grep -E "^(time|check)" "$log" | grep -E "exp2 f32 |resident|FAIL" | grep -vE "deferred|Q in reg" | sed 's/  */ /g' |
      tee -a "$out/summary.txt"
  done
}

other=()
for step in $steps; do
  case $step in
    check | sass | clab) $step; note "after $step: ${SECONDS} s" ;;
    *) other+=("$step") ;;
  esac
done
run_twelfth_steps "${other[@]}"
