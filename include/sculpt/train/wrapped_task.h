// A task that wears another: every call goes to the inner task unless the wrapper overrides it
// (train/sparse_task.cpp, train/teacher_task.cpp).
#pragma once
#include <memory>

#include "sculpt/train/task.h"

namespace sculpt::train {

class WrappedTask : public Task {
 public:
  explicit WrappedTask(std::unique_ptr<Task> inner) : inner_(std::move(inner)) {}
  std::string describe() const override { return inner_->describe(); }
  torch::nn::Module& model() override { return inner_->model(); }
  const models::KeyMap& keys() const override { return inner_->keys(); }
  const std::vector<int64_t>& train_lengths() const override { return inner_->train_lengths(); }
  models::Batch collate(const std::vector<size_t>& idx) const override { return inner_->collate(idx); }
  torch::Tensor loss(const models::Batch& batch) override { return inner_->loss(batch); }
  int64_t tokens_of(size_t i) const override { return inner_->tokens_of(i); }
  std::map<std::string, double> evaluate() override { return inner_->evaluate(); }
  std::string main_metric() const override { return inner_->main_metric(); }
  bool higher_is_better() const override { return inner_->higher_is_better(); }
  void export_to(const std::string& dir) override { inner_->export_to(dir); }
  OptimizerSetup make_optimizer(const AdamWSettings& s) override { return inner_->make_optimizer(s); }
  std::vector<torch::Tensor> clipped_parameters() override { return inner_->clipped_parameters(); }
  void begin_update(int64_t step, int64_t per_epoch, int64_t total) override { inner_->begin_update(step, per_epoch, total); }
  void before_step() override { inner_->before_step(); }
  void after_step() override { inner_->after_step(); }
  nlohmann::json log_fields() override { return inner_->log_fields(); }
  std::string log_line(const nlohmann::json& fields) const override { return inner_->log_line(fields); }
  bool eligible_for_best(const std::map<std::string, double>& m) const override { return inner_->eligible_for_best(m); }
  io::TensorMap extra_state() override { return inner_->extra_state(); }
  void load_extra_state(const io::TensorMap& s, const std::string& source) override { inner_->load_extra_state(s, source); }
  models::ModelOutput outputs(const models::Batch& batch, bool hidden_states) override { return inner_->outputs(batch, hidden_states); }

 protected:
  std::unique_ptr<Task> inner_;
};

}  // namespace sculpt::train
