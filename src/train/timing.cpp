#include "sculpt/train/timing.h"

#include <algorithm>
#include <chrono>

namespace sculpt::train {

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

std::vector<double> median_forward_seconds(std::vector<models::AnyBert>& nets, const models::Batch& batch, int steps,
                                           int warmup, const torch::Device& device) {
  using Clock = std::chrono::steady_clock;
  torch::NoGradGuard no_grad;
  for (auto& n : nets)
    for (int w = 0; w < warmup; ++w) n.forward(batch, {});
  std::vector<std::vector<double>> times(nets.size());
  for (int k = 0; k < std::max(1, steps); ++k)
    for (size_t i = 0; i < nets.size(); ++i) {
      sync(device);
      auto t0 = Clock::now();
      nets[i].forward(batch, {});
      sync(device);
      times[i].push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  std::vector<double> out;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    out.push_back(t[t.size() / 2]);
  }
  return out;
}

}  // namespace sculpt::train
