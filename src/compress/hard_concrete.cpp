#include "sculpt/compress/hard_concrete.h"

#include <torch/torch.h>

#include <cmath>

namespace sculpt::compress {

HardConcreteImpl::HardConcreteImpl(int64_t rows, int64_t n, HardConcreteOptions o) : options(o) {
  log_alpha = register_parameter("log_alpha", torch::empty({rows, n}).normal_(o.init_mean, o.init_std));
}

torch::Tensor HardConcreteImpl::tile(const torch::Tensor& z) const {
  return options.repeat == 1 ? z : z.repeat({1, options.repeat});
}

torch::Tensor HardConcreteImpl::keep_prob() const {
  const double shift = options.beta * std::log(-options.limit_l / options.limit_r);
  auto p = torch::sigmoid(log_alpha - shift).clamp(options.eps, 1 - options.eps);
  return active ? p : p.detach();
}

// A tiled mask (head dims shared by the heads of a layer) shares log α, not the noise: SP3
// draws a uniform per position of the tiled mask, so each head gets its own sample.
torch::Tensor HardConcreteImpl::sample() {
  auto la = tile(log_alpha);
  auto u = torch::empty_like(la).uniform_(options.eps, 1 - options.eps);
  auto s = torch::sigmoid((torch::log(u) - torch::log(1 - u) + la) / options.beta);
  return (s * (options.limit_r - options.limit_l) + options.limit_l).clamp(0.0, 1.0);
}

torch::Tensor HardConcreteImpl::deterministic() const {
  torch::NoGradGuard no_grad;
  const int64_t n = log_alpha.size(1);
  auto soft = torch::sigmoid(log_alpha * 0.8 / options.beta);
  auto expected_zeros = (static_cast<double>(n) - keep_prob().sum(1, true)).round();  // [rows, 1]
  // Rank of each entry within its row (0 = smallest); the k0 smallest are zeroed. All on the
  // device: no host sync per row.
  auto rank = soft.argsort(/*dim=*/int64_t{1}, false).argsort(int64_t{1}, false).to(soft.scalar_type());
  return tile(torch::where(rank < expected_zeros, torch::zeros_like(soft), soft));
}

torch::Tensor HardConcreteImpl::forward() { return is_training() && active ? sample() : deterministic(); }

}  // namespace sculpt::compress
