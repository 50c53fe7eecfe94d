# LibTorch comes from the torch wheel in the project's venv, named through Torch_DIR
# (scripts/configure.sh) so that no other LibTorch on the system is ever found; the other
# dependencies from Debian packages.
if(NOT Torch_DIR)
  message(FATAL_ERROR "Torch_DIR is not set: configure through scripts/configure.sh, or pass "
                      "-DTorch_DIR=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')/Torch")
endif()
# Only our own .cu files would use it (there are none yet); set so the wheel's script does not probe.
if(NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "9.0")
endif()
find_package(Torch REQUIRED CONFIG)
message(STATUS "LibTorch ${Torch_VERSION} from ${Torch_DIR}")
# TORCH_CXX_FLAGS carries the libstdc++ ABI choice; everything must be built with it.
set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} ${TORCH_CXX_FLAGS}")
# The wheel's include folder carries its own fmt headers, and it comes before /usr/include in
# every compile: use those headers alone, header-only, instead of linking Debian's libfmt.
get_filename_component(SCULPT_TORCH_ROOT "${Torch_DIR}/../../.." ABSOLUTE)
if(NOT EXISTS "${SCULPT_TORCH_ROOT}/include/fmt/format.h")
  message(FATAL_ERROR "no fmt headers in ${SCULPT_TORCH_ROOT}/include")
endif()
# The site-packages folder: the wheel's CUDA libraries (nvidia/*/lib) must win over the
# toolkit's copies with the same sonames, so they go first in the run path.
get_filename_component(SCULPT_SITE_PACKAGES "${SCULPT_TORCH_ROOT}/.." ABSOLUTE)
file(GLOB SCULPT_NVIDIA_LIB_DIRS LIST_DIRECTORIES true "${SCULPT_SITE_PACKAGES}/nvidia/*/lib")
set(CMAKE_BUILD_RPATH "${SCULPT_TORCH_ROOT}/lib;${SCULPT_NVIDIA_LIB_DIRS}")
set(SCULPT_NCCL_INCLUDE "${SCULPT_SITE_PACKAGES}/nvidia/nccl/include")
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
# Plain header + library look-ups (no pkg-config), so a bundle unpacked into a prefix works
# through CMAKE_PREFIX_PATH alone (scripts/gpu_bundle.sh, scripts/gpu_check.sh).
function(sculpt_find_library var header lib)
  find_path(${var}_INCLUDE_DIRS ${header} REQUIRED)
  find_library(${var}_LIBRARIES ${lib} REQUIRED)
  set(${var}_INCLUDE_DIRS ${${var}_INCLUDE_DIRS} PARENT_SCOPE)
  set(${var}_LIBRARIES ${${var}_LIBRARIES} PARENT_SCOPE)
  message(STATUS "${lib}: ${${var}_LIBRARIES}")
endfunction()
sculpt_find_library(UTF8PROC utf8proc.h utf8proc)
sculpt_find_library(SENTENCEPIECE sentencepiece_processor.h sentencepiece)
# Gloo's headers only (ProcessGroupGloo.hpp includes them; the library is inside libtorch_cpu).
find_path(SCULPT_GLOO_INCLUDE gloo/algorithm.h REQUIRED)
find_package(Threads REQUIRED)
