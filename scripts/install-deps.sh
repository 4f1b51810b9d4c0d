#!/usr/bin/env bash
# Installs the Debian packages the build needs, only those missing. Safe to run repeatedly.
# The CUDA toolkit is optional and never installed here: when nvcc is present the CUDA
# backend is built too.
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libgtest-dev
  libopenmpi-dev openmpi-bin libsentencepiece-dev libavcodec-dev libavformat-dev libavutil-dev
  libswscale-dev libwebp-dev libpng-dev python3
  libpcre2-dev libunistring-dev
  libjpeg62-turbo-dev)  # the last for -DRAYLIGHT_JPEG=ON (JPEG pictures)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
