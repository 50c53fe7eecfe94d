// AdamW with HF's parameter groups (no weight decay on biases and LayerNorm weights) and
// the linear warmup + linear decay schedule of get_linear_schedule_with_warmup.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sculpt::train {

struct AdamWSettings {
  double lr = 2e-5, weight_decay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// HF's rule: no weight decay on biases and normalisation weights (internal names).
bool no_decay(const std::string& name);
std::unique_ptr<torch::optim::AdamW> make_adamw(torch::nn::Module& module, const AdamWSettings& s);

// An optimizer with each parameter group's base learning rate and whether the schedule
// scales it (SP3 decays its mask and lambda rates with the model's; CoFi keeps them fixed).
struct OptimizerSetup {
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<double> base_lr;
  std::vector<bool> scheduled;
};
struct ExtraGroup {
  std::vector<torch::Tensor> params;
  double lr = 0;
  bool scheduled = true;
};
// HF's two groups (decay / no decay) over `named` trainable parameters at s.lr, then `extra`
// groups without weight decay.
OptimizerSetup make_optimizer(const std::vector<std::pair<std::string, torch::Tensor>>& named, const AdamWSettings& s,
                              const std::vector<ExtraGroup>& extra = {});
// Set every group's learning rate: base * multiplier where scheduled, base otherwise.
void apply_schedule(OptimizerSetup& setup, double multiplier);

// Multiplier of the base learning rate before update number `step` (0-based).
double linear_schedule(int64_t step, int64_t warmup, int64_t total);
// Drop every gradient (set to none), the same on LibTorch 1.13 (whose zero_grad() zeroes in
// place) and 2.x (whose zero_grad(set_to_none) takes a flag).
void clear_grads(torch::optim::Optimizer& optimizer);
// Scale gradients so their global L2 norm is at most max_norm (<= 0: no clipping) and return
// that norm as a device tensor: unlike LibTorch's clip_grad_norm_ (a double), no host sync.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace sculpt::train
