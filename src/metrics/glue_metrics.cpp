#include "sculpt/metrics/glue_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sculpt/core/error.h"
#include "sculpt/data/glue.h"

namespace sculpt::metrics {

double accuracy(const std::vector<int>& pred, const std::vector<int>& gold) {
  SCULPT_CHECK(pred.size() == gold.size() && !pred.empty(), "accuracy: {} predictions for {} labels", pred.size(), gold.size());
  size_t hit = 0;
  for (size_t i = 0; i < pred.size(); ++i) hit += pred[i] == gold[i];
  return static_cast<double>(hit) / static_cast<double>(pred.size());
}

double f1_binary(const std::vector<int>& pred, const std::vector<int>& gold) {
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    tp += pred[i] == 1 && gold[i] == 1;
    fp += pred[i] == 1 && gold[i] != 1;
    fn += pred[i] != 1 && gold[i] == 1;
  }
  return tp == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
}

double matthews_corrcoef(const std::vector<int>& pred, const std::vector<int>& gold) {
  double tp = 0, tn = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    tp += pred[i] == 1 && gold[i] == 1;
    tn += pred[i] != 1 && gold[i] != 1;
    fp += pred[i] == 1 && gold[i] != 1;
    fn += pred[i] != 1 && gold[i] == 1;
  }
  double denom = std::sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn));
  return denom == 0 ? 0.0 : (tp * tn - fp * fn) / denom;  // sklearn returns 0 when undefined
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  SCULPT_CHECK(x.size() == y.size() && x.size() > 1, "pearson: needs two equal-length series");
  const double n = static_cast<double>(x.size());
  double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  return (sxx == 0 || syy == 0) ? 0.0 : sxy / std::sqrt(sxx * syy);
}

static std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;  // ties share the mean rank
    for (size_t k = i; k <= j; ++k) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) { return pearson(ranks(x), ranks(y)); }

std::map<std::string, double> glue_metrics(const std::string& task_name, const std::vector<double>& predictions,
                                           const std::vector<double>& labels) {
  const auto& task = data::glue_task(task_name);
  std::map<std::string, double> m;
  if (task.is_regression()) {
    m["pearson"] = pearson(predictions, labels);
    m["spearmanr"] = spearman(predictions, labels);
    m["combined_score"] = (m["pearson"] + m["spearmanr"]) / 2;
    return m;
  }
  std::vector<int> p(predictions.begin(), predictions.end()), g(labels.begin(), labels.end());
  if (task.name == "cola") {
    m["matthews_correlation"] = matthews_corrcoef(p, g);
  } else if (task.name == "mrpc" || task.name == "qqp") {
    m["accuracy"] = accuracy(p, g);
    m["f1"] = f1_binary(p, g);
    m["combined_score"] = (m["accuracy"] + m["f1"]) / 2;
  } else {
    m["accuracy"] = accuracy(p, g);
  }
  return m;
}

std::string glue_main_metric(const std::string& task_name) {
  const auto& task = data::glue_task(task_name);
  if (task.name == "cola") return "matthews_correlation";
  if (task.name == "mrpc" || task.name == "qqp" || task.name == "stsb") return "combined_score";
  return "accuracy";
}

}  // namespace sculpt::metrics
