// The official SQuAD evaluation: answer normalisation (lowercase, no punctuation, no
// articles, single spaces), exact match and token F1 against the best gold answer; for v2.0
// also HasAns/NoAns splits and the best null-score threshold.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace sculpt::metrics {

std::string normalize_answer(const std::string& s);
double exact_match(const std::string& prediction, const std::string& gold);
double token_f1(const std::string& prediction, const std::string& gold);

struct SquadPrediction {
  std::string id;
  std::string text;        // "" = no answer
  double null_score_diff;  // null score minus best span score (v2.0 thresholding); 0 if unused
};

struct SquadGold {
  std::string id;
  std::vector<std::string> answers;  // empty for an unanswerable v2.0 question
};

// Percentages like the official scripts: exact, f1, total; v2.0 adds HasAns_*, NoAns_*,
// best_exact(_thresh), best_f1(_thresh).
std::map<std::string, double> squad_metrics(const std::vector<SquadPrediction>& predictions,
                                            const std::vector<SquadGold>& gold, bool v2);

}  // namespace sculpt::metrics
