// A GLUE task's data as the classification tasks (fine-tuning and pruning) use it: the
// tokenizer, tokenized train and dev splits (MNLI's two dev sets), and evaluation of any
// classifier's logits over the dev splits. Splits are tokenized in parallel and kept in the token
// cache (data/token_cache.h), so later stages, sweep cells and ranks read them instead.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/tokenizers/tokenizer.h"
#include "sculpt/train/evaluate.h"

namespace sculpt::train {

struct GlueData {
  enum class Splits { train_and_dev, dev };  // dev: evaluation only (the packed model's report)
  explicit GlueData(const recipe::Recipe& r, Splits splits = Splits::train_and_dev);
  // A batch of train examples, padded to its longest.
  models::Batch collate_train(const std::vector<size_t>& indices) const {
    return data::collate(train, indices, pad_id, task.is_regression());
  }
  // Metrics over every dev split; the second split's keys get the prefix "mm_" (MNLI).
  std::map<std::string, double> evaluate(const LogitsFn& logits_of, int64_t batch_size, const torch::Device& device,
                                         Distributed* shard = nullptr) const;

  const data::GlueTask& task;
  std::unique_ptr<tokenizers::Tokenizer> tokenizer;
  int64_t pad_id = 0;
  std::vector<data::Example> train;
  std::vector<std::pair<std::string, std::vector<data::Example>>> dev;
  std::vector<int64_t> lengths;
};

// Copy the tokenizer files of an HF directory into an export directory.
void copy_tokenizer_files(const std::string& from, const std::string& to);

}  // namespace sculpt::train
