#!/usr/bin/env bash
# Prepares what a GPU machine without network or our Debian -dev packages needs to build
# sculpt (scripts/gpu_check.sh): the Debian packages of our non-torch dependencies, unpacked
# with dpkg -x into one prefix. LibTorch comes from that machine's own PyTorch.
# Usage: scripts/gpu_bundle.sh [DIR=build-bundle]      (about 15 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-build-bundle}
PKGS=(libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev libsentencepiece-dev libsentencepiece0 libprotobuf-lite32
      libutf8proc-dev libutf8proc2 libgtest-dev libgloo-dev)
rm -rf "$DIR"
mkdir -p "$DIR/debs" "$DIR/prefix"
(cd "$DIR/debs" && apt-get download "${PKGS[@]}" >/dev/null 2>&1) || {
  apt-get update -qq && (cd "$DIR/debs" && apt-get download "${PKGS[@]}" >/dev/null)
}
for deb in "$DIR"/debs/*.deb; do dpkg -x "$deb" "$DIR/prefix"; done
rm -rf "$DIR/debs" "$DIR/prefix/usr/share/doc" "$DIR/prefix/usr/share/man"
tar -C "$DIR" -cf "$DIR/prefix.tar" prefix   # one file: links survive any copy
du -sh "$DIR" | awk '{print "[bundle] " $2 ": " $1}'
