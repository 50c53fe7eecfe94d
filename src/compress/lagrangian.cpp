#include "sculpt/compress/lagrangian.h"

#include <torch/torch.h>

#include <algorithm>

namespace sculpt::compress {

LagrangianImpl::LagrangianImpl(bool abs_) : absolute(abs_) {
  lambda1 = register_parameter("lambda1", torch::zeros({}));
  lambda2 = register_parameter("lambda2", torch::zeros({}));
}

torch::Tensor LagrangianImpl::forward(const torch::Tensor& expected, double target) const {
  auto gap = expected - target;
  return lambda1 * (absolute ? gap.abs() : gap) + lambda2 * gap * gap;
}

void LagrangianImpl::flip_gradients() {
  torch::NoGradGuard no_grad;
  for (auto* t : {&lambda1, &lambda2})
    if (t->grad().defined()) t->mutable_grad().neg_();
}

double target_at(int64_t step, int64_t begin, int64_t warmup, double start, double target) {
  if (step <= begin) return start;
  if (warmup <= 0 || step - begin >= warmup) return target;
  return start + (target - start) * static_cast<double>(step - begin) / static_cast<double>(warmup);
}

}  // namespace sculpt::compress
