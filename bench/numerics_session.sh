#!/usr/bin/env bash
# One GPU call for issue 24 (GPU numerics at the reference's own bf16 error): makes the
# mid-config fixture with the official Wan 2.1 model code (bench/wan_numerics.py), runs the
# CUDA op suite and the GPU tests (the numerics test reads that fixture), then for each
# config (mid, Wan 1.3B 480x832x81, Wan 14B 480x832x33) the relative L2 error of the new
# and the baseline binary's `raylight forward` against the official code in fp32, beside
# the official code's own bf16 error. Logs and the fixture under $OUT.
#
# Expects, as bench/validate_session.sh: .gpurun/bin (new build), .gpurun/base/raylight
# (baseline), .gpurun/lib, and .gpurun/wan_official/model.py (wan/modules/model.py of
# Wan-Video/Wan2.1, read there, not part of this repository).
# Usage: bench/numerics_session.sh [fixture] [tests] [mid] [wan-1.3b] [wan-14b]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-out}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }
steps=${*:-fixture tests mid wan-1.3b wan-14b}
want() { [[ " $steps " == *" $1 "* ]]; }
new=.gpurun/bin/raylight base=.gpurun/base/raylight
work=/tmp/numerics
note() { echo "$1" | tee -a "$out/progress.txt"; }
if want fixture; then
  PYTHONUNBUFFERED=1 timeout 120 python3 bench/wan_numerics.py make --official .gpurun/wan_official --config mid \
    --out $work/mid --fixture "$out/wan_numerics_mid.safetensors" 2>&1 | tee "$out/make_mid.log" | tail -3
  cp "$out/wan_numerics_mid.safetensors" tests/fixtures/ && note "fixture: $(tail -1 "$out/make_mid.log")"
fi
if want tests; then
  timeout 240 .gpurun/bin/raylight_backend_ops_cuda >"$out/op_suite.log" 2>&1
  note "op suite: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/op_suite.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]" "$out/op_suite.log" | head -20
  timeout 300 .gpurun/bin/raylight_cuda_tests >"$out/cuda_tests.log" 2>&1
  note "model GPU tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|relative L2|official|Failure|Which is|Expected" "$out/cuda_tests.log" | head -40
fi
for cfg in mid wan-1.3b wan-14b; do
  want $cfg || continue
  w=$work/$cfg
  if [ ! -f $w/reference.safetensors ]; then
    PYTHONUNBUFFERED=1 timeout 300 python3 bench/wan_numerics.py make --official .gpurun/wan_official --config $cfg \
      --out $w >"$out/make_$cfg.log" 2>&1 || { note "$cfg: make failed: $(tail -2 "$out/make_$cfg.log")"; continue; }
  fi
  outs=()
  for bin in new base; do
    t0=$(date +%s)
    timeout 240 ${!bin} forward --model $w/model.safetensors --latent $w/latent.safetensors \
      --context $w/context.safetensors --timestep 500 --out $w/$bin.safetensors >"$out/forward_${cfg}_$bin.log" 2>&1 \
      && outs+=("$bin=$w/$bin.safetensors")
    note "$cfg forward [$bin]: exit $? in $(( $(date +%s) - t0 )) s"
  done
  note "$cfg: $(python3 bench/wan_numerics.py compare --work $w "${outs[@]}" 2>&1 | tail -1)"
  rm -f $w/model.safetensors
done
cp "$out/progress.txt" "$out/summary.txt"
# Few files come back from the device machine: the logs travel as one archive.
(cd "$out" && tar cf logs.tar ./*.log progress.txt 2>/dev/null && rm -f ./*.log progress.txt)
