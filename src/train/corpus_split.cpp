#include "sculpt/train/corpus_split.h"

#include <algorithm>

#include "sculpt/core/error.h"

namespace sculpt::train {

CorpusSplit load_corpus_split(const recipe::Recipe& r, const TokenSource& source, int64_t max_positions) {
  CorpusSplit s;
  data::CorpusOptions o;
  o.block_size = std::min(r.data.max_seq_len, max_positions);
  o.sample_by = r.data.sample_by;
  s.block = o.block_size;
  s.train_blocks = load_corpus_blocks(source, r.data.train_file, o);
  const int64_t n = s.train_blocks.size();
  SCULPT_CHECK(n > 0, "{}: no block of {} tokens (the text is shorter than one block)", r.data.train_file, o.block_size);
  int64_t held = 0;
  if (!r.data.dev_file.empty()) {
    s.dev_blocks = load_corpus_blocks(source, r.data.dev_file, o);
    for (int64_t i = 0; i < s.dev_blocks.size(); ++i) s.dev.push_back(s.dev_blocks.block(i));
  } else {  // validation_split_percentage: the first share of the corpus
    held = std::max<int64_t>(1, n * r.data.validation_percent / 100);
    SCULPT_CHECK(held < n, "{}: {} blocks leave none to train on after holding out {}%", r.data.train_file, n,
                 r.data.validation_percent);
    for (int64_t i = 0; i < held; ++i) s.dev.push_back(s.train_blocks.block(i));
  }
  for (int64_t i = held; i < n; ++i) s.train.push_back(s.train_blocks.block(i));
  s.train = first_rows(s.train, r.data.max_train_examples);
  s.dev = first_rows(s.dev, r.data.max_eval_examples);
  SCULPT_CHECK(!s.dev.empty(), "{}: no block to evaluate on", r.data.dev_file.empty() ? r.data.train_file : r.data.dev_file);
  return s;
}

}  // namespace sculpt::train
