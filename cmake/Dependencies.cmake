# All dependencies come from Debian packages, or (Torch) from a CUDA LibTorch given through
# CMAKE_PREFIX_PATH, e.g. the one inside a PyTorch install (scripts/build_cuda.sh).
find_package(Torch REQUIRED)
# TORCH_CXX_FLAGS carries the libstdc++ ABI choice; everything must be built with it.
set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} ${TORCH_CXX_FLAGS}")
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(UTF8PROC REQUIRED libutf8proc)
find_package(Threads REQUIRED)
