// AdamW with HF's parameter groups (no weight decay on biases and LayerNorm weights) and
// the linear warmup + linear decay schedule of get_linear_schedule_with_warmup.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include "sculpt/models/key_map.h"

#include <memory>
#include <unordered_map>
#include <string>
#include <utility>
#include <vector>

namespace sculpt::train {

struct AdamWSettings {
  double lr = 2e-5, weight_decay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

// torch::optim::AdamW (same options, state and checkpoint format) whose step is one
// at::_fused_adamw_ call per parameter group (and device/dtype) instead of a chain of small
// kernels per parameter. With skip_step_if(flag) set, the update is skipped on the device
// where flag != 0 (a non-finite gradient), without the host reading it.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
  void load(torch::serialize::InputArchive& archive) override {
    steps_.clear();  // recreated from the loaded integer counts
    torch::optim::AdamW::load(archive);
  }
  // A float tensor on the parameters' device, read by the next step() only; undefined: never skip.
  void skip_step_if(torch::Tensor flag) { found_inf_ = std::move(flag); }

 private:
  torch::Tensor found_inf_;
  std::unordered_map<void*, torch::Tensor> steps_;  // per parameter, float, on its device
};

// HF's rule: no weight decay on biases and normalisation weights, by HF name ("...bias",
// "...LayerNorm.weight", T5's "..._layer_norm.weight") or internal name ("attn_norm.weight").
bool no_decay(const std::string& name);
// The module's parameters under their HF names where `keys` has them (a packed model's short
// internal names, "ln1.weight" for a LayerNorm, say too little), else their internal names.
std::vector<std::pair<std::string, torch::Tensor>> hf_named_parameters(torch::nn::Module& module, const models::KeyMap& keys);
std::unique_ptr<FusedAdamW> make_adamw(torch::nn::Module& module, const AdamWSettings& s);

// An optimizer with each parameter group's base learning rate and whether the schedule
// scales it (SP3 decays its mask and lambda rates with the model's; CoFi keeps them fixed).
struct OptimizerSetup {
  std::unique_ptr<FusedAdamW> optimizer;
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
// Drop every gradient (set to none, as PyTorch's default), so no zero-fill kernel runs.
void clear_grads(torch::optim::Optimizer& optimizer);
// Scale gradients so their global L2 norm is at most max_norm (<= 0: no clipping) and return
// that norm as a device tensor: unlike LibTorch's clip_grad_norm_ (a double), no host sync.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

}  // namespace sculpt::train
