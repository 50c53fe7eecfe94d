#include "sculpt/train/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include "sculpt/core/error.h"
#include "sculpt/data/glue.h"
#include "sculpt/metrics/glue_metrics.h"

namespace sculpt::train {

torch::Device resolve_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (name == "cpu") return torch::Device(torch::kCPU);
  SCULPT_CHECK(torch::cuda::is_available(), "device '{}' was asked for but this build/machine has no CUDA", name);
  return torch::Device(name);
}

std::map<std::string, double> evaluate_glue(models::Bert& model, const std::string& task_name,
                                            const std::vector<data::Example>& examples, int64_t batch_size,
                                            int64_t pad_id, const torch::Device& device) {
  const auto& task = data::glue_task(task_name);
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return examples[a].ids.size() < examples[b].ids.size(); });
  std::vector<double> predictions(examples.size()), labels(examples.size());
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<size_t> idx(order.begin() + static_cast<std::ptrdiff_t>(start),
                            order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + static_cast<size_t>(batch_size))));
    auto batch = data::collate(examples, idx, pad_id, task.is_regression());
    batch.labels = torch::Tensor();  // no loss needed
    auto logits = model->forward(batch.to(device)).logits.to(torch::kCPU, torch::kFloat);
    auto pred = task.is_regression() ? logits.squeeze(-1).to(torch::kDouble) : logits.argmax(-1).to(torch::kDouble);
    auto p = pred.accessor<double, 1>();
    for (size_t i = 0; i < idx.size(); ++i) {
      predictions[idx[i]] = p[static_cast<int64_t>(i)];
      labels[idx[i]] = examples[idx[i]].label;
    }
  }
  return metrics::glue_metrics(task_name, predictions, labels);
}

}  // namespace sculpt::train
