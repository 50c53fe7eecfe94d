// The (family, task) pairs sculpt trains: GLUE classification with BERT or OPT heads,
// GLUE as text-to-text with T5, SQuAD with BERT.
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <type_traits>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/squad.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/metrics/glue_metrics.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/hf_model.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/evaluate.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/squad_data.h"
#include "sculpt/train/t5_glue_data.h"
#include "sculpt/train/bert_classifier.h"
#include "sculpt/train/task.h"
#include "sculpt/train/token_data.h"
#include "sculpt/models/packed_bert.h"

namespace fs = std::filesystem;

namespace sculpt::train {
namespace {

using Clock = std::chrono::steady_clock;

// Where model_config's values come from, for messages.
std::string config_source(const recipe::Recipe& r) {
  return r.model.path.empty() ? std::string("recipe model.config") : (fs::path(r.model.path) / "config.json").string();
}

// A parsed config, checked against the shapes the starting checkpoint's weights declare before
// the model is allocated.
models::TransformerConfig checked(models::TransformerConfig c, const recipe::Recipe& r) {
  if (!r.model.path.empty()) models::check_config_against_weights(c, r.model.path, config_source(r), /*packed=*/!c.layer_shapes.empty());
  return c;
}

// config.json of the starting checkpoint, or the recipe's architecture.
nlohmann::json model_config(const recipe::Recipe& r) {
  if (!r.model.path.empty()) return io::read_json((fs::path(r.model.path) / "config.json").string());
  nlohmann::json j = r.model.config;
  j["model_type"] = r.model.family;
  return j;
}

// Initialise from the checkpoint when there is one (fine-tuning policy), else from scratch.
void load_or_init(torch::nn::Module& model, const models::KeyMap& keys, const recipe::Recipe& r, double init_std) {
  models::init_normal(model, init_std);
  if (!r.model.path.empty())
    models::load_checkpoint(model, keys, io::load_hf_weights(r.model.path), r.model.path, /*strict=*/false);
}

nlohmann::json label_maps(nlohmann::json j, int64_t n) {
  nlohmann::json id2label, label2id;
  for (int64_t i = 0; i < n; ++i) id2label[std::to_string(i)] = "LABEL_" + std::to_string(i), label2id["LABEL_" + std::to_string(i)] = i;
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  return j;
}

// ---- GLUE with a classification head (BERT pooler + classifier, OPT last-token score) ----

}  // namespace

models::Bert build_bert_classifier(const recipe::Recipe& r, const data::GlueTask& task) {
  return build_bert_with_head(r, [&task](models::TransformerConfig& c) {
    c.head = models::HeadType::sequence_classification;
    c.with_pooler = true;
    c.num_labels = task.num_labels();
    c.problem_type = task.is_regression() ? "regression" : "single_label_classification";
  });
}

models::Bert build_bert_with_head(const recipe::Recipe& r, const std::function<void(models::TransformerConfig&)>& head) {
  nlohmann::json j = model_config(r);
  j["model_type"] = "bert";
  auto c = models::bert_config_from_json(j, config_source(r));
  head(c);
  c.raw.erase("id2label");
  c.raw.erase("label2id");
  if (!r.model.path.empty()) return models::load_bert(r.model.path, /*strict=*/false, io::WeightFormat::safetensors, &c).model;
  models::Bert model(c);
  model->init_weights();
  return model;
}

namespace {

models::Opt build_opt_classifier(const recipe::Recipe& r, const data::GlueTask& task) {
  nlohmann::json j = label_maps(model_config(r), task.num_labels());
  j["architectures"] = {"OPTForSequenceClassification"};
  j["problem_type"] = task.is_regression() ? "regression" : "single_label_classification";
  models::Opt model(checked(models::opt_config_from_json(j, config_source(r)), r));
  load_or_init(*model, models::opt_key_map(model->config), r, j.value("init_std", 0.02));
  return model;
}

models::ModelOutput classify(models::Bert& m, const models::Batch& b, bool hidden_states = false) {
  return m->forward(b, {hidden_states, false});
}
models::ModelOutput classify(models::PackedBert& m, const models::Batch& b) { return m->forward(b); }
models::ModelOutput classify(models::Opt& m, const models::Batch& b) {
  auto o = m->forward(b.input_ids, b.attention_mask, b.labels);
  models::ModelOutput out;
  out.loss = o.loss, out.logits = o.logits;
  return out;
}
nlohmann::json export_config(models::Bert& m) { return models::bert_config_to_json(m->config); }
nlohmann::json export_config(models::PackedBert& m) { return models::packed_config_to_json(m->config); }
const models::KeyMap key_map(models::PackedBert& m) { return models::packed_bert_key_map(m->config); }
nlohmann::json export_config(models::Opt& m) { return models::opt_config_to_json(m->config); }
const models::KeyMap key_map(models::Bert& m) { return models::bert_key_map(m->config); }
const models::KeyMap key_map(models::Opt& m) { return models::opt_key_map(m->config); }

template <typename Model>
class GlueClassificationTask : public Task {
 public:
  GlueClassificationTask(const recipe::Recipe& r, Model model, const torch::Device& device)
      : r_(r), data_(r), model_(std::move(model)), device_(device) {
    keys_ = key_map(model_);
    model_->to(device_);
  }
  std::string describe() const override { return r_.model.family + " classifier on " + data_.task.name; }
  torch::nn::Module& model() override { return *model_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return data_.lengths; }
  models::Batch collate(const std::vector<size_t>& idx) const override {
    return data_.collate_train(idx);
  }
  torch::Tensor loss(const models::Batch& batch) override { return classify(model_, batch).loss; }
  models::ModelOutput outputs(const models::Batch& batch, bool hidden_states) override {
    if constexpr (std::is_same_v<Model, models::Bert>) return classify(model_, batch, hidden_states);
    return Task::outputs(batch, hidden_states);
  }
  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    model_->eval();
    return data_.evaluate([this](const models::Batch& b) { return classify(model_, b).logits; }, r_.data.eval_batch_size, device_,
                          &process_group(device_));
  }
  std::string main_metric() const override { return r_.eval.metric.empty() ? metrics::glue_main_metric(data_.task.name) : r_.eval.metric; }
  void export_to(const std::string& dir) override {
    models::save_hf(*model_, keys_, export_config(model_), dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
  }

 private:
  const recipe::Recipe& r_;
  GlueData data_;
  Model model_;
  torch::Device device_;
  models::KeyMap keys_;
};

// ---- GLUE as text-to-text with T5 ----

class GlueT5Task : public Task {
 public:
  GlueT5Task(const recipe::Recipe& r, const torch::Device& device)
      : r_(r), model_(checked(models::t5_config_from_json(model_config(r), config_source(r)), r)), device_(device),
        data_(r, model_->config.pad_token_id) {
    keys_ = models::t5_key_map(model_->config);
    load_or_init(*model_, keys_, r, 1.0 / std::sqrt(static_cast<double>(model_->config.hidden_size)));
    model_->to(device_);
  }
  std::string describe() const override { return "t5 text-to-text on " + data_.task().name; }
  torch::nn::Module& model() override { return *model_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return data_.train_lengths(); }
  models::Batch collate(const std::vector<size_t>& idx) const override { return data_.collate_train(idx); }
  int64_t tokens_of(size_t i) const override { return data_.tokens_of(i); }
  torch::Tensor loss(const models::Batch& b) override {
    return model_->forward(b.input_ids, b.attention_mask, {}, b.decoder_attention_mask, b.labels).loss;
  }
  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    model_->eval();
    return data_.evaluate(
        [&](const torch::Tensor& ids, const torch::Tensor& mask) { return model_->generate(ids, mask, T5GlueData::kMaxNewTokens).first; },
        [&](const models::Batch& b) { return model_->forward(b.input_ids, b.attention_mask, {}, b.decoder_attention_mask, b.labels).logits; },
        r_.data.eval_batch_size, device_);
  }
  std::string main_metric() const override { return data_.main_metric(r_); }
  void export_to(const std::string& dir) override {
    models::save_hf(*model_, keys_, model_->config.raw, dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
  }

 private:
  const recipe::Recipe& r_;
  models::T5 model_;
  torch::Device device_;
  T5GlueData data_;
  models::KeyMap keys_;
};

// ---- SQuAD with BERT ----

// A span model: the dense BertForQuestionAnswering, or the packed one that pruning on SQuAD exports.
template <typename Model>
class SquadTask : public Task {
 public:
  SquadTask(const recipe::Recipe& r, Model model, const torch::Device& device)
      : r_(r), device_(device), model_(std::move(model)), data_(r, model_config_of(model_).max_positions) {
    model_->to(device_);
    keys_ = key_map(model_);
  }
  std::string describe() const override { return fmt::format("{}bert question answering on SQuAD", packed() ? "packed " : ""); }
  torch::nn::Module& model() override { return *model_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return data_.lengths; }
  models::Batch collate(const std::vector<size_t>& idx) const override { return data_.collate_train(idx); }
  torch::Tensor loss(const models::Batch& batch) override { return classify(model_, batch).loss; }
  models::ModelOutput outputs(const models::Batch& batch, bool hidden_states) override {
    return model_->forward(batch, {hidden_states, false});
  }
  std::map<std::string, double> evaluate() override {
    model_->eval();
    return data_.evaluate([this](const models::Batch& b) { return classify(model_, b); }, r_.data.eval_batch_size, device_,
                          &process_group(device_));
  }
  std::string main_metric() const override { return r_.eval.metric.empty() ? "f1" : r_.eval.metric; }
  void export_to(const std::string& dir) override {
    models::save_hf(*model_, keys_, export_config(model_), dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
  }

 private:
  static bool packed() { return std::is_same_v<Model, models::PackedBert>; }
  static const models::TransformerConfig& model_config_of(Model& m) {
    if constexpr (std::is_same_v<Model, models::PackedBert>) return m->config.base;
    else return m->config;
  }
  const recipe::Recipe& r_;
  torch::Device device_;
  Model model_;
  SquadData data_;
  models::KeyMap keys_;
};

models::Bert build_bert_span_model(const recipe::Recipe& r) {
  return build_bert_with_head(r, [](models::TransformerConfig& c) {
    c.head = models::HeadType::question_answering;
    c.with_pooler = false;  // HF builds BertModel(add_pooling_layer=False) for QA
  });
}

}  // namespace

namespace {

std::unique_ptr<Task> make_base_task(const recipe::Recipe& r, const torch::Device& device, bool restoring) {
  const std::string& family = r.model.family;
  if (r.data.is_mlm()) return make_mlm_task(r, device);
  if (r.prune.enabled()) return make_prune_task(r, device, restoring);
  if (r.data.is_clm()) return make_clm_task(r, device);
  if (r.data.is_squad()) {
    SCULPT_CHECK(family == "bert", "SQuAD is trained with model.family bert (got '{}')", family);
    if (!r.model.path.empty() && models::is_packed_bert(model_config(r))) {
      auto packed = models::load_packed_bert(r.model.path);
      SCULPT_CHECK(packed->config.base.head == models::HeadType::question_answering, "{}: a packed classifier, not a span model for {}",
                   r.model.path, r.data.task);
      return std::make_unique<SquadTask<models::PackedBert>>(r, packed, device);
    }
    return std::make_unique<SquadTask<models::Bert>>(r, build_bert_span_model(r), device);
  }
  const auto& task = data::glue_task(r.data.task);
  if (!r.distill.teacher.empty() && models::is_packed_bert(model_config(r))) return make_distilled_packed_task(r, device);
  if (family == "bert" && !r.model.path.empty() && models::is_packed_bert(model_config(r))) {
    // A packed model (from pruning) fine-tunes like any checkpoint; its head must fit the task.
    auto packed = models::load_packed_bert(r.model.path);
    SCULPT_CHECK(packed->config.base.num_labels == task.num_labels(), "{}: packed model has {} labels, task {} needs {}",
                 r.model.path, packed->config.base.num_labels, task.name, task.num_labels());
    return std::make_unique<GlueClassificationTask<models::PackedBert>>(r, packed, device);
  }
  if (family == "bert") return std::make_unique<GlueClassificationTask<models::Bert>>(r, build_bert_classifier(r, task), device);
  if (family == "opt") return std::make_unique<GlueClassificationTask<models::Opt>>(r, build_opt_classifier(r, task), device);
  if (family == "t5") return std::make_unique<GlueT5Task>(r, device);
  fail("model.family '{}' is not one of bert, t5, opt", family);
}

}  // namespace

std::unique_ptr<Task> make_task(const recipe::Recipe& r, const torch::Device& device, bool restoring) {
  auto task = make_base_task(r, device, restoring);
  // A packed model's distillation (CoFi's stage) is its own task; any other student wears the teacher.
  const bool packed_stage = !r.data.is_text() && !r.data.is_squad() && !r.prune.enabled() && !r.distill.teacher.empty() &&
                            models::is_packed_bert(model_config(r));
  if (!r.distill.teacher.empty() && !packed_stage) task = with_dense_teacher(std::move(task), r, device);
  if (r.sparsity.enabled()) task = with_sparsity(std::move(task), r);
  if (r.quantize.enabled()) task = with_quantization(std::move(task), r);
  if (r.codebook.enabled()) task = with_codebook(std::move(task), r);
  return task;
}

}  // namespace sculpt::train
