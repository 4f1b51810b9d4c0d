#!/usr/bin/env bash
# One GPU session in one call: the GPU tests, then raylight bench and the PyTorch reference
# at the issue's shapes, all on the same card, logs under $OUT (or ./gpu-out). Expects a
# build in build-cuda/ (made on the build machine; carried with the call).
# Usage: bench/gpu_session.sh [tests] [attn] [small] [large] [torch]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.devlibs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
rl=build-cuda/raylight
steps=${*:-tests attn small large torch}
nvidia-smi -L | tee "$out/device.txt"
want() { [[ " $steps " == *" $1 "* ]]; }
if want tests; then
  timeout 300 build-cuda/raylight_cuda_tests 2>&1 | tee "$out/tests.log" | grep -E "^\[  (FAILED|PASSED)|error|relative|Failure|Expected|Which is|  Actual" | head -60
fi
if want attn; then
  for w in 8 4; do echo "== RAYLIGHT_FA_WARPS=$w"; RAYLIGHT_FA_WARPS=$w timeout 120 $rl bench --model wan-1.3b --attention-only; done 2>&1 | tee "$out/attn.log"
  timeout 120 $rl bench --model wan-14b --attention-only 2>&1 | tee -a "$out/attn.log"
fi
if want small; then
  timeout 200 $rl bench --model wan-1.3b --dtype bf16 2>&1 | tee "$out/bench_1.3b.log"
fi
if want large; then
  for a in "--dtype bf16" "--dtype fp8"; do
    timeout 300 $rl bench --model wan-14b $a --runs 3 2>&1
  done | tee "$out/bench_14b.log"
fi
if want torch; then
  export PYTHONUNBUFFERED=1
  timeout 200 python3 bench/torch_wan_bench.py --model wan-1.3b --attention-only 2>&1 | tee "$out/torch.log"
  timeout 200 python3 bench/torch_wan_bench.py --model wan-1.3b 2>&1 | tee -a "$out/torch.log"
  timeout 300 python3 bench/torch_wan_bench.py --model wan-14b --runs 3 2>&1 | tee -a "$out/torch.log"
fi
