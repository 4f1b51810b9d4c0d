#!/usr/bin/env bash
# One device call for issue 16 (Wan 2.1 image-to-video end to end), with random weights at
# real shapes (the GPU machine has no checkpoints): writes the Wan 2.1 I2V 14B DiT as ComfyUI
# scaled fp8 (36 input channels, the CLIP branch), umT5-XXL (T5_LAYERS of its 24 layers,
# default 6 to keep the session short: the encode time then undercounts the text encoder),
# CLIP ViT-H/14 and the Wan VAE into a ComfyUI folder (bench/make_random_wan_i2v_parts.py),
# runs the GPU tests of the I2V forwards (CUDA vs the float64 goldens: I2V, FLF2V, Wan 2.2
# I2V; the CLIP towers), then times one
#   raylight generate --comfyui-dir ... --image start.png 480x832x81, 40 steps, cfg 5
# end to end: the `timing:` line (load, encode = both prompts + CLIP + VAE encode of the
# conditioning video, sample = 80 forwards, decode, write) and the peak memory.
# Run from the repo root; binaries in $RAYLIGHT_BUILD (default build-gpu). Results: $OUT.
# Usage: bench/i2v_session.sh [tests] [generate]      (about 5 minutes on one H200)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/i2v-session}; mkdir -p "$out"
build=${RAYLIGHT_BUILD:-build-gpu}
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
steps=${*:-tests generate}
want() { [[ " $steps " == *" $1 "* ]]; }
note() { echo "$1" | tee -a "$out/summary.txt"; }
root=/tmp/wan-i2v-comfy
if want tests; then
  timeout 60 "$build/raylight_cuda_tests" --gtest_filter='CudaWan.Tiny*:CudaClip.Tiny*' >"$out/cuda_tests.log" 2>&1
  note "CUDA tests: exit $? $(grep -E '^\[  (PASSED|FAILED)  \]' "$out/cuda_tests.log" | tr '\n' ' ')"
  grep -E "FAILED|relative L2" "$out/cuda_tests.log" | head -20 | tee -a "$out/summary.txt"
fi
if want generate; then
  t0=$(date +%s)
  timeout 150 python3 bench/make_random_wan_i2v_parts.py --root $root --t5-layers "${T5_LAYERS:-6}" \
    >"$out/make_parts.log" 2>&1 || note "make_random_wan_i2v_parts failed: $(tail -2 "$out/make_parts.log")"
  note "random parts written in $(( $(date +%s) - t0 )) s"
  # A 640x480 start picture (stdlib PNG): the 832x480 video crops it to its aspect.
  python3 - "$out/start.png" <<'PY'
import struct, sys, zlib
w, h = 640, 480
def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xffffffff)
rows = b"".join(b"\x00" + bytes((x * 255 // w, y * 255 // h, (x + y) % 256)[c] for x in range(w) for c in range(3))
                for y in range(h))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
                              chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
  timeout 290 "$build/raylight" generate --comfyui-dir $root --image "$out/start.png" --width 832 --height 480 \
    --frames 81 --steps 40 --prompt "a red fox running through fresh snow" --out /tmp/i2v-frames/ >"$out/generate.log" 2>&1
  note "generate I2V 14B fp8 480x832x81 40 steps (cfg 5: 80 forwards) --image: exit $?"
  grep -E "^model:|^timing:|error|peak|step 1/" "$out/generate.log" | tee -a "$out/summary.txt"
fi
