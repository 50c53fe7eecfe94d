// Collates the micro-batches of the next update on a background thread while the current one
// computes, so that the loop never waits for the host to build a batch. On CUDA the batches
// are pinned and their copies to the device, issued by take(), do not block the host.
#pragma once
#include <functional>
#include <future>
#include <vector>

#include "sculpt/models/outputs.h"

namespace sculpt::train {

class Prefetcher {
 public:
  using Collate = std::function<models::Batch(const std::vector<size_t>&)>;
  Prefetcher(Collate collate, const torch::Device& device);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  // Starts collating one batch per index list (an empty list gives an empty batch).
  void submit(std::vector<std::vector<size_t>> micro_batches);
  // The batches of the last submit(), on the device; waits only for unfinished collation.
  std::vector<models::Batch> take();

 private:
  Collate collate_;
  torch::Device device_;
  std::future<std::vector<models::Batch>> pending_;
};

}  // namespace sculpt::train
