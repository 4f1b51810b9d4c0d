#!/usr/bin/env bash
# Issue #19, eighth session: our own fp8 flash-attention kernel (src/backend/cuda/fp8_flash.cu)
# against cuDNN's fp8 graph, one binary, one call; logs and a summary under $OUT:
#   lab    raylight_attention_lab: CPU checks of every variant (fp8own included), then fp8 and
#          fp8own timed at the self-attention shapes with their parts (exp2 in f32 / f16,
#          ping-pong off / on)
#   tests  raylight_cuda_tests and the op suite against the CPU (RAYLIGHT_FP8_KERNEL as set)
#   480p   raylight bench, Wan 14B fp8 weights, --attention fp8, 480x832x81: cuDNN's kernel and
#          ours alternately, twice each (RAYLIGHT_FP8_KERNEL=cudnn|own)
#   720p   the same at 720x1280x81, once each
#   small  Wan 1.3B 480p with ours
#   error  the 14B 480p forward's error against bf16 attention, cuDNN's fp8 and ours
# Run from the repo root. Binaries in $RAYLIGHT_BUILD (default .gpurun/bin, else build-gpu).
# ROUNDS (default 2): 480p pairs. LAB_SHAPES (default --shapes self): the lab timing's shapes.
# Usage: OUT=/tmp/s8 bench/eighth_session.sh [lab] [tests] [480p] [720p] [small] [error]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s8}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-.gpurun/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-sass lab tests 480p 720p small error}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
own_bad=0
rounds=${ROUNDS:-2}
nvidia-smi --query-gpu=name,power.limit,clocks.max.sm --format=csv,noheader | tee "$out/device.txt"

if want sass && command -v cuobjdump >/dev/null; then
  # The fp8 flash kernels' machine code: which special-function and matrix instructions ran.
  cuobjdump -sass "$b/raylight_attention_lab" 2>/dev/null |
    awk '/Function : /{p = /fp8_flash_kernel/} p' >"$out/fp8_flash.sass"
  note "sass: $(grep -oE 'MUFU\.[A-Z0-9.]+|QGMMA[A-Z0-9.]*|HGMMA[A-Z0-9.]*|F2FP[A-Z0-9.]*|SYNCS[A-Z0-9.]*' "$out/fp8_flash.sass" | sort | uniq -c | tr '\n' ' ')"
fi
if want lab; then
  timeout 120 "$b/raylight_cuda_tests" --gtest_filter='CudaFp8Flash.*' >"$out/flash_tests.log" 2>&1
  note "CudaFp8Flash tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/flash_tests.log" | tr '\n' ' ')"
  grep -E "Failure|Expected|Which is|rel_err|worst_lse|Trace|Lq " "$out/flash_tests.log" | head -30 | tee -a "$out/summary.txt"
  grep -q "^\[  PASSED  \] 2 tests" "$out/flash_tests.log" || own_bad=1
  timeout 150 "$b/raylight_attention_lab" --check-only >"$out/lab_check.log" 2>&1
  note "lab checks: exit $? $(grep -c ' ok$' "$out/lab_check.log") ok, $(grep -c 'FAIL' "$out/lab_check.log") failed"
  grep -E "^check (fp8own|fp8 )" "$out/lab_check.log" | tee -a "$out/summary.txt"
  # A failing or hanging kernel of ours is not timed in forwards.
  grep -E "^check fp8own" "$out/lab_check.log" | grep -q FAIL && own_bad=1
  grep -q "^checks: all passed" "$out/lab_check.log" || own_bad=1
  if [ "$own_bad" = 1 ]; then note "fp8own failed: nothing timed"; note "total $((SECONDS - t0)) s"; exit 1; fi
  timeout 300 "$b/raylight_attention_lab" --time-only --runs 5 ${LAB_SHAPES:---shapes self} --variants fp8,fp8own --inputs random \
    >"$out/lab_time.log" 2>&1
  note "lab timing: exit $?"
  grep -E "^time" "$out/lab_time.log" | tee -a "$out/summary.txt"
fi

if want tests; then
  timeout 240 "$b/raylight_cuda_tests" >"$out/cuda_tests.log" 2>&1
  note "raylight_cuda_tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$out/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
  timeout 240 "$b/raylight_backend_ops_cuda" >"$out/op_suite.log" 2>&1
  note "op suite: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/op_suite.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$out/op_suite.log" | head -20 | tee -a "$out/summary.txt"
  note "tests: $((SECONDS - t0)) s so far"
fi

# One forward bench: fp8 kernel (cudnn|own), label, extra arguments.
forward() {
  local kernel=$1 label=$2; shift 2
  if [ "$kernel" = own ] && [ "$own_bad" = 1 ]; then note "== $label: skipped (fp8own failed its checks)"; return; fi
  RAYLIGHT_FP8_KERNEL=$kernel timeout 200 "$b/raylight" bench --model wan-14b --dtype fp8 --attention fp8 \
    --fp8-accuracy off "$@" >"$out/forward_$label.log" 2>&1
  note "== $label (exit $?): $(grep -E '^forward:' "$out/forward_$label.log")"
  grep -E "^breakdown" "$out/forward_$label.log" | cut -c1-300 | tee -a "$out/summary.txt"
}

if want 480p; then
  for round in $(seq "$rounds"); do
    forward cudnn "480p_cudnn_$round"
    forward own "480p_own_$round"
  done
fi
if want 720p; then
  forward cudnn 720p_cudnn --height 720 --width 1280 --runs 3 --warmup 1
  forward own 720p_own --height 720 --width 1280 --runs 3 --warmup 1
fi
if want small; then
  RAYLIGHT_FP8_KERNEL=own timeout 100 "$b/raylight" bench --model wan-1.3b --dtype fp8 --attention fp8 \
    --fp8-accuracy off >"$out/forward_1.3b.log" 2>&1
  note "== wan-1.3b 480p, own (exit $?): $(grep -E '^forward:' "$out/forward_1.3b.log")"
fi
if want error; then
  for kernel in cudnn own; do
    [ "$kernel" = own ] && [ "$own_bad" = 1 ] && continue
    RAYLIGHT_FP8_KERNEL=$kernel timeout 200 "$b/raylight" bench --model wan-14b --dtype fp8 --attention fp8 --runs 1 \
      --warmup 1 --fp8-accuracy bf16 >"$out/error_480p_$kernel.log" 2>&1
    note "== 14B 480p error, $kernel (exit $?): $(grep -E '^fp8 attention vs bf16' "$out/error_480p_$kernel.log")"
  done
fi
note "total $((SECONDS - t0)) s"
