// Causal language modelling of OPT on local text (data.task clm, train/clm_data.h): any OPT
// directory (HF's, rotated, packed from pruning) fine-tunes on the next-token loss, and its dev
// perplexity is the metric, so `sculpt run`/`eval` score a packed decoder beside its teacher.
#include <torch/torch.h>

#include "sculpt/core/error.h"
#include "sculpt/models/opt.h"
#include "sculpt/train/clm_data.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/task.h"

namespace sculpt::train {
namespace {

class ClmTask : public Task {
 public:
  ClmTask(const recipe::Recipe& r, const torch::Device& device)
      : r_(r), device_(device), model_(models::load_opt(r.model.path)), data_(open_clm_data(r, model_->config.max_positions)) {
    SCULPT_CHECK(model_->config.head == models::HeadType::causal_lm, "{}: data.task clm needs an OPTForCausalLM", r.model.path);
    keys_ = models::opt_key_map(model_->config);
    model_->to(device_);
  }
  std::string describe() const override { return "opt causal LM"; }
  torch::nn::Module& model() override { return *model_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return data_->train_lengths(); }
  models::Batch collate(const std::vector<size_t>& idx) const override { return data_->collate_train(idx); }
  torch::Tensor loss(const models::Batch& b) override { return model_->forward(b.input_ids, b.attention_mask, b.labels).loss; }
  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    model_->eval();
    return data_->evaluate([&](const models::Batch& b) { return models::opt_logits(model_, b); }, r_.data.eval_batch_size, device_,
                           &process_group(device_));
  }
  std::string main_metric() const override { return data_->main_metric(r_); }
  bool higher_is_better() const override { return main_metric() == "accuracy"; }
  void export_to(const std::string& dir) override {
    models::save_opt(model_, dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
  }

 private:
  const recipe::Recipe& r_;
  torch::Device device_;
  models::Opt model_;
  std::unique_ptr<LabeledData> data_;
  models::KeyMap keys_;
};

}  // namespace

std::unique_ptr<Task> make_clm_task(const recipe::Recipe& r, const torch::Device& device) {
  SCULPT_CHECK(!r.model.path.empty(), "data.task clm fine-tunes an OPT checkpoint: set model.path");
  return std::make_unique<ClmTask>(r, device);
}

}  // namespace sculpt::train
