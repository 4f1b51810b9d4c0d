#!/usr/bin/env bash
# Issue #19, fifteenth session: Q in registers for every tile size and cluster form (192-key
# tiles pack P into one register set, which leaves room for Q's fragments); P's e4m3 codes
# without exp2, row sums on the tensor cores (RAYLIGHT_FP8_FLASH_EXP=codes; a twin "pwl" that
# rounded the subnormal tail by the conversion instruction ran in call 4 and is gone); fp32
# exp2 with the row sums on the tensor cores (f32sums, built after the device time was spent).
# Builds nothing. Logs go to $WORK (default /tmp/s15work); $OUT gets summary.txt and logs.tar.gz.
#   check   CudaFp8Flash (every kernel form; Q in registers held to Q in shared memory bit for bit)
#   qlab    lab, fp8own at 32,760 x 40 heads: fp32 exp2 (sums by adds or on the tensor cores) and
#           codes, Q in shared memory and in registers side by side ($LAB_RUNS, default 20;
#           $LAB_SHAPE, default 32760x32760x40), builds $LAB_BUILDS
#   errs    the lab's checks (--check-only) with fp32 exp2 and codes: fp8own against exact
#   acc     Wan 14B fp8 480x832x81 forward's rel L2 against bf16 attention ($ACC_EXPS, default
#           f32 codes f32sums)
#   sample  Wan 1.3B (random fp8 weights), 30 steps, cfg 5, UniPC, 480x832x81 from one noise with bf16
#           attention and fp8 ($SAMPLE_FP8, default "fp8:f32 fp8:codes": attention:exp2): the
#           final latents' rel L2 against bf16's
#   etests  with RAYLIGHT_FP8_FLASH_EXP=$ETESTS_EXP (default codes): the op suite's attention cases and
#           the fp8 / Wan GPU tests
#   tests / flash / 480p / 720p / lab / ncu   as bench/twelfth_session.sh (FWD_VARIANTS
#           "q=RAYLIGHT_FP8_FLASH_QREGS=1" for Q in registers, "c=RAYLIGHT_FP8_FLASH_EXP=codes" for
#           P's codes without exp2)
# Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu). Steps run in the order given.
# Usage: OUT=/tmp/s15 bench/fifteenth_session.sh [check] [qlab] [480p] ...
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s15}; mkdir -p "$out"
work=${WORK:-/tmp/s15work}; mkdir -p "$work"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-check qlab}
note() { echo "$1" | tee -a "$out/summary.txt"; }
source bench/session_helpers.sh  # gtest, run_twelfth_steps

check() {
  gtest check 400 raylight_cuda_tests --gtest_filter='CudaFp8Flash.*'
}

qlab() {
  local d
  for d in ${LAB_BUILDS:-$b}; do
    local log="$work/qlab_${d//\//_}.log"
    timeout 400 "$d/raylight_attention_lab" --time-only --runs "${LAB_RUNS:-20}" --shape "${LAB_SHAPE:-32760x32760x40}" \
      --variants fp8own --inputs random >"$log" 2>&1
    note "Q-in-registers lab, $d: exit $?"
    grep -E "^(time|check)" "$log" | grep -E "exp2 (f32 |f32sums|codes)|Q in reg|resident|FAIL" | grep -v deferred | sed 's/  */ /g' |
      tee -a "$out/summary.txt"
  done
}

errs() {
  local e
  for e in f32 codes; do
    RAYLIGHT_FP8_FLASH_EXP=$e timeout 150 "$b/raylight_attention_lab" --check-only >"$work/errs_$e.log" 2>&1
    note "lab checks, exp2 $e: exit $?"
    grep -E "^check" "$work/errs_$e.log" | grep -E "fp8own|FAIL" | grep -vE "Q in reg|deferred" | sed 's/  */ /g' |
      tee -a "$out/summary.txt"
    grep -E "^checks:" "$work/errs_$e.log" | tee -a "$out/summary.txt"
  done
}

acc() {
  local e
  for e in ${ACC_EXPS:-f32 codes f32sums}; do
    RAYLIGHT_FP8_FLASH_EXP=$e timeout 200 "$b/raylight" bench --model wan-14b --dtype fp8 --attention fp8 \
      --fp8-accuracy bf16 --runs 1 --warmup 1 >"$work/acc_$e.log" 2>&1
    note "accuracy, exp2 $e (exit $?): $(grep -E '^forward:|^fp8 attention vs' "$work/acc_$e.log" | tr '\n' ' ')"
  done
}

sample() {
  local dir=$work/sample a
  mkdir -p "$dir"
  timeout 120 python3 bench/make_random_wan_checkpoint.py --model wan-1.3b --out "$dir/dit.safetensors" \
    --context "$dir/context.safetensors" >"$work/sample_make.log" 2>&1 || { note "sample: no checkpoint"; return; }
  python3 -c "import sys, torch; from safetensors.torch import save_file
save_file({'context': torch.randn(12, 4096, generator=torch.Generator().manual_seed(5))}, sys.argv[1])" \
    "$dir/negative.safetensors" >>"$work/sample_make.log" 2>&1
  for a in cudnn:f32 ${SAMPLE_FP8:-fp8:f32 fp8:codes}; do
    RAYLIGHT_FP8_FLASH_EXP=${a#*:} timeout 150 "$b/raylight" sample --model "$dir/dit.safetensors" \
      --context "$dir/context.safetensors" --negative "$dir/negative.safetensors" --width 832 --height 480 \
      --frames 81 --steps 30 --cfg 5 --seed 3 --device cuda --attention "${a%:*}" \
      --out "$dir/latent_${a/:/_}.safetensors" >"$work/sample_${a/:/_}.log" 2>&1
    note "sample, --attention ${a%:*}, exp2 ${a#*:}: exit $?"
  done
  python3 - "$dir" <<'PY' 2>&1 | tee -a "$out/summary.txt"
import sys, torch
from safetensors.torch import load_file
d = sys.argv[1]
ref = load_file(d + "/latent_cudnn_f32.safetensors")["latent"].double()
import os
for e in ("f32", "codes"):
    if not os.path.exists(f"{d}/latent_fp8_{e}.safetensors"):
        continue
    got = load_file(f"{d}/latent_fp8_{e}.safetensors")["latent"].double()
    print(f"sample, fp8 attention with exp2 {e}: final latent rel L2 {((got - ref).norm() / ref.norm()).item():.3e} against bf16")
PY
}

etests() {
  local e=${ETESTS_EXP:-codes}
  RAYLIGHT_FP8_FLASH_EXP=$e gtest "ops_attention_$e" 200 raylight_backend_ops_cuda --gtest_filter='*attention*'
  RAYLIGHT_FP8_FLASH_EXP=$e gtest "fp8_wan_$e" 300 raylight_cuda_tests --gtest_filter='CudaFp8*:CudaWan*:Fp8*'
}

other=()
for step in $steps; do
  case $step in
    check | qlab | errs | acc | sample | etests) $step; note "after $step: ${SECONDS} s" ;;
    *) other+=("$step") ;;
  esac
done
run_twelfth_steps "${other[@]}"
