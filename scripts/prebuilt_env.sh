# Sourced by the scripts that run binaries built here on a GPU machine (gpu_check.sh --prebuilt,
# gpu_sweep.sh run). use_prebuilt DIR PYTHON: refuses (return 2) when DIR was built against
# another torch than PYTHON's, else points the loader at DIR/lib and that torch's libraries.
use_prebuilt() {
  local dir=$1 py=$2 built here site libs d
  built=$(cat "$dir/torch_version.txt" 2>/dev/null)
  here=$("$py" -c 'import torch; print(torch.__version__)') || return 2
  if [[ $built != "$here" ]]; then
    echo "[prebuilt] $dir was built against torch ${built:-?}, this machine has $here: build here instead" >&2
    return 2
  fi
  # The binaries' RUNPATH names the build machine's venv; here torch and its CUDA libraries
  # come from the local wheel's folders instead.
  site=$("$py" -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')
  libs=$dir/lib:$site/torch/lib
  for d in "$site"/nvidia/*/lib; do [[ -d $d ]] && libs=$libs:$d; done
  export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}
