#!/usr/bin/env bash
# fp8 attention's lse is of the true scores (branch lse): K smoothing's shift q . mean_k /
# sqrt(D) is added back (cuda/fp8_lse.cu), so Ring attention merges key blocks with different
# K means correctly. On one GPU in one call (about 1 minute), logs and a summary under $OUT:
#   lse    raylight_cuda_tests CudaFp8Lse.*: the kernel against the host (every rotated head
#          size, two unrotated), its time at 32,760 x 40 x 128 (expect ~0.1 ms), two key blocks
#          merged by lse, two key chunks of one call, Ring-style blocks through attention
#          (fp8 + a bf16 block), all against the CPU's exact attention; and the quantisation's
#          own tests (Fp8QuantiseTest.*), whose sums the correction reads
#   ops    the CUDA op suite's fp8 attention cases (lse included) against the CPU emulation,
#          which now corrects its lse the same way, and the bf16 attention / merge cases
#   own    the Ring-style test again with RAYLIGHT_FP8_KERNEL=own (our wgmma fp8 kernel runs
#          the 2,048-key fp8 block; its lse gets the same correction)
#   lab    the attention lab's small-shape checks (fp8 over key chunks: lse vs the emulation)
# Run from the repo root. Binaries in $RAYLIGHT_BUILD (default build-gpu/bin, else build-gpu):
# raylight_cuda_tests, raylight_backend_ops_cuda, raylight_attention_lab.
# Usage: OUT=/tmp/fp8-lse bench/fp8_lse_session.sh [lse] [ops] [own] [lab]   (default: all four)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/fp8-lse}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu/bin}
[ -x "$b/raylight_cuda_tests" ] || b=build-gpu
steps=${*:-lse ops own lab}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
nvidia-smi -L | tee "$out/device.txt"
unset RAYLIGHT_FP8_KV_CHUNK RAYLIGHT_ATTENTION RAYLIGHT_FP8_KERNEL  # the tests name their settings

if want lse; then
  timeout 120 "$b/raylight_cuda_tests" --gtest_filter='CudaFp8Lse.*:Fp8QuantiseTest.*' >"$out/lse.log" 2>&1
  note "CudaFp8Lse + Fp8QuantiseTest: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/lse.log" | tr '\n' ' ')"
  grep -E "^fp8|^attention \(|fp8_lse_add_k_mean|^\[  FAILED  \]|Failure|Expected|actual" "$out/lse.log" | head -40 |
    tee -a "$out/summary.txt"
fi

if want ops; then
  timeout 240 "$b/raylight_backend_ops_cuda" --gtest_filter='*attention*:*merge*' >"$out/ops.log" 2>&1
  note "op suite, attention (bf16 and fp8 vs the emulation, lse included) and merge cases: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/ops.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|relative|Which is" "$out/ops.log" | head -20 | tee -a "$out/summary.txt"
fi

if want own; then
  RAYLIGHT_FP8_KERNEL=own timeout 60 "$b/raylight_cuda_tests" --gtest_filter='CudaFp8Lse.RingStyle*' >"$out/own.log" 2>&1
  note "Ring-style blocks with RAYLIGHT_FP8_KERNEL=own: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/own.log" | tr '\n' ' ')"
  grep -E "^attention \(|Failure|Expected|actual" "$out/own.log" | head -10 | tee -a "$out/summary.txt"
fi

if want lab && [ -x "$b/raylight_attention_lab" ]; then
  timeout 60 "$b/raylight_attention_lab" --check-only >"$out/lab_check.log" 2>&1
  note "lab checks (small shapes; fp8 over key chunks with lse vs the emulation): exit $?"
  grep -E "^check fp8" "$out/lab_check.log" | tee -a "$out/summary.txt"
fi

note "total $((SECONDS - t0)) s"
