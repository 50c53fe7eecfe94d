// recipe.distill with a dense teacher on any BERT task (classification, SQuAD, masked LM): the
// student's loss becomes train/distill_loss.h's, pred_weight x KL(teacher || student) of the
// logits at the temperature (start and end logits for SQuAD; for MLM the masked tokens'
// vocabulary logits, or with distill.lm_positions all every real token's, as IntelLabs' code) + task_weight x the task's own loss (+ layer_weight x the hidden-state loss,
// student and teacher of one shape). Prune Once for All: 0.5 KL at T = 2 with T^2, 0.5 task loss.
#include <torch/torch.h>

#include <filesystem>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/models/bert.h"
#include "sculpt/train/distill_loss.h"
#include "sculpt/train/wrapped_task.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

class TeacherTask : public WrappedTask {
 public:
  TeacherTask(std::unique_ptr<Task> inner, const recipe::Recipe& r, const torch::Device& device)
      : WrappedTask(std::move(inner)), r_(r) {
    SCULPT_CHECK(fs::exists(fs::path(r.distill.teacher) / "config.json"), "distill.teacher {}: no config.json", r.distill.teacher);
    teacher_ = models::load_bert(r.distill.teacher, /*strict=*/true).model;
    teacher_->eval();
    for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
    teacher_->to(device);
    LOG_INFO("[distill] teacher {}: {:.2f} x KL (T {}{}{}) + {:.2f} x task loss + {:.2f} x layer loss", r.distill.teacher,
             r.distill.pred_weight, r.distill.temperature, r.distill.t_squared ? ", x T^2" : "",
             r.data.is_mlm() ? ", over " + std::string(r.distill.lm_positions == "all" ? "every token" : "the masked tokens") : "",
             r.distill.task_weight, r.distill.layer_weight);
  }
  std::string describe() const override { return inner_->describe() + ", distilling from " + r_.distill.teacher; }

  torch::Tensor loss(const models::Batch& masked) override {
    const bool layers = r_.distill.layer_weight > 0;
    // lm_positions all: the head runs on every position for both models, the task loss still
    // reads only the masked tokens.
    const bool every_token = masked.masked_positions.defined() && r_.distill.lm_positions == "all";
    const models::Batch batch = every_token ? every_token_lm_batch(masked) : masked;
    const auto t = teacher_outputs(teacher_, batch, layers);
    auto s = inner_->outputs(batch, layers);
    check_shapes(s, t);
    auto terms = distill_loss(s, s.hidden_states, t, batch.attention_mask, r_.distill);
    last_pred_ = terms.pred, last_layer_ = terms.layer;
    return terms.loss;
  }
  nlohmann::json log_fields() override {
    auto f = inner_->log_fields();
    if (last_pred_.defined()) f["pred_loss"] = last_pred_.item<double>();
    if (last_layer_.defined() && r_.distill.layer_weight > 0) f["layer_loss"] = last_layer_.item<double>();
    return f;
  }
  std::string log_line(const nlohmann::json& f) const override {
    std::string line = inner_->log_line(f);
    if (f.contains("pred_loss")) line += fmt::format(" : KL {:.4f}", f["pred_loss"].get<double>());
    if (f.contains("layer_loss")) line += fmt::format(" : layer {:.4f}", f["layer_loss"].get<double>());
    return line;
  }

 private:
  void check_shapes(const models::ModelOutput& s, const models::ModelOutput& t) const {
    auto same = [](const torch::Tensor& a, const torch::Tensor& b) { return a.defined() == b.defined() && (!a.defined() || a.sizes() == b.sizes()); };
    SCULPT_CHECK(same(s.logits, t.logits) && same(s.start_logits, t.start_logits),
                 "distill.teacher {}: its outputs ({}) do not match the student's ({}): not a teacher for this task",
                 r_.distill.teacher, c10::str(t.logits.defined() ? t.logits.sizes() : t.start_logits.sizes()),
                 c10::str(s.logits.defined() ? s.logits.sizes() : s.start_logits.sizes()));
  }

  const recipe::Recipe& r_;
  models::Bert teacher_{nullptr};
  torch::Tensor last_pred_, last_layer_;
};

}  // namespace

std::unique_ptr<Task> with_dense_teacher(std::unique_ptr<Task> task, const recipe::Recipe& r, const torch::Device& device) {
  return std::make_unique<TeacherTask>(std::move(task), r, device);
}

}  // namespace sculpt::train
