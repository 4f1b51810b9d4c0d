#!/usr/bin/env bash
# fp8 attention over key chunks merged by log-sum-exp (issue #19): is cuDNN's fp8 kernel
# faster per FLOP when a long call's keys run as several shorter calls? On one GPU in one
# call (about 3 minutes), logs and a summary under $OUT:
#   ops    the CUDA op suite's fp8 attention cases (the chunked ones: 2 and 3 chunks, a partly
#          valid last chunk, valid keys on a chunk edge, lse) against the CPU emulation
#   check  the lab's small-shape checks (fp8 over 160-key chunks against the emulation of
#          the same chunks, lse included)
#   lab    per call, hd 128, 40 heads, random inputs: cuDNN bf16 once (the rel L2 reference),
#          then fp8 per key chunk setting: 75,600 x 75,600 with chunks off / 37,800 / 25,200 /
#          18,900 keys, 32,760 x 32,760 with off / 25,200 / 18,900 / 16,384 / 10,920. One
#          `case` line each (ms, TFLOP/s, rel L2 vs bf16), and the fp8 call's parts
#          (quantisation; cuDNN's kernels with the merge) per setting in the log
#   720p   raylight bench, Wan 14B fp8 weights, --attention fp8, 720x1280x81: chunks off,
#          then the fastest chunk length the lab found at 75,600 (RAYLIGHT_FP8_KV_CHUNK; one
#          timed forward each after the profiled one, and the attention call alone)
# Run from the repo root. Binaries in $RAYLIGHT_BUILD (default build-gpu/bin, else build-gpu):
# raylight, raylight_attention_lab, raylight_backend_ops_cuda.
# Usage: OUT=/tmp/fp8-kvsplit bench/fp8_kvsplit_session.sh [ops] [check] [lab] [720p]
#        (default: all four; 720p is skipped when too little of the 230 s is left)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/fp8-kvsplit}; mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -e /work/main ] || { mkdir -p /work && ln -s "$PWD" /work/main; }  # fixtures path compiled into the tests
b=${RAYLIGHT_BUILD:-build-gpu/bin}
[ -x "$b/raylight" ] || b=build-gpu
steps=${*:-ops check lab 720p}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
t0=$SECONDS
left() { echo $((230 - (SECONDS - t0))); }
nvidia-smi -L | tee "$out/device.txt"
unset RAYLIGHT_FP8_KV_CHUNK  # the lab and the op suite name their settings; 720p sets it per run

if want ops; then
  timeout 60 "$b/raylight_backend_ops_cuda" --gtest_filter='*attention_fp8*' >"$out/ops_fp8.log" 2>&1
  note "op suite, fp8 attention (chunked cases included) vs its CPU emulation: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/ops_fp8.log" | tr '\n' ' ')"
  grep -E "^\[  FAILED  \]|Failure|relative|Which is" "$out/ops_fp8.log" | head -20 | tee -a "$out/summary.txt"
fi

if want check; then
  timeout 40 "$b/raylight_attention_lab" --check-only >"$out/lab_check.log" 2>&1
  note "lab checks (small shapes; fp8 whole and over 160-key chunks vs the emulation): exit $?"
  grep -E "^check fp8" "$out/lab_check.log" | tee -a "$out/summary.txt"
fi

# One line per case: "case LqxLkxH kv-chunk SETTING: ms, TFLOP/s, rel L2 vs bf16".
summarise() {
  sed -n -E 's/^time (fp8|cudnn) +--shape ([0-9x]+) .*random *(, kv-chunk ([^:]*))?: +([0-9.]+) ms +([0-9.]+) TFLOP\/s +rel L2 (.*)$/case \2 \1 \4: \5 ms, \6 TFLOP\/s, rel L2 vs bf16 \7/p' "$1" |
    sed 's/ cudnn : / cuDNN bf16 (reference): /; s/ fp8 / fp8 kv-chunk /' | tee -a "$out/summary.txt"
  grep -E "^time fp8 parts" "$1" | sed 's/^time fp8 parts/  parts/' | tee -a "$out/summary.txt"
}

if want lab; then
  timeout 100 "$b/raylight_attention_lab" --time-only --runs 5 --inputs random --variants cudnn,fp8 \
    --shape 75600x75600x40 --kv-chunk off,37800,25200,18900 >"$out/lab_75600.log" 2>&1
  note "lab, 75,600 x 75,600 x 40 heads x 128 (exit $?):"
  summarise "$out/lab_75600.log"
  timeout 60 "$b/raylight_attention_lab" --time-only --runs 5 --inputs random --variants cudnn,fp8 \
    --shape 32760x32760x40 --kv-chunk off,25200,18900,16384,10920 >"$out/lab_32760.log" 2>&1
  note "lab, 32,760 x 32,760 x 40 heads x 128 (exit $?):"
  summarise "$out/lab_32760.log"
  note "lab: $((SECONDS - t0)) s so far"
fi

if want 720p && [ "$(left)" -gt 70 ]; then
  # The fastest chunk length at 75,600 (chunked settings only: the comparison is against off).
  best=$(sed -n -E 's/^time fp8 .*kv-chunk ([0-9]+) keys.*: +([0-9.]+) ms .*/\2 \1/p' "$out/lab_75600.log" 2>/dev/null |
    sort -n | head -1 | cut -d' ' -f2)
  best=${best:-37800}
  for c in off "$best"; do
    [ "$(left)" -gt 35 ] || { note "720p kv-chunk $c: skipped ($(left) s left)"; continue; }
    RAYLIGHT_FP8_KV_CHUNK=$c timeout "$(left)" "$b/raylight" bench --model wan-14b --dtype fp8 --height 720 --width 1280 \
      --frames 81 --attention fp8 --runs 1 --warmup 0 --fp8-accuracy off >"$out/forward_720p_chunk_$c.log" 2>&1
    note "== wan-14b fp8 weights, 720x1280x81, --attention fp8, RAYLIGHT_FP8_KV_CHUNK=$c (exit $?)"
    grep -E "^forward:|^breakdown|^attention \[" "$out/forward_720p_chunk_$c.log" | tee -a "$out/summary.txt"
  done
elif want 720p; then
  note "720p: skipped ($(left) s left)"
fi

note "total $((SECONDS - t0)) s"
