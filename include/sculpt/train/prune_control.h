// What every mask-learning pruning task shares (method.md §3.4–3.5, §5.4), whatever the model:
// the two mask groups and the constraint switched on by update number, the target ramp from the
// all-kept size, the Lagrangian term and its controller's step after the update, the optimizer
// groups of the masks and of λ, the log's fields, the deterministic masks. The task supplies its
// expected size (differentiable in the masks' keep probabilities) and its distillation terms.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sculpt/compress/lagrangian.h"
#include "sculpt/compress/sp3_bert.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/train/distill_loss.h"
#include "sculpt/train/optim.h"

namespace sculpt::train {

class PruneControl {
 public:
  // SIZE: the expected size now; ALL_KEPT its value with every mask kept (where the ramp starts).
  // PRUNED: the size is CoFi's pruned fraction (else SP3's remaining fraction).
  PruneControl(const recipe::PruneSection& p, compress::Sp3MaskSet masks, compress::Lagrangian lagrangian, double all_kept,
               bool pruned, std::function<torch::Tensor()> size);

  // The masks' and λ's optimizer groups, beside the model's own parameters.
  std::vector<ExtraGroup> optimizer_groups() const;
  void begin_update(int64_t step, int64_t updates_per_epoch, int64_t total);
  // LOSS plus the Lagrangian once pruning has started; TERMS are kept for the log.
  torch::Tensor constrained(const torch::Tensor& loss, const DistillTerms& terms);
  void before_step() { lagrangian_->flip_gradients(); }
  void after_step();
  nlohmann::json log_fields();
  std::string log_line(const nlohmann::json& fields) const;
  // Whether a packed size lies within the target's epsilon band.
  bool within_target(double packed_size) const;
  // The deterministic (eval) masks, whatever mode the masks are in.
  compress::Sp3Masks eval_masks();
  const char* size_key() const { return pruned_ ? "expected_sparsity" : "expected_remaining"; }

 private:
  const recipe::PruneSection& p_;
  compress::Sp3MaskSet masks_;
  compress::Lagrangian lagrangian_;
  double all_kept_;
  bool pruned_;
  std::function<torch::Tensor()> size_;
  double target_now_ = 0;
  bool pruning_ = false;
  torch::Tensor last_size_;  // this update's expected size before the step (the controller's velocity)
  struct Last {
    torch::Tensor pred, layer, lagrangian, match;  // lagrangian undefined before pruning starts
  } last_;
};

}  // namespace sculpt::train
