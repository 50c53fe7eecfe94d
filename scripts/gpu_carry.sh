#!/usr/bin/env bash
# Packs what a GPU machine needs to run sculpt built HERE (scripts/gpu_check.sh --prebuilt):
# a build against the same torch wheel as that machine's PyTorch skips the minutes a build
# takes there. Into DIR (default gpu-carry/, ignored by git; ~55 MB):
#   bin/     the CLI, the unit/parity/gpu test binaries and the sentencepiece shim beside them
#   lib/     the Debian runtime libraries they need that the GPU image lacks (torch's come from
#            that machine's own wheel through LD_LIBRARY_PATH)
#   shared/  the parts of ../shared the checks read: HF fixtures, the tokenizers, GLUE
#            (the unit tests and the quickstart)
# Usage: scripts/gpu_carry.sh [--cli-only] [DIR]   after building the CLI and tests in ${SCULPT_BUILD_DIR:-build}
#   --cli-only: bin/ (the CLI and the shim) and lib/ only (~8 MB; scripts/gpu_sweep.sh adds its inputs)
set -euo pipefail
cd "$(dirname "$0")/.."
CLI_ONLY=0
[[ ${1:-} == --cli-only ]] && { CLI_ONLY=1; shift; }
DIR=${1:-gpu-carry}
BUILD=${SCULPT_BUILD_DIR:-build}
SHARED=${SCULPT_SHARED:-../shared}
rm -rf "$DIR"
mkdir -p "$DIR/bin" "$DIR/lib"
FILES="sculpt libsculpt_spm.so"
((CLI_ONLY)) || FILES="$FILES tests/sculpt_unit_tests tests/sculpt_parity_tests tests/sculpt_gpu_tests"
for f in $FILES; do
  [[ -f $BUILD/$f ]] || { echo "[carry] no $BUILD/$f: build it first (cmake --build $BUILD)" >&2; exit 1; }
  cp "$BUILD/$f" "$DIR/bin/"
done
strip --strip-debug "$DIR"/bin/*
# Non-torch libraries the binaries and the shim load, found the way the loader finds them here.
for lib in $( (ldd "$DIR/bin/sculpt"; ldd "$DIR/bin/libsculpt_spm.so") |
              awk '/=> \// && $3 !~ /torch|nvidia|libc\.so|libm\.so|libstdc|libgcc|ld-linux|libdl|librt|libpthread|libutil/ {print $3}' | sort -u); do
  cp -L "$lib" "$DIR/lib/"
done
# The shim's libsentencepiece pulls its own protobuf-lite.
for lib in $(ldd "$DIR"/lib/libsentencepiece.so.* 2>/dev/null | awk '/protobuf/ {print $3}'); do cp -L "$lib" "$DIR/lib/"; done
if ((!CLI_ONLY)); then
  mkdir -p "$DIR/shared/data"
  cp -r "$SHARED/fixtures" "$DIR/shared/"
  cp -r "$SHARED/models" "$DIR/shared/"
  cp -r "$SHARED/data/glue" "$DIR/shared/data/"
fi
# The binaries need the same LibTorch there: gpu_check.sh --prebuilt compares this with its torch.
"${SCULPT_PYTHON:-${SCULPT_VENV:-.venv}/bin/python}" -c 'import torch; print(torch.__version__)' > "$DIR/torch_version.txt"
du -sh "$DIR" | awk '{print "[carry] " $2 ": " $1}'
ls "$DIR/lib"
