// Tokenized data through the token cache (data/token_cache.h), the same way for every task:
// GLUE, GLUE as text for T5, SQuAD features, text corpora in blocks. Each is keyed by the
// tokenizer's files, the data file's bytes and every option that changes its ids; it is read
// from the cache, or built on every thread under a progress bar and filed; a log line says which
// and how fast.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sculpt/data/batching.h"
#include "sculpt/data/glue.h"
#include "sculpt/data/glue_text.h"
#include "sculpt/data/squad.h"
#include "sculpt/data/text_corpus.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::tokenizers {
class WordPieceTokenizer;
}

namespace sculpt::train {

// Where the tokenizer's files are and how to report progress (ProgressBar's mode).
struct TokenSource {
  const tokenizers::Tokenizer& tokenizer;
  std::string tokenizer_dir, progress = "auto";
};

// The first MAX_EXAMPLES (<= 0: all) rows of a GLUE split, encoded to MAX_LENGTH.
std::vector<data::Example> load_glue_examples(const TokenSource& source, const data::GlueTask& task, const std::string& root,
                                              const std::string& split, int64_t max_length, int64_t max_examples);

// The same rows as T5's text-to-text pairs; targets only WITH_TARGET (training).
std::vector<data::TextPair> load_text_pairs(const TokenSource& source, const data::GlueTask& task, const std::string& root,
                                            const std::string& split, int64_t max_length, int64_t max_examples,
                                            bool with_target);

// The features of EXAMPLES, the first questions of FILE.
std::vector<data::SquadFeature> load_squad_features(const TokenSource& source, const tokenizers::WordPieceTokenizer& wordpiece,
                                                    const std::string& file, const std::vector<data::SquadExample>& examples,
                                                    const data::SquadFeatureOptions& options);

// A text corpus in blocks for masked language modelling (data/text_corpus.h), streamed into the
// cache and memory-mapped from it.
data::TokenBlocks load_corpus_blocks(const TokenSource& source, const std::string& file, const data::CorpusOptions& options);

// The first N rows (N <= 0: all), as max_train_examples and max_eval_examples cut a split.
template <class Rows>
Rows first_rows(Rows rows, int64_t n) {
  if (n > 0 && static_cast<size_t>(n) < rows.size()) rows.resize(static_cast<size_t>(n));
  return rows;
}

// The file names a tokenizer may be read from (the key hashes those present).
const std::vector<std::string>& tokenizer_file_names();

}  // namespace sculpt::train
