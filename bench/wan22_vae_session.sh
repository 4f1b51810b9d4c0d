#!/usr/bin/env bash
# Issue 17: the Wan 2.2 VAE decode of TI2V-5B's latent ([48, 31, 44, 80]: 704x1280x121) on one
# GPU, ours beside PyTorch eager, random weights of the released shapes on both sides (about
# 2.5 minutes on an H200; the programs are stopped at 120 and 70 s, so the whole stays
# under 200 s): raylight_wan22_vae_bench (untiled, then by tiles under a 12 GiB cap: time, peak
# live / reserved GPU memory, tiled vs untiled difference) and bench/torch_wan22_vae_bench.py
# (bf16, decoded latent frame by latent frame as the official vae2_2.py does: time, peak
# allocated / reserved GPU memory). Each runs under /usr/bin/time for its wall time and peak
# host memory. Run from the repo root with the build in $RAYLIGHT_BUILD (build-gpu); logs
# under $OUT. Prints the BENCH / BOUND lines of both and a TIME line per program.
set -uo pipefail
out=${OUT:-/tmp}
mkdir -p "$out"
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
b=${RAYLIGHT_BUILD:-build-gpu}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timed() {  # NAME LOG COMMAND...: the command's output to LOG, its wall time and peak host memory after
  local name=$1 log=$2
  shift 2
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "TIME $name: wall %e s, peak host memory %M KiB, exit %x" -o "$log.time" "$@" >"$log" 2>&1
    cat "$log.time"
  else
    local t0=$SECONDS
    "$@" >"$log" 2>&1
    echo "TIME $name: wall $((SECONDS - t0)) s, exit $?"
  fi
}
timed raylight "$out/wan22_vae_raylight.log" \
  timeout 120 "$b/raylight_wan22_vae_bench" --frames 121 --height 704 --width 1280 --cap 12
grep -E 'BENCH|BOUND|weights|error' "$out/wan22_vae_raylight.log"
timed torch "$out/wan22_vae_torch.log" \
  timeout 70 python3 bench/torch_wan22_vae_bench.py --frames 121 --height 704 --width 1280
grep -E 'BENCH|weights|Error|error' "$out/wan22_vae_torch.log"
