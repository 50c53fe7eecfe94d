#include "sculpt/train/prefetch.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::train {

Prefetcher::Prefetcher(Collate collate, const torch::Device& device) : collate_(std::move(collate)), device_(device) {}

Prefetcher::~Prefetcher() {
  if (pending_.valid()) pending_.wait();  // the thread reads the task's data: finish first
}

void Prefetcher::submit(std::vector<std::vector<size_t>> micro_batches) {
  SCULPT_CHECK(!pending_.valid(), "Prefetcher::submit before the previous batches were taken");
  const bool pin = device_.is_cuda();
  pending_ = std::async(std::launch::async, [this, pin, lists = std::move(micro_batches)] {
    std::vector<models::Batch> out;
    out.reserve(lists.size());
    for (const auto& idx : lists) {
      if (idx.empty()) {
        out.emplace_back();
        continue;
      }
      auto b = collate_(idx);
      out.push_back(pin ? b.pin_memory() : std::move(b));
    }
    return out;
  });
}

std::vector<models::Batch> Prefetcher::take() {
  SCULPT_CHECK(pending_.valid(), "Prefetcher::take without a submit");
  auto batches = pending_.get();  // rethrows a collation error here, on the loop's thread
  for (auto& b : batches)
    if (b.input_ids.defined()) b = b.to(device_);
  return batches;
}

}  // namespace sculpt::train
