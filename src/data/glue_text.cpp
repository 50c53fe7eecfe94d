#include "sculpt/data/glue_text.h"

#include <cmath>
#include <map>

#include "sculpt/core/error.h"

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

}  // namespace sculpt::data
