// Masked language modelling on a text corpus (data.task mlm): run_mlm's blocks
// (data/text_corpus.h) with the collator's masks (data/mlm_masking.h), BERT with its MLM head,
// perplexity exp(mean cross-entropy over masked tokens) on held-out blocks as the metric.
//  * A training batch's masks are drawn from (run.seed, the batch's example indices, row), so
//    they differ every epoch (the plan reshuffles) yet a resumed run draws the same ones.
//  * Evaluation masks are fixed per held-out block, so every evaluation scores the same tokens.
#include <torch/torch.h>

#include <cmath>

#include "sculpt/core/error.h"
#include "sculpt/core/log.h"
#include "sculpt/data/batching.h"
#include "sculpt/data/mlm_masking.h"
#include "sculpt/models/bert.h"
#include "sculpt/train/bert_classifier.h"
#include "sculpt/train/corpus_split.h"
#include "sculpt/train/distributed.h"
#include "sculpt/train/glue_data.h"
#include "sculpt/train/task.h"
#include "sculpt/train/token_data.h"


namespace sculpt::train {
namespace {

// A BertModel or classifier checkpoint gets a new MLM head (logged); a masked LM keeps its own.
models::Bert build_mlm_model(const recipe::Recipe& r) {
  return build_bert_with_head(r, [](models::TransformerConfig& c) {
    c.head = models::HeadType::masked_lm;
    c.with_pooler = false;  // as HF's BertForMaskedLM
  });
}

class MlmTask : public Task {
 public:
  MlmTask(const recipe::Recipe& r, const torch::Device& device) : r_(r), device_(device), model_(build_mlm_model(r)) {
    model_->to(device_);
    keys_ = models::bert_key_map(model_->config);
    tokenizer_ = tokenizers::load_tokenizer(r.model.tokenizer);
    masking_ = data::mlm_masking_for(*tokenizer_, r.data.mlm_probability, r.data.whole_word_mask);
    SCULPT_CHECK(static_cast<int64_t>(tokenizer_->vocab_size()) <= model_->config.vocab_size,
                 "{}: the tokenizer has {} ids, the model's vocabulary {}", r.model.tokenizer, tokenizer_->vocab_size(),
                 model_->config.vocab_size);
    const TokenSource source{*tokenizer_, r.model.tokenizer, r.logging.progress_bar};
    corpus_ = load_corpus_split(r, source, model_->config.max_positions);
    block_ = corpus_.block;
    lengths_.assign(corpus_.train.size(), block_);
    LOG_INFO("[data] masked LM: {} train and {} eval blocks of {} tokens ({} of the text, {:.0f}% chosen{})", corpus_.train.size(),
             corpus_.dev.size(), block_, r.data.dev_file.empty() ? fmt::format("eval = first {}%", r.data.validation_percent) : "eval from dev_file",
             100 * r.data.mlm_probability, r.data.whole_word_mask ? ", whole words" : "");
  }

  std::string describe() const override { return "bert masked LM"; }
  torch::nn::Module& model() override { return *model_; }
  const models::KeyMap& keys() const override { return keys_; }
  const std::vector<int64_t>& train_lengths() const override { return lengths_; }

  models::Batch collate(const std::vector<size_t>& idx) const override {
    uint64_t h = static_cast<uint64_t>(r_.run.seed);
    for (size_t i : idx) h = data::mix_seed(h, i);
    std::vector<const int32_t*> rows;
    std::vector<uint64_t> seeds;
    for (size_t b = 0; b < idx.size(); ++b) rows.push_back(corpus_.train[idx[b]]), seeds.push_back(data::mix_seed(h, b));
    return batch_of(rows, seeds);
  }
  torch::Tensor loss(const models::Batch& batch) override { return model_->forward(batch).loss; }
  models::ModelOutput outputs(const models::Batch& batch, bool hidden_states) override {
    return model_->forward(batch, {hidden_states, false});
  }

  std::map<std::string, double> evaluate() override {
    torch::NoGradGuard no_grad;
    model_->eval();
    Distributed& group = process_group(device_);
    const size_t world = static_cast<size_t>(group.world_size()), rank = static_cast<size_t>(group.rank());
    auto sums = torch::zeros({3}, torch::TensorOptions().dtype(torch::kDouble).device(device_));  // loss sum, tokens, correct
    size_t batch_no = 0;
    for (const auto& idx : data::consecutive_batches(corpus_.dev.size(), static_cast<size_t>(r_.data.eval_batch_size))) {
      if (batch_no++ % world != rank) continue;
      std::vector<const int32_t*> rows;
      std::vector<uint64_t> seeds;
      for (size_t i : idx) rows.push_back(corpus_.dev[i]), seeds.push_back(data::mix_seed(static_cast<uint64_t>(r_.run.seed) ^ 0xE7A1ULL, i));
      const auto b = batch_of(rows, seeds).to(device_);
      const auto logits = model_->forward(b).logits.to(torch::kFloat);
      const auto labels = b.labels.to(torch::kLong);
      sums[0] += torch::nn::functional::cross_entropy(logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)).to(torch::kDouble);
      sums[1] += static_cast<double>(labels.numel());
      sums[2] += logits.argmax(-1).eq(labels).sum().to(torch::kDouble);
    }
    if (world > 1) sums = group.all_reduce_sum(sums);
    const auto host = sums.to(torch::kCPU);
    const double mean = host[0].item<double>() / host[1].item<double>();
    return {{"loss", mean}, {"perplexity", std::exp(mean)}, {"accuracy", host[2].item<double>() / host[1].item<double>()},
            {"masked_tokens", host[1].item<double>()}};
  }
  std::string main_metric() const override { return r_.eval.metric.empty() ? "perplexity" : r_.eval.metric; }
  bool higher_is_better() const override { return main_metric() == "accuracy"; }
  void export_to(const std::string& dir) override {
    models::save_bert(model_, dir);
    copy_tokenizer_files(r_.model.tokenizer, dir);
  }

 private:
  models::Batch batch_of(const std::vector<const int32_t*>& rows, const std::vector<uint64_t>& seeds) const {
    auto m = data::mask_rows(rows, block_, masking_, seeds);
    models::Batch b;
    b.input_ids = m.input_ids;
    b.attention_mask = torch::ones_like(m.input_ids);
    b.token_type_ids = torch::zeros_like(m.input_ids);
    b.labels = m.labels;
    b.masked_positions = m.positions;
    return b;
  }

  const recipe::Recipe& r_;
  torch::Device device_;
  models::Bert model_;
  models::KeyMap keys_;
  std::unique_ptr<tokenizers::Tokenizer> tokenizer_;
  data::MlmMasking masking_;
  CorpusSplit corpus_;
  std::vector<int64_t> lengths_;
  int64_t block_ = 0;
};

}  // namespace

std::unique_ptr<Task> make_mlm_task(const recipe::Recipe& r, const torch::Device& device) {
  SCULPT_CHECK(r.model.family == "bert", "masked language modelling is implemented for model.family bert (got '{}')", r.model.family);
  return std::make_unique<MlmTask>(r, device);
}

}  // namespace sculpt::train
