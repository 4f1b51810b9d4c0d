#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a result: installs what is missing, builds,
# and makes a video with the embedded demo model (umT5, Wan DiT and VAE with small trained weights):
# out/video.mp4 from its example prompt. Arguments go to `raylight generate` (--prompt TEXT; --help
# lists the words the demo model knows).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh
mkdir -p out
build/raylight generate --out out/video.mp4 "$@"
