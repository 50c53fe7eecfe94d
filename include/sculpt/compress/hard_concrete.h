// Hard-concrete masks (Louizos et al. 2018) exactly as CoFi and SP3 code them: l = -0.1,
// r = 1.1, beta = 2/3; training samples z = clamp(sigmoid((log u - log(1-u) + log_alpha)/beta)
// (r-l) + l, 0, 1); keep probability L = P(z > 0) = sigmoid(log_alpha - beta ln(-l/r));
// the deterministic (eval) mask of each row keeps the top n - round(n - sum L) entries of
// sigmoid(0.8 log_alpha / beta) with their soft values and zeroes the rest.
#pragma once
#include <torch/nn/module.h>

#include <string>
#include <vector>

namespace sculpt::compress {

struct HardConcreteOptions {
  double limit_l = -0.1, limit_r = 1.1, beta = 2.0 / 3.0, eps = 1e-6;
  double init_mean = 10.0, init_std = 0.01;  // log_alpha ~ N(mean, std): starts fully kept
  int64_t repeat = 1;  // tile each row this many times (SP3 head-dim masks shared across heads)
};

class HardConcreteImpl : public torch::nn::Module {
 public:
  // rows x n independent mask entries (a row is what `deterministic` ranks within).
  HardConcreteImpl(int64_t rows, int64_t n, HardConcreteOptions options = {});

  torch::Tensor keep_prob() const;       // [rows, n] = P(z > 0), clamped to [eps, 1 - eps]
  torch::Tensor sample();                // [rows, n * repeat], training noise
  torch::Tensor deterministic() const;   // [rows, n * repeat], no gradient
  // Training and active: a sample; otherwise the deterministic mask (no gradient flows).
  torch::Tensor forward();
  // Expected number of kept entries (differentiable), before tiling.
  torch::Tensor expected_kept() const { return keep_prob().sum(); }

  bool active = true;  // inactive groups count in the sparsity but get no gradient
  torch::Tensor log_alpha;
  HardConcreteOptions options;

 private:
  torch::Tensor tile(const torch::Tensor& z) const;
};
TORCH_MODULE(HardConcrete);

}  // namespace sculpt::compress
