// SQuAD's data as the span tasks (fine-tuning, pruning, the packed model's report) use it: the
// WordPiece tokenizer, the train features, the dev questions and their features (all through the
// token cache), and evaluation of any span model on the dev set.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sculpt/data/squad.h"
#include "sculpt/recipe/recipe.h"
#include "sculpt/tokenizers/wordpiece.h"
#include "sculpt/train/evaluate.h"

namespace sculpt::train {

struct SquadData {
  enum class Splits { train_and_dev, dev };
  // Windows of min(data.max_seq_len, MAX_POSITIONS) tokens (the model's position table).
  SquadData(const recipe::Recipe& r, int64_t max_positions, Splits splits = Splits::train_and_dev);
  models::Batch collate_train(const std::vector<size_t>& indices) const;
  // EM / F1 (v2.0: and the has-answer / no-answer splits) over the dev questions.
  std::map<std::string, double> evaluate(const OutputsFn& outputs_of, int64_t batch_size, const torch::Device& device,
                                         Distributed* shard = nullptr) const;

  bool v2 = false;
  int64_t max_answer_length = 30;
  std::unique_ptr<tokenizers::WordPieceTokenizer> tokenizer;
  data::SquadFeatureOptions options;
  std::vector<data::SquadExample> train_examples, dev_examples;
  std::vector<data::SquadFeature> train, dev;
  std::vector<int64_t> lengths;  // of the train features
};

}  // namespace sculpt::train
