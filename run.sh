#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a result: installs what is missing, builds,
# and makes a video with the embedded tiny umT5, Wan DiT and VAE. Arguments go to `raylight generate`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh
mkdir -p out
build/raylight generate --out out/video.mp4 "$@"
