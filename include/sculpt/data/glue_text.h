// GLUE as text-to-text, as T5 was trained on it: "<task> <field>: text ..." inputs (fields in
// sorted order, e.g. "mnli hypothesis: ... premise: ...") and label words as targets
// ("negative"/"positive", "entailment"/"neutral"/"contradiction", STS-B scores rounded to 0.2).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sculpt/data/glue.h"

namespace sculpt::tokenizers {
class Tokenizer;
}

namespace sculpt::data {

std::string t5_glue_input(const GlueTask& task, const GlueExample& row);
std::string t5_glue_target(const GlueTask& task, float label);
// Generated text back to a label id (or STS-B score); nullopt for anything else.
std::optional<double> t5_glue_parse(const GlueTask& task, const std::string& text);

// A row as token ids: the input text, cut to max_length, and (for training) the label words.
struct TextPair {
  std::vector<int32_t> source, target;
  float label = -1;
};

// On `threads` threads (<= 0: LibTorch's count), the same pairs for any count; progress(done) as
// rows finish.
std::vector<TextPair> encode_t5_glue(const tokenizers::Tokenizer& tokenizer, const GlueTask& task,
                                     const std::vector<GlueExample>& rows, int64_t max_length, bool with_target,
                                     int threads = 0, const std::function<void(size_t)>& progress = {});

// The token cache's file of pairs (data/token_file.h); reading refuses a file whose key, sizes,
// offsets or ids are wrong.
void write_text_pairs(const std::string& path, const std::string& key, const std::string& description,
                      const std::vector<TextPair>& pairs);
std::vector<TextPair> read_text_pairs(const std::string& path, const std::string& key, size_t vocab_size);

}  // namespace sculpt::data
