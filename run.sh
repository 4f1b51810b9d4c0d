#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a result: installs what is missing, builds,
# and samples latents with the embedded tiny Wan model. Arguments go to `raylight sample`.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh
mkdir -p out
build/raylight sample --model tiny --out out/latents.safetensors "$@"
