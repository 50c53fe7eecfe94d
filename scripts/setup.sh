#!/usr/bin/env bash
# Installs sculpt's Debian packages, the project-local venv with the pinned torch wheel
# (scripts/requirements/torch.txt) and builds the sculpt CLI (Release) into build/ against
# that wheel's LibTorch, CUDA compiled in. Tests are built by scripts/test.sh.
# Usage: scripts/setup.sh   (SCULPT_SKIP_APT=1 skips the package step; SCULPT_VENV, SCULPT_BUILD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config ccache python3 python3-venv libgloo-dev
          libsentencepiece-dev libyaml-cpp-dev libgtest-dev nlohmann-json3-dev libutf8proc-dev
          librsvg2-bin)   # rsvg-convert: `sculpt table` turns its SVG plots into PNG

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

bash scripts/venv.sh
bash scripts/configure.sh
BUILD_DIR=${SCULPT_BUILD_DIR:-build}
cmake --build "$BUILD_DIR" -j "$(nproc)" --target sculpt_cli
echo "[setup] built $BUILD_DIR/sculpt"
