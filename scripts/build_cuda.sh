#!/usr/bin/env bash
# Build sculpt against a CUDA LibTorch 2.x: the one inside a PyTorch install (default) or an
# unpacked libtorch (TORCH_PREFIX=/path/to/libtorch). The other dependencies come from the
# system (scripts/setup.sh installs them; SCULPT_SKIP_APT=1 there skips libtorch's own use).
# Usage: scripts/build_cuda.sh [BUILD_DIR=build-cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build-cuda}
if [[ -z "${TORCH_PREFIX:-}" ]]; then
  TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  ABI=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
  if [[ "$ABI" != 1 ]]; then
    echo "[build_cuda] this PyTorch was built with the old libstdc++ ABI; the system's yaml-cpp/fmt use the new one." >&2
    echo "[build_cuda] use a cxx11-ABI libtorch (TORCH_PREFIX=...) or a PyTorch >= 2.7 wheel." >&2
    exit 1
  fi
fi
echo "[build_cuda] LibTorch from $TORCH_PREFIX"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" ${SCULPT_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$(nproc)"
# The PyTorch wheel's libraries are found through the rpath CMake records.
echo "[build_cuda] built $BUILD_DIR/sculpt; test with: (cd $BUILD_DIR && ctest --output-on-failure)"
