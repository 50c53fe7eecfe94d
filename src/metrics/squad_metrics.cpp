#include "sculpt/metrics/squad_metrics.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>
#include <unordered_map>

#include "sculpt/core/error.h"

namespace sculpt::metrics {

std::string normalize_answer(const std::string& s) {
  // Python: lower(), drop string.punctuation, drop \b(a|an|the)\b, then ' '.join(split()).
  std::string lowered;
  for (unsigned char c : s) {
    if (std::ispunct(c)) continue;  // string.punctuation is exactly ASCII ispunct
    lowered += static_cast<char>(std::tolower(c));
  }
  std::istringstream words(lowered);
  std::string w, out;
  while (words >> w) {
    if (w == "a" || w == "an" || w == "the") continue;
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

double exact_match(const std::string& prediction, const std::string& gold) {
  return normalize_answer(prediction) == normalize_answer(gold) ? 1.0 : 0.0;
}

double token_f1(const std::string& prediction, const std::string& gold) {
  auto split = [](const std::string& s) {
    std::vector<std::string> t;
    std::istringstream in(normalize_answer(s));
    for (std::string w; in >> w;) t.push_back(w);
    return t;
  };
  auto p = split(prediction), g = split(gold);
  if (p.empty() || g.empty()) return p == g ? 1.0 : 0.0;  // v2.0: both empty is a match
  std::unordered_map<std::string, int> counts;
  for (const auto& w : g) ++counts[w];
  int same = 0;
  for (const auto& w : p)
    if (counts[w]-- > 0) ++same;
  if (same == 0) return 0.0;
  double precision = static_cast<double>(same) / static_cast<double>(p.size());
  double recall = static_cast<double>(same) / static_cast<double>(g.size());
  return 2 * precision * recall / (precision + recall);
}

std::map<std::string, double> squad_metrics(const std::vector<SquadPrediction>& predictions,
                                            const std::vector<SquadGold>& gold, bool v2) {
  std::unordered_map<std::string, const SquadPrediction*> by_id;
  for (const auto& p : predictions) by_id[p.id] = &p;
  double em = 0, f1 = 0, has_em = 0, has_f1 = 0, no_em = 0, no_f1 = 0;
  size_t has = 0, no = 0;
  struct Row {
    double em, f1, diff;
    bool has_answer;
  };
  std::vector<Row> rows;
  for (const auto& g : gold) {
    auto it = by_id.find(g.id);
    SCULPT_CHECK(it != by_id.end(), "no prediction for question {}", g.id);
    const std::string& text = it->second->text;
    std::vector<std::string> answers = g.answers.empty() ? std::vector<std::string>{""} : g.answers;
    double e = 0, f = 0;
    for (const auto& a : answers) {
      e = std::max(e, exact_match(text, a));
      f = std::max(f, token_f1(text, a));
    }
    em += e, f1 += f;
    if (g.answers.empty()) no_em += e, no_f1 += f, ++no;
    else has_em += e, has_f1 += f, ++has;
    rows.push_back({e, f, it->second->null_score_diff, !g.answers.empty()});
  }
  const double n = static_cast<double>(gold.size());
  std::map<std::string, double> m = {{"exact", 100 * em / n}, {"f1", 100 * f1 / n}, {"total", n}};
  if (!v2) return m;
  if (has) m["HasAns_exact"] = 100 * has_em / has, m["HasAns_f1"] = 100 * has_f1 / has, m["HasAns_total"] = has;
  if (no) m["NoAns_exact"] = 100 * no_em / no, m["NoAns_f1"] = 100 * no_f1 / no, m["NoAns_total"] = no;
  // Best threshold on the null-score difference (official find_best_thresh): predicting
  // "no answer" for every question above it.
  for (const bool use_f1 : {false, true}) {
    double score = static_cast<double>(no), best = score, best_thresh = 0.0;
    std::vector<size_t> order(rows.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].diff < rows[b].diff; });
    for (size_t i : order) {
      const auto& r = rows[i];
      const double value = use_f1 ? r.f1 : r.em;
      // Answering this one instead of abstaining: gain its score if answerable, lose the
      // abstention credit if it is not (its span answer was counted as wrong).
      if (r.has_answer) score += value;
      else score += value - 1.0;
      if (score > best) best = score, best_thresh = r.diff;
    }
    m[use_f1 ? "best_f1" : "best_exact"] = 100 * best / n;
    m[use_f1 ? "best_f1_thresh" : "best_exact_thresh"] = best_thresh;
  }
  return m;
}

}  // namespace sculpt::metrics
