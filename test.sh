#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a full test run: installs what is missing,
# builds (the CUDA backend too when nvcc exists), and runs every test CTest knows.
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
