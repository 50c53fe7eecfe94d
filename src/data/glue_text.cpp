#include "sculpt/data/glue_text.h"

#include <cmath>
#include <map>

#include <torch/torch.h>

#include "sculpt/core/error.h"
#include "sculpt/core/parallel.h"
#include "sculpt/data/token_file.h"
#include "sculpt/tokenizers/tokenizer.h"

namespace sculpt::data {
namespace {

struct Format {
  const char* first;
  const char* second;  // nullptr: single sentence
  bool swap;           // T5 sorts field names: MNLI puts the hypothesis (our text_b) first
  std::vector<std::string> words;  // label words by our label id
};

const Format& format(const GlueTask& task) {
  static const std::map<std::string, Format> formats = {
      {"cola", {"sentence", nullptr, false, {"unacceptable", "acceptable"}}},
      {"sst2", {"sentence", nullptr, false, {"negative", "positive"}}},
      {"mrpc", {"sentence1", "sentence2", false, {"not_equivalent", "equivalent"}}},
      {"stsb", {"sentence1", "sentence2", false, {}}},
      {"qqp", {"question1", "question2", false, {"not_duplicate", "duplicate"}}},
      {"mnli", {"hypothesis", "premise", true, {"contradiction", "entailment", "neutral"}}},
      {"qnli", {"question", "sentence", false, {"entailment", "not_entailment"}}},
      {"rte", {"sentence1", "sentence2", false, {"entailment", "not_entailment"}}},
      {"wnli", {"sentence1", "sentence2", false, {"not_entailment", "entailment"}}},
  };
  return formats.at(task.name);
}

}  // namespace

std::string t5_glue_input(const GlueTask& task, const GlueExample& row) {
  const auto& f = format(task);
  if (!f.second) return task.name + " " + f.first + ": " + row.text_a;
  const std::string& a = f.swap ? row.text_b.value_or("") : row.text_a;
  const std::string& b = f.swap ? row.text_a : row.text_b.value_or("");
  return task.name + " " + f.first + ": " + a + " " + f.second + ": " + b;
}

std::string t5_glue_target(const GlueTask& task, float label) {
  const auto& f = format(task);
  if (task.is_regression()) return fmt::format("{:.1f}", std::round(label * 5.0) / 5.0);  // nearest 0.2
  return f.words.at(static_cast<size_t>(label));
}

std::optional<double> t5_glue_parse(const GlueTask& task, const std::string& raw) {
  std::string text = raw;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(text.begin());
  if (task.is_regression()) {
    try {
      size_t used = 0;
      double v = std::stod(text, &used);
      if (used == text.size() && std::isfinite(v)) return v;
    } catch (const std::exception&) {
    }
    return std::nullopt;
  }
  const auto& words = format(task).words;
  for (size_t i = 0; i < words.size(); ++i)
    if (text == words[i]) return static_cast<double>(i);
  return std::nullopt;
}

std::vector<TextPair> encode_t5_glue(const tokenizers::Tokenizer& tokenizer, const GlueTask& task,
                                     const std::vector<GlueExample>& rows, int64_t max_length, bool with_target, int threads,
                                     const std::function<void(size_t)>& progress) {
  std::vector<TextPair> out(rows.size());
  tokenizers::EncodeOptions o;
  o.truncation = "longest_first";
  o.max_length = max_length;
  parallel_chunks(rows.size(), 256, threads, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      TextPair& p = out[i];
      const auto source = tokenizer.encode(t5_glue_input(task, rows[i]), std::nullopt, o).input_ids;
      p.source.assign(source.begin(), source.end());  // ids < vocabulary: fit int32
      if (with_target) {
        const auto target = tokenizer.encode(t5_glue_target(task, rows[i].label)).input_ids;
        p.target.assign(target.begin(), target.end());
      }
      p.label = rows[i].label;
    }
  }, progress);
  return out;
}

void write_text_pairs(const std::string& path, const std::string& key, const std::string& description,
                      const std::vector<TextPair>& pairs) {
  auto labels = torch::empty({static_cast<int64_t>(pairs.size())}, torch::kFloat32);
  for (size_t i = 0; i < pairs.size(); ++i) labels.data_ptr<float>()[i] = pairs[i].label;
  auto source = [](const TextPair& p) -> auto& { return p.source; };
  auto target = [](const TextPair& p) -> auto& { return p.target; };
  write_token_columns(path, key, description,
                      {{"source", flat_column<int32_t>(pairs, source)},
                       {"source_offsets", row_offsets(pairs, source)},
                       {"target", flat_column<int32_t>(pairs, target)},
                       {"target_offsets", row_offsets(pairs, target)},
                       {"labels", labels}});
}

std::vector<TextPair> read_text_pairs(const std::string& path, const std::string& key, size_t vocab_size) {
  const TokenFile file(path, key);
  const int64_t n = file.length("labels", torch::kFloat32);
  std::vector<TextPair> out(static_cast<size_t>(n));
  for (const char* side : {"source", "target"}) {
    const int64_t total = file.length(side, torch::kInt32);
    const auto ids = file.column(side, torch::kInt32, {total});
    file.check_range(side, ids, 0, static_cast<int64_t>(vocab_size), fmt::format("the vocabulary of {}", vocab_size));
    const int64_t* op = file.offsets(std::string(side) + "_offsets", n, total);
    const int32_t* ip = ids.data_ptr<int32_t>();
    for (int64_t i = 0; i < n; ++i) {
      auto& p = out[static_cast<size_t>(i)];
      (side[0] == 's' ? p.source : p.target).assign(ip + op[i], ip + op[i + 1]);
    }
  }
  const float* lp = file.column("labels", torch::kFloat32, {n}).data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)].label = lp[i];
  return out;
}

}  // namespace sculpt::data
