#!/usr/bin/env bash
# Part of a sweep on a GPU machine that has PyTorch but no network and none of our packages
# (the device tool: one call, at most 64 MiB carried, at most 8 files back). The binaries are
# built here against the same torch wheel (scripts/gpu_carry.sh --cli-only); the cells' inputs
# come from `sculpt sweep --inputs` (the done cells they start from, the model directories, the
# data), the model weights stored as fp16 to fit (the runs compute in fp32; the MRPC teacher
# stored so scores exactly what the fp32 one does, results/minilm_glue/cofi_schedules/).
#
#   here:  scripts/gpu_sweep.sh pack SWEEP.yaml [--stage S] [--tasks T] [--variants V]   # -> gpu-sweep/
#   there: OUT=... scripts/gpu_sweep.sh run [LIMIT_S]      # carry: ["gpu-sweep"]; all cells at once
#   here:  scripts/gpu_sweep.sh unpack DIR/gpu_sweep.tgz   # the records and the runs' small files
#
# `run` starts every cell of the selection at once (up to 16, one GPU shared), stops them
# (SIGTERM: they checkpoint, and the checkpoints stay there) at LIMIT_S (default 480: with 30 s
# of grace and the archive it fits a 600 s device call), and returns the finished cells'
# records and their run directories without weights. `unpack`
# never replaces a record or run directory that exists here; it says which it kept. Run the
# cells that others start from (the teachers) here first: packed, they would run there from
# fp16-stored weights (`pack` lists each `model` it converts).
set -uo pipefail
cd "$(dirname "$0")/.."
DIR=${SCULPT_GPU_SWEEP_DIR:-gpu-sweep}
PY=${SCULPT_PYTHON:-${SCULPT_VENV:-.venv}/bin/python}
say() { echo "[gpu-sweep] $*"; }
die() { say "$*" >&2; exit 2; }

pack() {
  local sweep=$1; shift
  [[ -f $sweep ]] || die "no sweep file $sweep"
  SCULPT_SHARED=$(cd "${SCULPT_SHARED:-../shared}" && pwd) || die "no ${SCULPT_SHARED:-../shared}"
  SCULPT_DATA=$(cd "${SCULPT_DATA:-$SCULPT_SHARED/data}" && pwd) || die "no ${SCULPT_DATA:-$SCULPT_SHARED/data}"
  export SCULPT_SHARED SCULPT_DATA
  local inputs
  local S=${SCULPT_BUILD_DIR:-build}/sculpt
  inputs=$("$S" sweep "$sweep" --inputs "$@") || die "sculpt sweep --inputs failed"
  [[ -n $inputs ]] || die "$sweep $*: nothing to run"
  bash scripts/gpu_carry.sh --cli-only "$DIR" > /dev/null || die "scripts/gpu_carry.sh failed"
  printf '%s\n' "$sweep" "$@" > "$DIR/selection"
  local kind path dst
  while read -r kind path; do
    # Where it lands there: data and shared files under DIR, the rest at its path in the tree.
    case $path in
      "$SCULPT_DATA"/*) dst=$DIR/data/${path#"$SCULPT_DATA"/} ;;
      "$SCULPT_SHARED"/*) dst=$DIR/shared/${path#"$SCULPT_SHARED"/} ;;
      /*) die "$kind $path: an absolute path outside SCULPT_DATA and SCULPT_SHARED does not travel" ;;
      *) dst=$DIR/tree/$path ;;
    esac
    mkdir -p "$dst"
    case $kind in
      cell)  # what marks it done and what the table reads; its models travel as `model` lines
        find "$path" -maxdepth 1 -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.yaml' \) -exec cp {} "$dst/" \; ;;
      model)
        find "$path" -maxdepth 1 -type f ! -name '*.safetensors' -exec cp {} "$dst/" \;
        for w in "$path"/*.safetensors; do
          [[ -f $w ]] || continue
          "$PY" -c "import sys; from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in t.items()}, sys.argv[2], metadata={'format': 'pt'})" \
            "$w" "$dst/$(basename "$w")" || die "cannot convert $w"
        done ;;
      data)
        if [[ -d $path ]]; then cp -r "$path"/. "$dst/"; else rmdir "$dst" && cp "$path" "$dst"; fi ;;
    esac
    say "$kind $path"
  done <<< "$inputs"
  local mib=$(( $(du -sk "$DIR" | cut -f1) / 1024 ))
  say "$DIR: $mib MiB ($("$S" sweep "$sweep" --status "$@" | tail -1 | sed 's/.*; //'))"
  ((mib < 64)) || { du -sh "$DIR"/* "$DIR"/tree/* >&2; die "$DIR is over the 64 MiB the device tool carries: select fewer cells (--tasks, --variants)"; }
}

run() {
  local limit=${1:-480}
  [[ -n ${OUT:-} ]] || die "set OUT to the folder whose files come back"
  mkdir -p "$OUT"
  local py=${PYTHON:-python3}
  source scripts/prebuilt_env.sh
  use_prebuilt "$DIR" "$py" || exit 2
  export SCULPT_DATA=$PWD/$DIR/data SCULPT_SHARED=$PWD/$DIR/shared
  cp -r "$DIR/tree/." .
  mapfile -t sel < "$DIR/selection"
  local S=$DIR/bin/sculpt n jobs
  n=$("$S" sweep "${sel[@]}" --status | tail -1 | sed -E 's/.* ([0-9]+) to run$/\1/')
  [[ $n =~ ^[0-9]+$ && $n -gt 0 ]] || die "nothing to run: $("$S" sweep "${sel[@]}" --status | tail -1)"
  jobs=$((n < 16 ? n : 16))
  touch "$OUT/.start"
  say "$n cells, $jobs at once on $("$py" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")'), stopped at $limit s"
  timeout -s TERM -k 30 "$limit" "$S" sweep "${sel[@]}" --jobs "$jobs" --jobs-per-gpu "$jobs" > "$OUT/sweep.log" 2>&1
  say "sweep exit $? after $SECONDS s: $(grep -c '^\[sweep\] done ' "$OUT/sweep.log") cells done"
  # Back: what the sweep wrote outside runs/ (the records) and the run directories' small files.
  # Model directories (best/, final/, ...) stay: without weights the table would take them for
  # broken models; it uses the records' figures instead.
  local out_rel; out_rel=$(realpath -m --relative-to=. "$OUT")
  (find . \( -path ./runs -o -path "./$DIR" -o -path ./.git -o -path "./$out_rel" \) -prune -o -type f -newer "$OUT/.start" -print
   find runs -type f -newer "$OUT/.start" \( -name '*.json' -o -name '*.jsonl' -o -name '*.yaml' -o -name '*.log' -o -name '*.csv' \) \
     ! -path '*/checkpoints/*' | grep -v -F -f <(find runs -name '*.safetensors' -printf '%h/\n' | sort -u; echo '/checkpoints/')) |
    sort > "$OUT/files.txt"
  tar czf "$OUT/gpu_sweep.tgz" -T "$OUT/files.txt"
  rm -f "$OUT/.start"
  say "$(wc -l < "$OUT/files.txt") files in $OUT/gpu_sweep.tgz"
}

unpack() {
  local tgz=$1 tmp kept=0 added=0 d f
  [[ -f $tgz ]] || die "no archive $tgz"
  tmp=$(mktemp -d)
  tar xzf "$tgz" -C "$tmp" || die "$tgz: not a readable archive"
  # Run directories (those with a sweep_cell.json) and records; one that exists here stays as it is.
  while read -r d; do
    if [[ -e $d ]]; then ((++kept)); say "kept $d (it exists here)"; else mkdir -p "$(dirname "$d")" && cp -r "$tmp/$d" "$d" && ((++added)); fi
  done < <(cd "$tmp" && find runs -name sweep_cell.json -printf '%h\n' 2>/dev/null | sort)
  while read -r f; do
    if [[ -e $f ]]; then ((++kept)); say "kept $f (it exists here)"; else mkdir -p "$(dirname "$f")" && cp "$tmp/$f" "$f" && ((++added)); fi
  done < <(cd "$tmp" && find . -path ./runs -prune -o -type f -print | sed 's|^\./||' | sort)
  rm -rf "$tmp"
  say "$added run directories and records added, $kept kept; then: build/sculpt table <sweep dir> --out results/<name>"
}

case ${1:-} in
  pack) shift; [[ $# -ge 1 ]] || die "usage: scripts/gpu_sweep.sh pack SWEEP.yaml [--stage S] [--tasks T] [--variants V]"; pack "$@" ;;
  run) shift; run "$@" ;;
  unpack) shift; [[ $# -eq 1 ]] || die "usage: scripts/gpu_sweep.sh unpack gpu_sweep.tgz"; unpack "$1" ;;
  *) die "usage: scripts/gpu_sweep.sh pack SWEEP.yaml [selection] | run [LIMIT_S] | unpack gpu_sweep.tgz" ;;
esac
