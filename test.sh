#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a full test run: installs what is missing,
# builds (the CUDA backend too when nvcc exists), and runs every test CTest knows; tests
# labelled `gpu` run only when nvidia-smi sees a GPU.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh
select=()
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "test.sh: no GPU visible, skipping tests labelled gpu" >&2
  select=(-LE gpu)
fi
ctest --test-dir build --output-on-failure -j"$(nproc)" "${select[@]}" "$@"
