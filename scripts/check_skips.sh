#!/usr/bin/env bash
# Fails when ctest's log shows a skipped test that may not skip: with the shared data folder
# present every test must run, except `gpu` tests on a machine with no GPU.
# Usage: scripts/check_skips.sh CTEST_LOG BUILD_DIR
set -euo pipefail
log=$1 build=$2
cd "$(dirname "$0")/.."
shared=${SCULPT_SHARED:-$(pwd)/../shared}
mapfile -t skipped < <(sed -n 's/^.*Test *#[0-9]*: \([^ ]*\) .*\*\*\*Skipped.*$/\1/p' "$log")
((${#skipped[@]})) || exit 0
if [[ ! -d "$shared" ]]; then
  echo "[test] ${#skipped[@]} test(s) skipped: no shared folder at $shared (set SCULPT_SHARED)" >&2
  exit 0
fi
has_gpu=0
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU' && has_gpu=1
mapfile -t gpu_tests < <(cd "$build" && ctest -N -L '^gpu$' | sed -n 's/^ *Test *#[0-9]*: \(.*\)$/\1/p')
bad=()
for t in "${skipped[@]}"; do
  is_gpu=0
  for g in "${gpu_tests[@]}"; do [[ "$g" == "$t" ]] && is_gpu=1 && break; done
  if ((is_gpu && !has_gpu)); then continue; fi
  bad+=("$t")
done
if ((${#bad[@]})); then
  echo "[test] FAILED: ${#bad[@]} test(s) skipped although $shared is present:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "[test] skipped only gpu tests (${#skipped[@]}): no GPU on this machine"
