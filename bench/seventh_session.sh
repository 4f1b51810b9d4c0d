#!/usr/bin/env bash
# Issue #19, seventh session: the merged tree on one GPU in one call (about 6 minutes),
# logs and a summary under $OUT:
#   tests  raylight_cuda_tests and the whole op suite (raylight_backend_ops_cuda) against
#          the CPU
#   480p   raylight bench, Wan 14B fp8 weights, --attention fp8, 480x832x81: the baseline
#          binary ($RAYLIGHT_BASE, when given) and this tree alternately, twice each (the card
#          drifts a little as it warms: pairs taken in the same call)
#   720p   the same at 720x1280x81, once each
#   small  Wan 1.3B, 480x832x81, this tree
#   error  the 14B 480p forward's error of fp8 attention against bf16 attention (baseline and
#          this tree)
# Run from the repo root. Binaries in $RAYLIGHT_BUILD (default build-gpu/bin, else build-gpu).
# Usage: OUT=/tmp/s7 RAYLIGHT_BASE=/path/to/old/raylight bench/seventh_session.sh [tests] [480p] [720p] [small] [error]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/s7}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu/bin}
[ -x "$b/raylight" ] || b=.gpurun/bin
[ -x "$b/raylight" ] || b=build-gpu
base=${RAYLIGHT_BASE:-}
steps=${*:-tests 480p 720p small error}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
nvidia-smi -L | tee "$out/device.txt"

if want tests; then
  timeout 240 "$b/raylight_cuda_tests" >"$out/cuda_tests.log" 2>&1
  note "raylight_cuda_tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$out/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
  timeout 240 "$b/raylight_backend_ops_cuda" >"$out/op_suite.log" 2>&1
  note "op suite: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/op_suite.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$out/op_suite.log" | head -20 | tee -a "$out/summary.txt"
  note "tests: $((SECONDS - t0)) s so far"
fi

# One forward bench: binary, label, extra arguments.
forward() {
  local bin=$1 label=$2; shift 2
  timeout 200 "$bin" bench --model wan-14b --dtype fp8 --attention fp8 --fp8-accuracy off "$@" >"$out/forward_$label.log" 2>&1
  note "== $label (exit $?): $(grep -E '^forward:' "$out/forward_$label.log")"
  grep -E "^breakdown|^by op" "$out/forward_$label.log" | cut -c1-400 | tee -a "$out/summary.txt"
}

if want 480p; then
  for round in 1 2; do
    [ -n "$base" ] && forward "$base" "480p_base_$round"
    forward "$b/raylight" "480p_new_$round"
  done
fi
if want 720p; then
  [ -n "$base" ] && forward "$base" 720p_base --height 720 --width 1280 --runs 3 --warmup 1
  forward "$b/raylight" 720p_new --height 720 --width 1280 --runs 3 --warmup 1
fi
if want small; then
  timeout 100 "$b/raylight" bench --model wan-1.3b --dtype fp8 --attention fp8 --fp8-accuracy off >"$out/forward_1.3b.log" 2>&1
  note "== wan-1.3b 480p (exit $?): $(grep -E '^forward:' "$out/forward_1.3b.log")"
fi
if want error; then
  for which in base new; do
    bin=$b/raylight; [ $which = base ] && bin=$base
    [ -n "$bin" ] || continue
    timeout 200 "$bin" bench --model wan-14b --dtype fp8 --attention fp8 --runs 1 --warmup 1 --fp8-accuracy bf16 \
      >"$out/error_480p_$which.log" 2>&1
    note "== 14B 480p, $which: $(grep -E '^fp8 attention vs bf16' "$out/error_480p_$which.log") (exit $?)"
  done
fi
note "total $((SECONDS - t0)) s"
