#!/usr/bin/env bash
# The norms' absmax fed to the fp8 products (issue #19, branch norm-amax): Wan's three
# norm-fed products per block (q/k/v, cross-attention q, ffn.0) quantise their input by the
# absmax the norm wrote instead of an absmax pass of their own (120 passes a 40-block
# forward). On one GPU in one call, under 240 s; builds nothing; logs and summary.txt under $OUT:
#   tests  the CUDA op suite's absmax cases (norm absmax against the CPU and exactly max |out|
#          as stored; products given it; refused operands) and the other norm / product
#          cases; raylight_cuda_tests CudaNormAbsmax.* (fp8 linear, linear_gelu_tanh and
#          linears given the norm's absmax bit-equal to their own; a wrong one changes them)
#          with CudaLinears.*, CudaWan.*, CudaLora.*, CudaWan22.TinyTi2v* (several runs of rows) as regressions
#   bench  raylight bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off at
#          480x832x81 (median of 5 after 1 warm-up): the "forward:" line, the products /
#          attention / rest "breakdown" and the "by op" table; first with the before binary
#          in $RAYLIGHT_BASE_BUILD when set (a build of main), then this branch's, same call
# Binaries in $RAYLIGHT_BUILD (default build-gpu/bin, else build-gpu): raylight,
# raylight_cuda_tests, raylight_backend_ops_cuda; $RAYLIGHT_BASE_BUILD/raylight (or its bin/).
# Usage: OUT=/tmp/norm-amax [RAYLIGHT_BUILD=...] [RAYLIGHT_BASE_BUILD=...] bench/norm_amax_session.sh [tests] [bench]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/norm-amax}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu/bin}
[ -x "$b/raylight" ] || b=build-gpu
base=${RAYLIGHT_BASE_BUILD:-}
[ -n "$base" ] && [ ! -x "$base/raylight" ] && [ -x "$base/bin/raylight" ] && base=$base/bin
steps=${*:-tests bench}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
left() { echo $((235 - (SECONDS - t0))); }
nvidia-smi -L 2>/dev/null | head -1 | tee "$out/device.txt"

if want tests; then
  timeout 40 "$b/raylight_backend_ops_cuda" \
    --gtest_filter='*absmax*:*layer_norm_modulate*:*add_gated_layer_norm*:*linear*' >"$out/op_suite.log" 2>&1
  note "op suite (norm absmax, norms, products) vs the CPU: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/op_suite.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$out/op_suite.log" | head -10 | tee -a "$out/summary.txt"
  grep -A2 -E "Failure" "$out/op_suite.log" | head -20 | tee -a "$out/summary.txt"
  timeout 100 "$b/raylight_cuda_tests" --gtest_filter='CudaNormAbsmax.*:CudaLinears.*:CudaWan.*:CudaLora.*:CudaWan22.TinyTi2v*' \
    >"$out/cuda_tests.log" 2>&1
  note "CUDA tests (CudaNormAbsmax bit-equality; linears, Wan, LoRA): exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')"
  grep -E "^\[       OK \] CudaNormAbsmax|^\[  FAILED  \]|Failure|Which is|Expected" "$out/cuda_tests.log" | head -24 |
    tee -a "$out/summary.txt"
  note "tests: $((SECONDS - t0)) s"
fi

bench() {  # label, binary directory
  local label=$1 dir=$2 log="$out/bench_$1.log" limit=80
  (( $(left) < 30 )) && { note "$label: skipped ($(left) s left)"; return; }
  (( limit > $(left) )) && limit=$(left)
  timeout "$limit" "$dir/raylight" bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off \
    --height 480 --width 832 --frames 81 --runs 5 --warmup 1 >"$log" 2>&1
  note "== $label ($dir): wan-14b fp8 weights, fp8 attention, 480x832x81 (exit $?)"
  grep -E "^forward:|^breakdown|^by op" "$log" | tee -a "$out/summary.txt"
}
if want bench; then
  if [ -n "$base" ]; then bench before "$base"; else note "before: RAYLIGHT_BASE_BUILD not set, no baseline"; fi
  bench after "$b"
fi

note "session: $((SECONDS - t0)) s"
