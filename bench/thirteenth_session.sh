#!/usr/bin/env bash
# Issue #19, thirteenth session: what a block of our fp8 kernel costs besides its tiles, and
# which fp8 scale modes cuBLASLt runs for the products (per-row activation scales). Builds nothing.
# Logs go to $WORK (default /tmp/s13work); $OUT gets summary.txt and logs.tar.gz only.
#   blocks  lab, fp8own (and cuDNN bf16 at 512 keys) at 32,760 queries x 40 heads over 32,760,
#           3,840, 768, 512 and 192 keys: time against tiles a block, so the fixed cost of a block
#   scales  raylight_gemm_scale_modes with fast and with exact accumulation
#   tests / flash / 480p / 720p / lab / ncu   as bench/twelfth_session.sh (FWD_VARIANTS
#           "rows=RAYLIGHT_FP8_ROW_SCALES=1" for the per-row activation scales)
# Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu). Steps run in the order given.
# Usage: OUT=/tmp/s13 bench/thirteenth_session.sh [blocks] [scales] [tests] [flash] [480p] [720p] [lab] [ncu]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s13}; mkdir -p "$out"
work=${WORK:-/tmp/s13work}; mkdir -p "$work"
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-blocks}
note() { echo "$1" | tee -a "$out/summary.txt"; }
source bench/session_helpers.sh  # run_twelfth_steps

blocks() {
  local d k log
  for d in ${LAB_BUILDS:-$b}; do
    for k in 32760 3840 768 512 192; do
      log="$work/blocks_${d//\//_}_$k.log"
      local variants=fp8own
      [ "$k" = 512 ] && variants=cudnn,fp8own
      timeout 200 env ${LAB_ENV:-} "$d/raylight_attention_lab" --time-only --runs "${LAB_RUNS:-10}" \
        --shape "32760x${k}x40" --variants "$variants" --inputs random >"$log" 2>&1
      note "blocks $d, $k keys: exit $?"
      grep -E "^(time|check)" "$log" | grep -vE "exp2 (f16|poly|f32alu)|cluster 2|resident|Q in reg|deferred" |
        sed 's/  */ /g' | tee -a "$out/summary.txt"
    done
  done
}

scales() {
  local exact
  for exact in 0 1; do
    local log="$work/scales_exact$exact.log"
    if [ "$exact" = 1 ]; then
      RAYLIGHT_PROBE_EXACT=1 timeout 200 "$b/raylight_gemm_scale_modes" >"$log" 2>&1
    else
      timeout 200 "$b/raylight_gemm_scale_modes" >"$log" 2>&1
    fi
    note "scale modes, exact accumulation $exact: exit $?"
    tee -a "$out/summary.txt" <"$log"
  done
}

other=()
for step in $steps; do
  case $step in
    blocks) blocks; note "after blocks: ${SECONDS} s" ;;
    scales) scales; note "after scales: ${SECONDS} s" ;;
    *) other+=("$step") ;;
  esac
done
run_twelfth_steps "${other[@]}"
