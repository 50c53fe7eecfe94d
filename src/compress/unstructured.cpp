#include "sculpt/compress/unstructured.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "sculpt/core/error.h"

namespace sculpt::compress {

double GmpSchedule::sparsity_at(int64_t step) const {
  if (step <= begin) return initial;
  if (step >= end) return final;
  const double progress = static_cast<double>(step - begin) / static_cast<double>(end - begin);
  return final + (initial - final) * std::pow(1.0 - progress, exponent);
}

bool GmpSchedule::prunes_at(int64_t step) const {
  if (step < begin || step > end) return false;
  return step == end || (step - begin) % std::max<int64_t>(1, every) == 0;
}

double GmpSchedule::in_force_at(int64_t step) const {
  if (step < begin) return initial;
  const int64_t last = step >= end ? end : begin + (step - begin) / std::max<int64_t>(1, every) * std::max<int64_t>(1, every);
  return sparsity_at(last);
}

WeightMasks::WeightMasks(std::vector<std::pair<std::string, torch::Tensor>> weights) : weights_(std::move(weights)) {
  for (const auto& [name, w] : weights_) masks_.push_back(torch::ones_like(w).detach());
}

WeightMasks WeightMasks::from_nonzeros(std::vector<std::pair<std::string, torch::Tensor>> weights) {
  WeightMasks m(std::move(weights));
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < m.weights_.size(); ++i) m.masks_[i].copy_(m.weights_[i].second.ne(0));
  return m;
}

namespace {

// The k-th smallest of |values| (k >= 1), as kthvalue; on CUDA through a sort (kthvalue's CUDA
// kernel is far slower on tens of millions of entries).
torch::Tensor kth_magnitude(const torch::Tensor& magnitudes, int64_t k) {
  if (magnitudes.is_cuda()) return std::get<0>(magnitudes.sort()).select(0, k - 1);
  return std::get<0>(magnitudes.kthvalue(k));
}

}  // namespace

void WeightMasks::prune_to(double sparsity, bool global) {
  SCULPT_CHECK(sparsity >= 0 && sparsity < 1, "sparsity {} is not in [0, 1)", sparsity);
  torch::NoGradGuard no_grad;
  if (global) {
    std::vector<torch::Tensor> all;
    for (const auto& [name, w] : weights_) all.push_back(w.detach().abs().flatten().to(torch::kFloat));
    const auto magnitudes = torch::cat(all);
    const auto k = static_cast<int64_t>(sparsity * static_cast<double>(magnitudes.numel()));
    if (k > 0) {
      const auto threshold = kth_magnitude(magnitudes, k);
      for (size_t i = 0; i < weights_.size(); ++i) masks_[i].copy_(weights_[i].second.abs().to(torch::kFloat) > threshold);
    }
  } else {
    for (size_t i = 0; i < weights_.size(); ++i) {
      const auto magnitudes = weights_[i].second.detach().abs().flatten().to(torch::kFloat);
      const auto k = static_cast<int64_t>(sparsity * static_cast<double>(magnitudes.numel()));
      if (k > 0) masks_[i].copy_(magnitudes.view_as(masks_[i]) > kth_magnitude(magnitudes, k));
    }
  }
  apply();
}

void WeightMasks::apply() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < weights_.size(); ++i) weights_[i].second.mul_(masks_[i]);
}

void WeightMasks::mask_gradients() {
  for (size_t i = 0; i < weights_.size(); ++i) {
    torch::Tensor mask = masks_[i];  // shares storage with masks_[i]: later in-place updates show
    weights_[i].second.register_hook([mask](const torch::Tensor& grad) { return grad * mask; });
  }
}

double WeightMasks::sparsity() const {
  if (masks_.empty()) return 0;
  torch::Tensor kept = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(masks_.front().device()));
  for (const auto& m : masks_) kept += m.sum().to(torch::kDouble);
  return 1.0 - kept.item<double>() / static_cast<double>(size());
}

int64_t WeightMasks::size() const {
  int64_t n = 0;
  for (const auto& m : masks_) n += m.numel();
  return n;
}

io::TensorMap WeightMasks::state() const {
  io::TensorMap out;
  for (size_t i = 0; i < weights_.size(); ++i) out["mask." + weights_[i].first] = masks_[i].to(torch::kCPU, torch::kUInt8).contiguous();
  return out;
}

void WeightMasks::load_state(const io::TensorMap& state, const std::string& source) {
  SCULPT_CHECK(state.size() == weights_.size(), "{}: {} masks, this run prunes {} matrices", source, state.size(), weights_.size());
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < weights_.size(); ++i) {
    auto it = state.find("mask." + weights_[i].first);
    SCULPT_CHECK(it != state.end(), "{}: no mask for {}", source, weights_[i].first);
    SCULPT_CHECK(it->second.sizes() == masks_[i].sizes(), "{}: mask.{} has shape {}, the weight {}", source, weights_[i].first,
                 c10::str(it->second.sizes()), c10::str(masks_[i].sizes()));
    masks_[i].copy_(it->second);
  }
}

}  // namespace sculpt::compress
