#!/usr/bin/env bash
# Configures build/ (or SCULPT_BUILD_DIR) against the LibTorch of the venv's torch wheel.
# Torch_DIR is named explicitly so that no other LibTorch on the system is ever picked up.
# Reconfigures only when there is no cache yet or it points at another torch.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SCULPT_VENV:-.venv}
BUILD_DIR=${SCULPT_BUILD_DIR:-build}
TORCH_DIR=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')/Torch
if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] && grep -qx "Torch_DIR:PATH=$TORCH_DIR" "$BUILD_DIR/CMakeCache.txt"; then
  exit 0
fi
# A CUDA toolkit is needed by the wheel's CMake config (its cuda.cmake runs nvcc).
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH=/usr/local/cuda/bin:$PATH; fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTorch_DIR="$TORCH_DIR" ${SCULPT_CMAKE_ARGS:-}
