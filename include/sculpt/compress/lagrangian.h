// The sparsity constraint as a Lagrangian: lambda1 (s - t) + lambda2 (s - t)^2 with both
// lambdas trained by gradient ASCENT (their gradients are negated before the optimizer step,
// since LibTorch's AdamW refuses a negative learning rate), and the target ramp.
//
// lead = 0 is SP3's and CoFi's code: unbounded ascent. While the masks sit in hard concrete's
// flat region (log alpha from 10) the size lags the ramp, lambda1 winds up, and once the masks
// move, Adam's momentum carries them far past the target (tiny CoFi: to 0.998 pruned against
// 0.5; MiniLM SP3: 11% remaining against 30%). lead > 0 (anti-windup, the default) is the same
// ascent looking `lead` updates ahead, s + lead v with v the size's change in the last step;
// sculpt uses half of Adam's momentum horizon, lead = 1 / (2 (1 - beta1)) = 5:
//  * the loss sees the size ahead, so the quadratic term brakes before the target, not after;
//  * after each step lambda1 := 0 wherever it would push that predicted size past the target.
// Measured on the tiny test model (target 0.5): a lead of 0 in the projection leaves SP3 to
// undershoot to 0.36, the full horizon (10) leaves the quickstart's CoFi stalled below its
// target (spurious resets of lambda1 on noisy v), 10 in the loss approaches too slowly.
// v is state of the run: a parameter without gradient, saved in checkpoints.
#pragma once
#include <torch/nn/module.h>

namespace sculpt::compress {

class LagrangianImpl : public torch::nn::Module {
 public:
  explicit LagrangianImpl(bool absolute = false, double lead = 0);
  // `absolute` uses |s - t| in the linear term (more stable on small data, CoFi issue #55).
  torch::Tensor forward(const torch::Tensor& expected, double target) const;
  // Turn the lambdas' descent gradients into ascent ones; call after backward, before step.
  void flip_gradients();
  // After the optimizer step: the size before and after it (anti-windup; a no-op at lead 0).
  void after_step(const torch::Tensor& before, const torch::Tensor& after, double target);
  // lambda1 := 0 where lambda1 (s - t) < 0, i.e. where the linear term pushes the size further
  // past the target. A no-op with `absolute` (lambda1 |s - t| always pulls towards the target).
  // On the device, no host sync.
  void project(const torch::Tensor& expected, double target);
  std::vector<torch::Tensor> lambdas() const { return {lambda1, lambda2}; }

  torch::Tensor lambda1, lambda2;
  torch::Tensor velocity;  // the size's change in the last step (no gradient)
  bool absolute;
  double lead;
};
TORCH_MODULE(Lagrangian);

// Linear ramp from `start` to `target` over `warmup` updates, beginning at update `begin`.
double target_at(int64_t step, int64_t begin, int64_t warmup, double start, double target);

}  // namespace sculpt::compress
