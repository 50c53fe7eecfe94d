#include "sculpt/core/machine.h"

#include <ATen/Parallel.h>
#include <ATen/cuda/CUDAContext.h>
#include <fmt/format.h>

#include <fstream>
#include <set>
#include <sstream>

namespace sculpt {

CpuInfo cpu_info() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  CpuInfo info;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, line.find_last_not_of(" \t", colon - 1) + 1), value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (key == "model name") info.model = value;
    if (key == "flags" && flags.empty()) {
      std::istringstream words(value);
      for (std::string w; words >> w;) flags.insert(w);
    }
  }
  for (const char* f : {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"})
    info.units += fmt::format("{}{}={}", info.units.empty() ? "" : " ", f, flags.count(f) ? "yes" : "no");
  return info;
}

std::string describe_device(const c10::Device& device) {
  if (device.is_cuda()) {
    const auto index = device.has_index() ? device.index() : c10::DeviceIndex{0};
    return fmt::format("cuda: {}", at::cuda::getDeviceProperties(index)->name);
  }
  const int threads = at::get_num_threads();
  return fmt::format("cpu: {}, {} thread{}", cpu_info().model, threads, threads == 1 ? "" : "s");
}

}  // namespace sculpt
