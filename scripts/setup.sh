#!/usr/bin/env bash
# Installs sculpt's Debian packages and builds it (Release) into build/.
# Usage: scripts/setup.sh            (set SCULPT_SKIP_APT=1 to skip the package step)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config ccache libtorch-dev libopenblas0-pthread libgloo-dev
          libsentencepiece-dev libyaml-cpp-dev libfmt-dev libgtest-dev nlohmann-json3-dev
          libutf8proc-dev)

if [[ "${SCULPT_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO=sudo
    echo "[setup] installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

BUILD_DIR=${SCULPT_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${SCULPT_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "[setup] built $BUILD_DIR/sculpt"
