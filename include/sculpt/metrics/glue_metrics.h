// GLUE metrics and each task's official combination (as HF's glue_compute_metrics).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace sculpt::metrics {

double accuracy(const std::vector<int>& pred, const std::vector<int>& gold);
double f1_binary(const std::vector<int>& pred, const std::vector<int>& gold);  // positive class 1
double matthews_corrcoef(const std::vector<int>& pred, const std::vector<int>& gold);
double pearson(const std::vector<double>& x, const std::vector<double>& y);
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// cola: matthews_correlation; sst2/mnli/qnli/rte/wnli: accuracy; mrpc/qqp: accuracy, f1,
// combined_score; stsb: pearson, spearmanr, combined_score. Predictions are class ids, or
// scores for stsb.
std::map<std::string, double> glue_metrics(const std::string& task, const std::vector<double>& predictions,
                                           const std::vector<double>& labels);
// The metric a run keeps its best checkpoint by, unless the recipe names another.
std::string glue_main_metric(const std::string& task);

}  // namespace sculpt::metrics
