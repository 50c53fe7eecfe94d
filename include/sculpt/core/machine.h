// What a run ran on: written into results.json, so that a table whose cells came from several
// machines (a CPU box, a lent GPU) says which is which; `sculpt env` prints the same facts.
#pragma once
#include <c10/core/Device.h>

#include <string>

namespace sculpt {

struct CpuInfo {
  std::string model = "unknown";  // /proc/cpuinfo's model name
  std::string units;              // the vector-unit flags that decide our speed, "avx2=yes fma=yes ..."
};
CpuInfo cpu_info();

// "cuda: NVIDIA H200" or "cpu: Intel(R) Xeon(R) Processor @ 2.80GHz, 2 threads".
std::string describe_device(const c10::Device& device);

}  // namespace sculpt
