// A text corpus in blocks, split as Transformers' run_mlm / run_clm split it: dev_file's blocks,
// else the first validation_percent of train_file's held out; max_train_examples and
// max_eval_examples cut each side. Masked LM (train/mlm_task.cpp) and causal LM
// (train/clm_data.h) read their text through this.
#pragma once
#include <cstdint>
#include <vector>

#include "sculpt/recipe/recipe.h"
#include "sculpt/train/token_data.h"

namespace sculpt::train {

struct CorpusSplit {
  data::TokenBlocks train_blocks, dev_blocks;  // the mapped files the rows point into
  std::vector<const int32_t*> train, dev;
  int64_t block = 0;  // tokens per row
};

// R's corpus in blocks of min(data.max_seq_len, MAX_POSITIONS) tokens.
CorpusSplit load_corpus_split(const recipe::Recipe& r, const TokenSource& source, int64_t max_positions);

}  // namespace sculpt::train
