#!/usr/bin/env bash
# Product plans made before the first forward (issue #19), on one GPU in one call (about 2.5
# minutes, at most 4), logs and a summary under $OUT:
#   test   tests/cuda CudaLinearPlans: a prepared product makes no plan at its first call and
#          gives what an unprepared one gives (bit for bit with RAYLIGHT_GEMM_TUNE=0, within
#          bf16 rounding timed); a Wan forward (bf16 and fp8 weights) makes none after
#          prepare_product_plans; bad shapes are refused
#   bench  raylight bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off
#          --warmup 0 --runs 3 (480x832x81): with RAYLIGHT_BASE_BUILD set (a build of main)
#          that binary first, then this one with --plans first-use (the plans made inside the
#          first forward, as before) and with preparation (the default). Each prints
#          "product plans: ... in X ms", "first forward: X ms, N product plans made in it"
#          (N must be 0 after preparation) and "forward: median X ms" (steady).
#          main's binary prints no first-forward line: with --warmup 0 its profiled run is
#          the first forward, so its "breakdown (profiled run, X ms in ops)" stands for it.
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu): raylight,
# raylight_cuda_tests.   Usage: bench/gemm_plans_session.sh [test] [bench]   (default: both)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gemm-plans}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu}
[ -x "$b/raylight" ] || b=build-gpu/bin
steps=${*:-test bench}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
left() { local l=$((230 - (SECONDS - t0))); echo $((l > 10 ? l : 10)); }
nvidia-smi -L | tee "$out/device.txt"

if want test; then
  timeout 120 "$b/raylight_cuda_tests" --gtest_filter='CudaLinearPlans*' >"$out/cuda_linear_plans.log" 2>&1
  note "CudaLinearPlans (prepared products make no plan and give the same result; a Wan forward makes none): exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_linear_plans.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|Which is|Expected|error" "$out/cuda_linear_plans.log" | head -16 | tee -a "$out/summary.txt"
  note "test: $((SECONDS - t0)) s so far"
fi

# One bench: $1 label, $2 binary folder, then further bench options.
bench() {
  local label=$1 bin=$2; shift 2
  timeout "$(left)" "$bin/raylight" bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off \
    --warmup 0 --runs 3 "$@" >"$out/bench_$label.log" 2>&1
  note "== $label: wan-14b fp8, --attention fp8, --warmup 0 --runs 3 $* (exit $?)"
  grep -E "^weights:|^product plans:|^attention plans:|^first forward:|^forward:|^breakdown" "$out/bench_$label.log" | tee -a "$out/summary.txt"
}
first_ms() { sed -nE 's/^first forward: ([0-9.]+) ms.*/\1/p' "$out/bench_$1.log" | head -1; }

if want bench; then
  if [ -n "${RAYLIGHT_BASE_BUILD:-}" ] && [ -x "$RAYLIGHT_BASE_BUILD/raylight" ]; then
    bench base "$RAYLIGHT_BASE_BUILD"
  fi
  bench first_use "$b" --plans first-use
  bench prepared "$b"
  a=$(first_ms first_use); p=$(first_ms prepared)
  prep=$(sed -nE 's/^product plans: .* in ([0-9.]+) ms.*/\1/p' "$out/bench_prepared.log" | head -1)
  if [ -n "$a" ] && [ -n "$p" ]; then
    note "first forward: $a ms with plans made in it -> $p ms after $prep ms of preparation ($(awk -v a="$a" -v p="$p" 'BEGIN { printf "%.1f", a - p }') ms moved out of the first step)"
  fi
fi
note "total $((SECONDS - t0)) s"
