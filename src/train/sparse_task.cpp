// recipe.sparsity on any task: gradual magnitude pruning (gmp) or a locked pattern of zeros
// (lock), compress/unstructured.h. Masks are recomputed at the schedule's updates in
// begin_update (a function of the step and the weights, so a resumed run recomputes the same),
// pruned gradients are masked by hooks, weights re-zeroed after each update, and the masks
// ride in every checkpoint.
#include <torch/torch.h>

#include "sculpt/compress/unstructured.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/train/select_weights.h"
#include "sculpt/train/wrapped_task.h"

namespace sculpt::train {
namespace {

class SparseTask : public WrappedTask {
 public:
  SparseTask(std::unique_ptr<Task> inner, const recipe::Recipe& r) : WrappedTask(std::move(inner)), s_(r.sparsity) {
    std::vector<std::pair<std::string, torch::Tensor>> chosen;
    int64_t n = 0;
    for (const auto& w : select_weights(model(), keys(), s_.include, s_.exclude, "sparsity.include"))
      chosen.emplace_back(w.hf, w.weight), n += w.weight.numel();
    lock_ = s_.method == "lock";
    masks_ = lock_ ? compress::WeightMasks::from_nonzeros(std::move(chosen)) : compress::WeightMasks(std::move(chosen));
    masks_.mask_gradients();
    LOG_INFO("[sparsity] {}: {} matrices, {} weights{}", lock_ ? "pattern lock" : "gradual magnitude pruning", masks_.weights().size(), n,
             lock_ ? fmt::format(", {:.2f}% zero and kept so", 100 * masks_.sparsity()) : std::string());
  }

  std::string describe() const override { return inner_->describe() + (lock_ ? ", sparsity pattern locked" : ", magnitude pruning"); }

  void begin_update(int64_t step, int64_t per_epoch, int64_t total) override {
    inner_->begin_update(step, per_epoch, total);
    if (lock_) return;
    if (!scheduled_) {
      schedule_.initial = s_.initial, schedule_.final = s_.final, schedule_.exponent = s_.exponent;
      schedule_.begin = s_.begin.updates(per_epoch, total);
      // The last mask must be computed before the last update runs.
      schedule_.end = std::min(std::max(schedule_.begin, s_.end.updates(per_epoch, total)), std::max<int64_t>(0, total - 1));
      schedule_.every = std::max<int64_t>(1, s_.every.updates(per_epoch, total));
      scheduled_ = true;
      LOG_INFO("[sparsity] {:.3f} -> {:.3f} from update {} to {}, masks every {} updates ({} masks)", schedule_.initial,
               schedule_.final, schedule_.begin, schedule_.end, schedule_.every, s_.scope);
    }
    if (schedule_.prunes_at(step)) masks_.prune_to(schedule_.sparsity_at(step), s_.scope == "global");
    target_ = schedule_.in_force_at(step);  // also right after a resume
  }
  void after_step() override {
    inner_->after_step();
    masks_.apply();
  }
  nlohmann::json log_fields() override {
    auto f = inner_->log_fields();
    f["sparsity"] = masks_.sparsity();
    if (!lock_) f["target_sparsity"] = target_;
    return f;
  }
  std::string log_line(const nlohmann::json& f) const override {
    return inner_->log_line(f) + fmt::format(" : sparsity {:.4f}", f["sparsity"].get<double>());
  }
  // A model still on the ramp is not the one asked for: best/ only once the final sparsity holds.
  bool eligible_for_best(const std::map<std::string, double>& m) const override {
    return inner_->eligible_for_best(m) && (lock_ || target_ >= s_.final);
  }
  std::map<std::string, double> evaluate() override {
    auto m = inner_->evaluate();
    m["sparsity"] = masks_.sparsity();
    return m;
  }
  io::TensorMap extra_state() override {
    auto s = inner_->extra_state();
    for (auto& [k, v] : masks_.state()) s[k] = v;
    return s;
  }
  void load_extra_state(const io::TensorMap& state, const std::string& source) override {
    io::TensorMap mine, rest;
    for (const auto& [k, v] : state) (k.rfind("mask.", 0) == 0 ? mine : rest)[k] = v;
    SCULPT_CHECK(!mine.empty(), "{}: no sparsity masks (a checkpoint of a run without `sparsity:`)", source);
    masks_.load_state(mine, source);
    inner_->load_extra_state(rest, source);
  }

 private:
  const recipe::SparsitySection& s_;
  bool lock_ = false, scheduled_ = false;
  compress::GmpSchedule schedule_;
  compress::WeightMasks masks_;
  double target_ = 0;
};

}  // namespace

std::unique_ptr<Task> with_sparsity(std::unique_ptr<Task> task, const recipe::Recipe& r) {
  return std::make_unique<SparseTask>(std::move(task), r);
}

}  // namespace sculpt::train
