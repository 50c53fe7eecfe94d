#include "sculpt/train/optim.h"

#include <torch/torch.h>

#include <torch/version.h>

#include <algorithm>

namespace sculpt::train {

bool no_decay(const std::string& name) {
  return name.find("norm.") != std::string::npos || (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0);
}

std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& module, const AdamWSettings& s) {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& item : module.named_parameters()) named.emplace_back(item.key(), item.value());
  return make_optimizer(named, s).optimizer;
}

OptimizerSetup make_optimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named, const AdamWSettings& s,
                              const std::vector<ExtraGroup>& extra) {
  std::vector<torch::Tensor> decay, plain;
  for (const auto& [name, p] : named)
    if (p.requires_grad()) (no_decay(name) ? plain : decay).push_back(p);
  auto options = [&](double lr, double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr).betas({s.beta1, s.beta2}).eps(s.eps).weight_decay(wd));
  };
  OptimizerSetup out;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(s.lr, s.weight_decay));
  groups.emplace_back(plain, options(s.lr, 0.0));
  out.base_lr = {s.lr, s.lr};
  out.scheduled = {true, true};
  for (const auto& g : extra) {
    groups.emplace_back(g.params, options(g.lr, 0.0));
    out.base_lr.push_back(g.lr);
    out.scheduled.push_back(g.scheduled);
  }
  out.optimizer = std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(s.lr));
  return out;
}

void apply_schedule(OptimizerSetup& setup, double multiplier) {
  auto& groups = setup.optimizer->param_groups();
  for (size_t i = 0; i < groups.size(); ++i)
    static_cast<torch::optim::AdamWOptions&>(groups[i].options()).lr(setup.scheduled[i] ? setup.base_lr[i] * multiplier : setup.base_lr[i]);
}

double linear_schedule(int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
}

void clear_grads(torch::optim::Optimizer& optimizer) {
#if TORCH_VERSION_MAJOR >= 2
  optimizer.zero_grad(/*set_to_none=*/true);
#else
  for (auto& group : optimizer.param_groups())
    for (auto& p : group.params())
      if (p.grad().defined()) p.mutable_grad().reset();
#endif
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm());
  if (norms.empty()) return torch::zeros({});
  auto total = torch::stack(norms).norm();
  if (max_norm > 0) {
    auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);  // as PyTorch: scale only down
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(coef);
  }
  return total;
}

}  // namespace sculpt::train
