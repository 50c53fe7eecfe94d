// GLUE as text-to-text for T5 (data/glue_text.h: "rte sentence1: ... sentence2: ..." ->
// "entailment"): the train pairs and their padded batches, and the dev score of greedy generation
// parsed back to labels. One implementation for fine-tuning a T5 (train/tasks.cpp), pruning it
// (train/decoder_prune_task.cpp) and the packed model's report (train/prune_run.cpp).
#pragma once
#include <torch/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sculpt/data/glue.h"
#include "sculpt/data/glue_text.h"
#include "sculpt/models/outputs.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/tokenizers/sentencepiece.h"

namespace sculpt::train {

class T5GlueData {
 public:
  // DEV_ONLY skips the train split. PAD_ID: the model's pad token (input padding).
  T5GlueData(const recipe::Recipe& r, int64_t pad_id, bool dev_only = false);
  const data::GlueTask& task() const { return task_; }
  size_t train_size() const { return train_.size(); }
  const std::vector<int64_t>& train_lengths() const { return lengths_; }  // source lengths
  int64_t tokens_of(size_t i) const { return static_cast<int64_t>(train_[i].source.size() + train_[i].target.size()); }
  // input_ids/attention_mask of the sources; labels (-100 padding) and decoder_attention_mask of the targets.
  models::Batch collate_train(const std::vector<size_t>& idx) const;
  // Greedy generation of (ids, mask) on the device -> [B, 1 + steps] ids (the decoder start first).
  using GenerateFn = std::function<torch::Tensor(const torch::Tensor& ids, const torch::Tensor& mask)>;
  // The decoder's logits [B, T, V] for a batch as collate_train makes them (teacher forcing).
  using LogitsFn = std::function<torch::Tensor(const models::Batch& batch)>;
  static constexpr int64_t kMaxNewTokens = 6;  // the longest label word ("not_entailment") and </s>
  // The task's dev metrics of the generated answers, how many outputs were no label word, and
  // `loss`, the mean cross-entropy of the label words' tokens under teacher forcing (mm_ for
  // MNLI's mismatched split); batches dealt to the process group's ranks in turn.
  std::map<std::string, double> evaluate(const GenerateFn& generate, const LogitsFn& logits, int64_t batch_size,
                                         const torch::Device& device) const;
  std::string main_metric(const recipe::Recipe& r) const;

 private:
  models::Batch batch_of(const std::vector<data::TextPair>& rows, const std::vector<size_t>& idx) const;
  std::pair<torch::Tensor, torch::Tensor> pad_rows(const std::vector<data::TextPair>& rows, const std::vector<size_t>& idx, int64_t fill,
                                                   bool source) const;
  const data::GlueTask& task_;
  int64_t pad_id_;
  std::unique_ptr<tokenizers::SentencePieceTokenizer> tokenizer_;
  std::vector<data::TextPair> train_;
  std::vector<std::pair<std::string, std::vector<data::TextPair>>> dev_;
  std::vector<int64_t> lengths_;
};

}  // namespace sculpt::train
