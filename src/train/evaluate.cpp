#include "sculpt/train/evaluate.h"

#include <torch/torch.h>

#include <algorithm>
#include <numeric>

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "sculpt/core/dist_env.h"
#include "sculpt/core/error.h"
#include "sculpt/data/glue.h"
#include "sculpt/metrics/glue_metrics.h"
#include "sculpt/train/distributed.h"

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
                                            int64_t pad_id, const torch::Device& device, Distributed* shard) {
  const auto& task = data::glue_task(task_name);
  torch::NoGradGuard no_grad;
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return examples[a].ids.size() < examples[b].ids.size(); });
  std::vector<double> predictions(examples.size()), labels(examples.size());
  for (size_t i = 0; i < examples.size(); ++i) labels[i] = examples[i].label;
  const size_t world = shard ? static_cast<size_t>(shard->world_size()) : 1, rank = shard ? static_cast<size_t>(shard->rank()) : 0;
  size_t batch_no = 0;
  for (size_t start = 0; start < order.size(); start += static_cast<size_t>(batch_size)) {
    if (batch_no++ % world != rank) continue;
    std::vector<size_t> idx(order.begin() + static_cast<std::ptrdiff_t>(start),
                            order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), start + static_cast<size_t>(batch_size))));
    auto batch = data::collate(examples, idx, pad_id, task.is_regression());
    batch.labels = torch::Tensor();  // no loss needed
    auto logits = logits_of(batch.to(device)).to(torch::kCPU, torch::kFloat);
    auto pred = task.is_regression() ? logits.squeeze(-1).to(torch::kDouble) : logits.argmax(-1).to(torch::kDouble);
    auto p = pred.accessor<double, 1>();
    for (size_t i = 0; i < idx.size(); ++i) predictions[idx[i]] = p[static_cast<int64_t>(i)];
  }
  if (world > 1) {  // each prediction is set on one rank and 0 on the others: the sum is exact
    auto all = shard->all_reduce_sum(torch::tensor(predictions, torch::kDouble)).to(torch::kCPU).contiguous();
    std::copy(all.data_ptr<double>(), all.data_ptr<double>() + all.numel(), predictions.begin());
  }
  return metrics::glue_metrics(task_name, predictions, labels);
}

std::map<std::string, double> evaluate_squad(const OutputsFn& outputs_of, const std::vector<data::SquadExample>& examples,
                                             const std::vector<data::SquadFeature>& features, int64_t batch_size,
                                             int64_t pad_id, const torch::Device& device,
                                             const data::SquadPostprocessOptions& options,
                                             std::vector<metrics::SquadPrediction>* predictions, Distributed* shard) {
  torch::NoGradGuard no_grad;
  std::vector<std::vector<float>> starts(features.size()), ends(features.size());
  const size_t world = shard ? static_cast<size_t>(shard->world_size()) : 1, rank = shard ? static_cast<size_t>(shard->rank()) : 0;
  size_t batch_no = 0;
  for (const auto& idx : data::consecutive_batches(features.size(), static_cast<size_t>(batch_size))) {
    if (batch_no++ % world != rank) {
      for (size_t i : idx) starts[i].assign(features[i].ids.size(), 0.0f), ends[i].assign(features[i].ids.size(), 0.0f);
      continue;
    }
    auto out = outputs_of(data::collate_squad(features, idx, pad_id, false).to(device));
    auto s = out.start_logits.to(torch::kCPU, torch::kFloat).contiguous(), e = out.end_logits.to(torch::kCPU, torch::kFloat).contiguous();
    for (size_t b = 0; b < idx.size(); ++b) {
      const size_t len = features[idx[b]].ids.size();
      const float* sp = s[static_cast<int64_t>(b)].data_ptr<float>();
      const float* ep = e[static_cast<int64_t>(b)].data_ptr<float>();
      starts[idx[b]].assign(sp, sp + len);
      ends[idx[b]].assign(ep, ep + len);
    }
  }
  if (world > 1) {  // one flat tensor of every feature's start and end logits, summed across ranks
    std::vector<float> flat;
    for (size_t i = 0; i < features.size(); ++i) flat.insert(flat.end(), starts[i].begin(), starts[i].end()), flat.insert(flat.end(), ends[i].begin(), ends[i].end());
    auto all = shard->all_reduce_sum(torch::tensor(flat, torch::kFloat)).to(torch::kCPU).contiguous();
    const float* p = all.data_ptr<float>();
    for (size_t i = 0; i < features.size(); ++i) {
      std::copy(p, p + starts[i].size(), starts[i].begin()), p += starts[i].size();
      std::copy(p, p + ends[i].size(), ends[i].begin()), p += ends[i].size();
    }
  }
  auto preds = data::postprocess_squad(examples, features, starts, ends, options);
  auto m = metrics::squad_metrics(preds, data::squad_gold(examples), options.v2);
  if (predictions) *predictions = std::move(preds);
  return m;
}

}  // namespace sculpt::train
