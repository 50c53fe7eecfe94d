// The sparsity constraint as a Lagrangian: lambda1 (s - t) + lambda2 (s - t)^2 with both
// lambdas trained by gradient ASCENT (their gradients are negated before the optimizer step,
// since LibTorch's AdamW refuses a negative learning rate), and the target ramp.
#pragma once
#include <torch/nn/module.h>

namespace sculpt::compress {

class LagrangianImpl : public torch::nn::Module {
 public:
  explicit LagrangianImpl(bool absolute = false);
  // `absolute` uses |s - t| in the linear term (more stable on small data, CoFi issue #55).
  torch::Tensor forward(const torch::Tensor& expected, double target) const;
  // Turn the lambdas' descent gradients into ascent ones; call after backward, before step.
  void flip_gradients();

  torch::Tensor lambda1, lambda2;
  bool absolute;
};
TORCH_MODULE(Lagrangian);

// Linear ramp from `start` to `target` over `warmup` updates, beginning at update `begin`.
double target_at(int64_t step, int64_t begin, int64_t warmup, double start, double target);

}  // namespace sculpt::compress
