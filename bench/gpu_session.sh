#!/usr/bin/env bash
# One GPU session in one call: the GPU tests, then raylight bench and the PyTorch reference
# at the issue's shapes, all on the same card, logs under $OUT (or ./gpu-out). Expects a
# build in build-cuda/ (made on the build machine; carried with the call).
# Usage: bench/gpu_session.sh [cudnn] [tests] [attn] [small] [large] [torch]
#   cudnn: the cuDNN attention tests and the cuBLASLt fp8 probe first (debug output on). The
#          attn step stops the session when cuDNN attention did not run at the real shapes.
# RAYLIGHT_BUILD names the folder holding raylight and raylight_cuda_tests (build-cuda).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.devlibs:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
b=${RAYLIGHT_BUILD:-build-cuda}
rl=$b/raylight
steps=${*:-cudnn tests attn small large torch}
nvidia-smi -L | tee "$out/device.txt"
want() { [[ " $steps " == *" $1 "* ]]; }
if want cudnn; then
  RAYLIGHT_CUDNN_DEBUG=1 timeout 120 $b/raylight_cuda_tests --gtest_filter='CudnnAttention*:CudaProbe*' 2>&1 |
    tee "$out/cudnn.log" | grep -E "^\[  (FAILED|PASSED)|^\[ (cudnn|kernel|fp8 probe)|Failure|relative|Which is|error|plan for q (1000|333)|refused" | head -60
  ok=${PIPESTATUS[0]}
  RAYLIGHT_GEMM_DEBUG=1 CUBLASLT_LOG_MASK=5 timeout 60 $b/raylight_cuda_tests --gtest_filter='*Fp8*' >"$out/fp8.log" 2>&1
  grep -E "refused|^\[cublasLt\].*(Error|Hint)|OK \]|FAILED \]" "$out/fp8.log" | sort | uniq -c | sort -rn | head -12
  [ "$ok" != 0 ] && echo "cuDNN attention tests failed (exit $ok)"
fi
if want tests; then
  timeout 300 $b/raylight_cuda_tests 2>&1 | tee "$out/tests.log" | grep -E "^\[  (FAILED|PASSED)|error|relative|Failure|Expected|Which is|  Actual" | head -60
fi
if want attn; then
  timeout 120 $rl bench --model wan-1.3b --attention-only 2>&1 | tee "$out/attn.log"
  timeout 120 $rl bench --model wan-14b --attention-only 2>&1 | tee -a "$out/attn.log"
  # No forward benchmarks when cuDNN attention did not run at the real shapes.
  if ! grep -q "cuDNN.*TFLOP" "$out/attn.log" || grep -q "no fused-attention plan" "$out/attn.log"; then
    echo "cuDNN attention did not run at the benchmark shapes: stopping"; exit 1
  fi
fi
if want small; then
  for a in "--attention cudnn" "--attention own"; do
    echo "== wan-1.3b bf16 $a"; timeout 200 $rl bench --model wan-1.3b --dtype bf16 $a 2>&1
  done | tee "$out/bench_1.3b.log"
fi
if want large; then
  # The own-kernel 14B baseline (4.63 s on H200, docs/benchmarks.md) is rerun on other cards.
  configs=("--dtype bf16" "--dtype fp8" "--dtype fp8 --fp8-gemm native")
  grep -q H200 "$out/device.txt" || configs+=("--dtype bf16 --attention own --runs 2 --warmup 1")
  for a in "${configs[@]}"; do
    echo "== wan-14b $a"; timeout 300 $rl bench --model wan-14b --runs 3 $a 2>&1
  done | tee "$out/bench_14b.log"
fi
if want torch; then
  export PYTHONUNBUFFERED=1
  timeout 200 python3 bench/torch_wan_bench.py --model wan-1.3b --attention-only 2>&1 | tee "$out/torch.log"
  timeout 200 python3 bench/torch_wan_bench.py --model wan-1.3b 2>&1 | tee -a "$out/torch.log"
  timeout 300 python3 bench/torch_wan_bench.py --model wan-14b --runs 3 2>&1 | tee -a "$out/torch.log"
fi
