#include "sculpt/train/prune_control.h"

#include <torch/torch.h>

#include "sculpt/compress/prune_report.h"

namespace sculpt::train {

PruneControl::PruneControl(const recipe::PruneSection& p, compress::Sp3MaskSet masks, compress::Lagrangian lagrangian,
                           double all_kept, bool pruned, std::function<torch::Tensor()> size)
    : p_(p), masks_(std::move(masks)), lagrangian_(std::move(lagrangian)), all_kept_(all_kept), pruned_(pruned), size_(std::move(size)) {}

std::vector<ExtraGroup> PruneControl::optimizer_groups() const {
  return {{masks_->parameters(), p_.mask_lr, p_.schedule_reg_lr}, {lagrangian_->lambdas(), p_.lambda_lr, p_.schedule_reg_lr}};
}

void PruneControl::begin_update(int64_t step, int64_t per_epoch, int64_t total) {
  const int64_t start = p_.start.updates(per_epoch, total), structural = p_.structural_start.updates(per_epoch, total);
  masks_->set_group_active(0, step >= start);
  masks_->set_group_active(1, step >= structural);
  pruning_ = step >= start;
  target_now_ = compress::target_at(step, start, p_.target_warmup.updates(per_epoch, total), all_kept_, p_.target);
}

torch::Tensor PruneControl::constrained(const torch::Tensor& loss, const DistillTerms& terms) {
  torch::Tensor lagrangian;
  auto out = loss;
  if (pruning_) {
    auto size = size_();
    last_size_ = size.detach();
    lagrangian = lagrangian_->forward(size, target_now_);
    out = out + lagrangian;
  }
  // The last micro-batch's terms for the log, detached (device tensors: no sync here).
  last_ = {terms.pred, terms.layer, lagrangian.defined() ? lagrangian.detach() : torch::Tensor(), terms.match};
  return out;
}

void PruneControl::after_step() {
  torch::NoGradGuard g;
  if (p_.log_alpha_clamp > 0)
    for (auto& p : masks_->parameters()) p.clamp_(-p_.log_alpha_clamp, p_.log_alpha_clamp);
  // Only the anti-windup controller needs the size after the step (lead 0: nothing to do).
  if (pruning_ && lagrangian_->lead > 0 && last_size_.defined()) lagrangian_->after_step(last_size_, size_(), target_now_);
}

nlohmann::json PruneControl::log_fields() {
  torch::NoGradGuard g;
  nlohmann::json j;
  if (!last_.pred.defined()) return j;
  j["pred_loss"] = last_.pred.item<double>();
  j["layer_loss"] = last_.layer.defined() ? last_.layer.item<double>() : 0.0;  // layer_weight 0: no layer term
  j["lagrangian"] = last_.lagrangian.defined() ? last_.lagrangian.item<double>() : 0.0;
  j[size_key()] = size_().item<double>();
  j["target_now"] = target_now_;
  j["lambda1"] = lagrangian_->lambda1.item<double>();
  j["lambda2"] = lagrangian_->lambda2.item<double>();
  if (last_.match.defined()) {
    auto match = last_.match.to(torch::kCPU);
    j["layer_match"] = std::vector<int64_t>(match.data_ptr<int64_t>(), match.data_ptr<int64_t>() + match.numel());
  }
  j["kept"] = compress::kept_sizes(eval_masks());
  return j;
}

std::string PruneControl::log_line(const nlohmann::json& f) const {
  if (f.empty()) return {};
  return fmt::format(" : pred {:.3e} layer {:.4f} lag {:.4f} : {} {:.4f} (target {:.4f}) : {}", f["pred_loss"].get<double>(),
                     f["layer_loss"].get<double>(), f["lagrangian"].get<double>(), pruned_ ? "sparsity" : "remaining",
                     f[size_key()].get<double>(), f["target_now"].get<double>(), compress::describe_kept(f["kept"]));
}

bool PruneControl::within_target(double s) const {
  // Within [target - epsilon, target + epsilon_below] of CoFi's pruned fraction, or
  // [target - epsilon_below, target + epsilon] of SP3's remaining fraction.
  if (pruned_) return s >= p_.target - p_.epsilon && s <= p_.target + p_.epsilon_below;
  return s <= p_.target + p_.epsilon && s >= p_.target - p_.epsilon_below;
}

compress::Sp3Masks PruneControl::eval_masks() {
  torch::NoGradGuard g;
  const bool was_training = masks_->is_training();
  masks_->eval();
  auto m = masks_->sample_or_eval();
  if (was_training) masks_->train();
  return m;
}

}  // namespace sculpt::train
