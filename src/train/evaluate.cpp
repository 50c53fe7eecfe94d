#include "sculpt/train/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "sculpt/core/dist_env.h"
#include "sculpt/core/error.h"
#include "sculpt/data/glue.h"
#include "sculpt/metrics/glue_metrics.h"

namespace sculpt::train {

torch::Device resolve_device(const std::string& name) {
  if (name == "cpu" || (name == "auto" && !torch::cuda::is_available())) return torch::Device(torch::kCPU);
  SCULPT_CHECK(torch::cuda::is_available(), "device '{}' was asked for but this machine has no usable CUDA device", name);
  torch::Device device(name == "auto" ? "cuda" : name);
  SCULPT_CHECK(device.is_cuda(), "device '{}' is not cpu, cuda, cuda:N or auto", name);
  // Each rank on its own GPU: cuda:LOCAL_RANK unless an index was given.
  if (!device.has_index())
    device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(cuda_index_for_rank(read_dist_env(), static_cast<int>(torch::cuda::device_count()))));
  SCULPT_CHECK(device.index() < static_cast<int>(torch::cuda::device_count()), "device {} does not exist: {} CUDA device(s) visible",
               device.str(), torch::cuda::device_count());
  // Kernels launched without an explicit device (NCCL, cuBLAS handles) go to the same GPU.
  c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->setDevice(device);
  return device;
}

std::map<std::string, double> evaluate_glue(const LogitsFn& logits_of, const std::string& task_name,
                                            const std::vector<data::Example>& examples, int64_t batch_size,
                                            int64_t pad_id, const torch::Device& device) {
  const auto& task = data::glue_task(task_name);
  torch::NoGradGuard no_grad;
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return examples[a].ids.size() < examples[b].ids.size(); });
  std::vector<double> predictions(examples.size()), labels(examples.size());
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    std::vector<size_t> idx(order.begin() + static_cast<std::ptrdiff_t>(start),
                            order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + static_cast<size_t>(batch_size))));
    auto batch = data::collate(examples, idx, pad_id, task.is_regression());
    batch.labels = torch::Tensor();  // no loss needed
    auto logits = logits_of(batch.to(device)).to(torch::kCPU, torch::kFloat);
    auto pred = task.is_regression() ? logits.squeeze(-1).to(torch::kDouble) : logits.argmax(-1).to(torch::kDouble);
    auto p = pred.accessor<double, 1>();
    for (size_t i = 0; i < idx.size(); ++i) {
      predictions[idx[i]] = p[static_cast<int64_t>(i)];
      labels[idx[i]] = examples[idx[i]].label;
    }
  }
  return metrics::glue_metrics(task_name, predictions, labels);
}

std::map<std::string, double> evaluate_squad(models::Bert& model, const std::vector<data::SquadExample>& examples,
                                             const std::vector<data::SquadFeature>& features, int64_t batch_size,
                                             int64_t pad_id, const torch::Device& device,
                                             const data::SquadPostprocessOptions& options,
                                             std::vector<metrics::SquadPrediction>* predictions) {
  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<std::vector<float>> starts(features.size()), ends(features.size());
  for (const auto& idx : data::consecutive_batches(features.size(), static_cast<size_t>(batch_size))) {
    auto out = model->forward(data::collate_squad(features, idx, pad_id, false).to(device));
    auto s = out.start_logits.to(torch::kCPU, torch::kFloat).contiguous(), e = out.end_logits.to(torch::kCPU, torch::kFloat).contiguous();
    for (size_t b = 0; b < idx.size(); ++b) {
      const size_t len = features[idx[b]].ids.size();
      const float* sp = s[static_cast<int64_t>(b)].data_ptr<float>();
      const float* ep = e[static_cast<int64_t>(b)].data_ptr<float>();
      starts[idx[b]].assign(sp, sp + len);
      ends[idx[b]].assign(ep, ep + len);
    }
  }
  auto preds = data::postprocess_squad(examples, features, starts, ends, options);
  auto m = metrics::squad_metrics(preds, data::squad_gold(examples), options.v2);
  if (predictions) *predictions = std::move(preds);
  return m;
}

}  // namespace sculpt::train
