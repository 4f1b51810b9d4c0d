#!/usr/bin/env bash
# Issue 18 on the GPU machine: the server's VAE decode endpoint at 480x832x81 on one H200
# (bench/vae_server_session.py: Wan 2.1 VAE of the released shapes with random weights).
# Run from the repo root with the binary in $RAYLIGHT_BUILD (build-gpu); under 2 minutes.
# Prints the VAESERVER lines; the log goes to $OUT/vae_server.log.
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlibs:$PWD/.gpurun/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
for d in /opt/torch/.venv/lib/python3*/site-packages/nvidia/*/lib; do LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
RAYLIGHT_BINARY=${RAYLIGHT_BUILD:-build-gpu}/raylight timeout 110 python3 bench/vae_server_session.py "$@" 2>&1 \
  | tee "$out/vae_server.log" | grep -E 'VAESERVER|rror'
