#!/usr/bin/env bash
# One GPU call that checks a change set and measures it against a baseline binary, on the
# same card: the CUDA op suite and the model-level GPU tests, then `raylight bench` for the
# new and the old binary alternately (Wan 1.3B bf16, Wan 14B fp8 at 480x832x81), Flux.1 dev
# at 1024x1024 (bf16, fp8) and the PyTorch eager Flux reference. Logs under $OUT.
#
# Expects (carried with the call, made on the build machine):
#   .gpurun/bin/  raylight, raylight_cuda_tests, raylight_backend_ops_cuda (new build)
#   .gpurun/base/ raylight (the baseline build)
#   .gpurun/lib/  shared libraries the GPU host lacks (sentencepiece, png, protobuf-lite)
# The test binaries read fixtures from the path compiled into them (/work/main/tests/fixtures):
# that path is linked to this checkout first.
# Usage: bench/validate_session.sh [tests] [bench] [flux]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
steps=${*:-tests bench flux}
want() { [[ " $steps " == *" $1 "* ]]; }
new=.gpurun/bin/raylight base=.gpurun/base/raylight
nvidia-smi -L | tee "$out/device.txt"
summary=()
if want tests; then
  timeout 240 .gpurun/bin/raylight_backend_ops_cuda >"$out/op_suite.log" 2>&1
  summary+=("op suite: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/op_suite.log" | tr '\n' ' ')")
  grep -E "^\[  FAILED  \]" "$out/op_suite.log" | head -20
  timeout 300 .gpurun/bin/raylight_cuda_tests >"$out/cuda_tests.log" 2>&1
  summary+=("model GPU tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')")
  grep -E "^\[  FAILED  \]|relative L2|Failure|Which is|Expected" "$out/cuda_tests.log" | head -40
  $new serve --devices 2>&1 | head -3 | tee "$out/devices.txt"
fi
forward_ms() { grep -oE "forward: median [0-9.]+ ms" "$1" | grep -oE "[0-9.]+" | head -1; }
if want bench; then
  for cfg in "wan-1.3b --dtype bf16" "wan-14b --dtype fp8 --runs 3"; do
    order="base new base new"
    [[ $cfg == wan-14b* ]] && order="base new"
    for bin in $order; do
      log="$out/bench_${cfg%% *}_${bin}_$RANDOM.log"
      timeout 150 ${!bin} bench --model $cfg >"$log" 2>&1
      summary+=("$cfg [$bin]: $(forward_ms "$log") ms")
    done
  done
fi
if want flux; then
  for dt in bf16 fp8; do
    log="$out/bench_flux_$dt.log"
    timeout 150 $new bench --model flux-dev --dtype $dt --height 1024 --width 1024 --frames 1 >"$log" 2>&1
    cat "$log" | tail -6
    summary+=("flux-dev $dt 1024x1024 [new]: $(forward_ms "$log") ms")
  done
  PYTHONUNBUFFERED=1 timeout 200 python3 bench/torch_flux_bench.py >"$out/torch_flux.log" 2>&1
  summary+=("flux-dev torch eager: $(grep -oE 'median [0-9.]+ ms' "$out/torch_flux.log")")
fi
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
