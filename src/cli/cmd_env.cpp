// sculpt env: what this build and machine are, for bug reports: LibTorch and CUDA versions
// (compiled and found at run time), cuDNN, NCCL, the CPU's vector units, threads and GPUs.
#include <ATen/Version.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/torch.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "commands.h"
#include "sculpt/build_paths.h"
#include "sculpt/core/dist_env.h"
#include "sculpt/core/env.h"
#include "sculpt/core/machine.h"
#include "sculpt/train/distributed.h"

namespace sculpt::cli {
namespace {

std::string version_number(long v) {  // CUDA 13000 -> 13.0, cuDNN 91900 -> 9.19.0
  if (v >= 10000 && v < 100000 && v % 10 == 0 && v < 20000) return fmt::format("{}.{}", v / 1000, (v % 1000) / 10);
  if (v >= 10000) return fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
  return std::to_string(v);
}

}  // namespace

int cmd_env(int, char**) {
  const auto& cuda = at::detail::getCUDAHooks();
  bool cuda_compiled = false;
  long cudart = 0, cudnn = 0;
  try {
    cudart = cuda.versionCUDART();
    cuda_compiled = true;
    if (cuda.compiledWithCuDNN()) cudnn = cuda.versionCuDNN();
  } catch (const c10::Error&) {
  }
  const auto cpu = cpu_info();
  const DistEnv dist = read_dist_env();
  std::printf("sculpt        %s\n", SCULPT_VERSION);
  std::printf("libtorch      %s\n", TORCH_VERSION);
  std::printf("cuda compiled %s\n", cuda_compiled ? fmt::format("yes, CUDA {}", version_number(cudart)).c_str() : "no");
  std::printf("cudnn         %s\n", cudnn ? version_number(cudnn).c_str() : "no");
  std::string nccl = "no";
  if (cuda_compiled) {
    try {
      nccl = train::nccl_version();
    } catch (const std::exception& e) {
      nccl = std::string("unavailable (") + e.what() + ")";
    }
  }
  std::printf("nccl          %s\n", nccl.c_str());
  std::printf("cpu           %s\n", cpu.model.c_str());
  std::printf("cpu units     %s\n", cpu.units.c_str());
  std::printf("aten cpu      %s (the vector kernels ATen dispatches to)\n", at::get_cpu_capability().c_str());
  std::printf("threads       %d intra-op, %d inter-op, %u cores\n", at::get_num_threads(), at::get_num_interop_threads(),
              std::thread::hardware_concurrency());
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("openmp wait   GOMP_SPINCOUNT=%s OMP_WAIT_POLICY=%s\n", spin ? spin : "(unset)", policy ? policy : "(unset)");
  const char* malloc_env = malloc_settings_from_env();
  std::printf("malloc        %s\n", malloc_env ? fmt::format("glibc's settings ({} is set)", malloc_env).c_str()
                                              : "freed blocks up to 32 MiB and 1 GiB of free heap kept (sculpt's default)");
  std::printf("launcher      %s (rank %d of %d, local rank %d of %d)\n", dist.launcher.c_str(), dist.rank, dist.world_size,
              dist.local_rank, dist.local_world_size);
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  std::printf("gpus          %d\n", gpus);
  for (int i = 0; i < gpus; ++i) {
    const cudaDeviceProp* p = at::cuda::getDeviceProperties(static_cast<c10::DeviceIndex>(i));
    std::printf("  cuda:%d      %s, %.1f GiB, compute capability %d.%d, %d SMs\n", i, p->name,
                static_cast<double>(p->totalGlobalMem) / (1024.0 * 1024 * 1024), p->major, p->minor, p->multiProcessorCount);
  }
  return 0;
}

}  // namespace sculpt::cli
