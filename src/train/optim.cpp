#include "sculpt/train/optim.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <map>

namespace sculpt::train {

bool no_decay(const std::string& name) {
  return name.find("norm.") != std::string::npos || name.find("Norm.") != std::string::npos ||
         (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0);
}

std::vector<std::pair<std::string, torch::Tensor>> hf_named_parameters(torch::nn::Module& module, const models::KeyMap& keys) {
  std::map<std::string, std::string> hf_of;
  for (const auto& k : keys)
    if (!k.alias) hf_of.emplace(k.internal, k.hf);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : module.named_parameters()) {
    auto it = hf_of.find(p.key());
    out.emplace_back(it == hf_of.end() ? p.key() : it->second, p.value());
  }
  return out;
}

std::unique_ptr<FusedAdamW> make_adamw(torch::nn::Module& module, const AdamWSettings& s) {
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
  out.optimizer = std::make_unique<FusedAdamW>(groups, torch::optim::AdamWOptions(s.lr));
  return out;
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    TORCH_CHECK(!o.amsgrad(), "sculpt's AdamW has no amsgrad");
    // The fused kernel takes one device and dtype per call.
    std::map<std::pair<std::string, int>, std::array<std::vector<torch::Tensor>, 5>> lists;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& st = static_cast<torch::optim::AdamWParamState&>(*slot);
      // The kernel counts steps in a float tensor beside the parameter; the serialised state
      // keeps LibTorch's integer count, so checkpoints stay torch::optim::AdamW's.
      auto& steps = steps_[p.unsafeGetTensorImpl()];
      if (!steps.defined() || steps.device() != p.device())
        steps = torch::full({}, static_cast<double>(st.step()), torch::TensorOptions().dtype(torch::kFloat).device(p.device()));
      st.step(st.step() + 1);
      auto& l = lists[{p.device().str(), static_cast<int>(p.scalar_type())}];
      l[0].push_back(p), l[1].push_back(p.grad()), l[2].push_back(st.exp_avg()), l[3].push_back(st.exp_avg_sq()), l[4].push_back(steps);
    }
    for (auto& [key, l] : lists) {
      std::optional<torch::Tensor> found_inf;
      if (found_inf_.defined()) found_inf = found_inf_.to(l[0][0].device(), torch::kFloat).reshape({});
      // The op reads the step counts but does not advance them (torch.optim's wrapper does).
      torch::_foreach_add_(l[4], 1);
      at::_fused_adamw_(l[0], l[1], l[2], l[3], {}, l[4], o.lr(), std::get<0>(o.betas()), std::get<1>(o.betas()), o.weight_decay(),
                        o.eps(), /*amsgrad=*/false, /*maximize=*/false, std::nullopt, found_inf);
      if (found_inf) torch::_foreach_add_(l[4], *found_inf, -1);  // a skipped step does not count (as torch.optim)
    }
  }
  found_inf_ = torch::Tensor();
  return loss;
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

void clear_grads(torch::optim::Optimizer& optimizer) { optimizer.zero_grad(/*set_to_none=*/true); }

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({});
  // As torch.nn.utils.clip_grad_norm_ (foreach): one norm kernel over all, one scaling kernel.
  auto total = torch::stack(torch::_foreach_norm(grads, 2)).norm();
  if (max_norm > 0) torch::_foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_max(1.0));  // scale only down
  return total;
}

}  // namespace sculpt::train
