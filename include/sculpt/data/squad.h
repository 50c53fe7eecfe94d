// SQuAD v1.1 / v2.0: the JSON reader, features with max length and doc stride (windows over
// the context, HF run_qa semantics: consecutive windows share `doc_stride` tokens), offsets
// back into the context, impossible answers, and n-best span post-processing.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "sculpt/metrics/squad_metrics.h"
#include "sculpt/models/outputs.h"

namespace sculpt::tokenizers {
class WordPieceTokenizer;
}

namespace sculpt::data {

struct SquadExample {
  std::string id, question, context;
  std::vector<std::string> answers;  // texts
  std::vector<size_t> answer_starts;  // byte offsets into context
  bool is_impossible = false;
};

std::vector<SquadExample> read_squad(const std::string& path);

// 13 bytes a token (int32 id, uint8 type, int32 span), not 32: SQuAD train's 88k features at
// length 384 take 0.44 GB, not 1.1.
struct SquadFeature {
  size_t example;  // index into the examples
  std::vector<int32_t> ids;
  std::vector<uint8_t> types;
  std::vector<std::pair<int32_t, int32_t>> offsets;  // byte span in context, (-1,-1) outside it
  int64_t start_position = 0, end_position = 0;      // training targets (0 = [CLS] = no answer)
};

struct SquadFeatureOptions {
  int64_t max_length = 384, doc_stride = 128, max_query_length = 64;
};

// On `threads` threads (<= 0: LibTorch's count); the same features in the same order for any count.
// progress(done) counts examples (core/parallel.h).
std::vector<SquadFeature> make_squad_features(const tokenizers::WordPieceTokenizer& tokenizer,
                                              const std::vector<SquadExample>& examples, const SquadFeatureOptions& o,
                                              int threads = 0, const std::function<void(size_t)>& progress = {});
// The features of examples [begin, end), serially.
std::vector<SquadFeature> make_squad_features_range(const tokenizers::WordPieceTokenizer& tokenizer,
                                                    const std::vector<SquadExample>& examples, size_t begin, size_t end,
                                                    const SquadFeatureOptions& o);

// The token cache's file of features (data/token_file.h). Reading refuses a file whose key,
// sizes, ids (against the vocabulary), example indices, spans (against each example's context)
// or answer positions are wrong.
void write_squad_features(const std::string& path, const std::string& key, const std::string& description,
                          const std::vector<SquadFeature>& features);
std::vector<SquadFeature> read_squad_features(const std::string& path, const std::string& key, size_t vocab_size,
                                              const std::vector<SquadExample>& examples);

models::Batch collate_squad(const std::vector<SquadFeature>& features, const std::vector<size_t>& indices, int64_t pad_id,
                            bool with_positions);

struct SquadPostprocessOptions {
  int64_t n_best = 20, max_answer_length = 30;
  bool v2 = false;
  double null_threshold = 0.0;  // v2.0: answer "" when null score - best span score > threshold
};

// start/end logits per feature ([T] each, as float vectors) -> one prediction per example.
std::vector<metrics::SquadPrediction> postprocess_squad(const std::vector<SquadExample>& examples,
                                                        const std::vector<SquadFeature>& features,
                                                        const std::vector<std::vector<float>>& start_logits,
                                                        const std::vector<std::vector<float>>& end_logits,
                                                        const SquadPostprocessOptions& options);

std::vector<metrics::SquadGold> squad_gold(const std::vector<SquadExample>& examples);

}  // namespace sculpt::data
