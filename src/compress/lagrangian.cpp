#include "sculpt/compress/lagrangian.h"

#include <torch/torch.h>

#include <algorithm>

namespace sculpt::compress {

LagrangianImpl::LagrangianImpl(bool abs_, double lead_) : absolute(abs_), lead(lead_) {
  lambda1 = register_parameter("lambda1", torch::zeros({}));
  lambda2 = register_parameter("lambda2", torch::zeros({}));
  velocity = register_parameter("velocity", torch::zeros({}), /*requires_grad=*/false);
}

torch::Tensor LagrangianImpl::forward(const torch::Tensor& expected, double target) const {
  auto gap = expected - target;
  if (lead > 0) gap = gap + lead * velocity;
  return lambda1 * (absolute ? gap.abs() : gap) + lambda2 * gap * gap;
}

void LagrangianImpl::flip_gradients() {
  torch::NoGradGuard no_grad;
  for (auto* t : {&lambda1, &lambda2})
    if (t->grad().defined()) t->mutable_grad().neg_();
}

void LagrangianImpl::after_step(const torch::Tensor& before, const torch::Tensor& after, double target) {
  if (lead <= 0) return;
  torch::NoGradGuard no_grad;
  velocity.copy_(after.detach() - before.detach());
  project(after.detach() + lead * velocity, target);
}

void LagrangianImpl::project(const torch::Tensor& expected, double target) {
  if (absolute) return;
  torch::NoGradGuard no_grad;
  auto gap = expected.detach().to(lambda1.dtype()) - target;
  lambda1.mul_((lambda1 * gap >= 0).to(lambda1.dtype()));
}

double target_at(int64_t step, int64_t begin, int64_t warmup, double start, double target) {
  if (step <= begin) return start;
  if (warmup <= 0 || step - begin >= warmup) return target;
  return start + (target - start) * static_cast<double>(step - begin) / static_cast<double>(warmup);
}

}  // namespace sculpt::compress
