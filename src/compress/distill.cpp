#include "sculpt/compress/distill.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::compress {

torch::Tensor logits_kl(const torch::Tensor& student, const torch::Tensor& teacher, double T, bool times_t_squared) {
  auto s = torch::log_softmax(student / T, -1), t = torch::log_softmax(teacher.detach() / T, -1);
  auto kl = (t.exp() * (t - s)).sum(-1).mean();  // batchmean, log_target
  return times_t_squared ? kl * (T * T) : kl;
}

torch::Tensor prediction_distill(const torch::Tensor& student, const torch::Tensor& teacher, double T, bool times_t_squared) {
  if (student.size(-1) == 1) return torch::mse_loss(student, teacher.detach());
  return logits_kl(student, teacher, T, times_t_squared);
}

LayerDistill layer_distill(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher,
                           const torch::Tensor& mask, const torch::Tensor& projection) {
  SCULPT_CHECK(!student.empty() && student.size() <= teacher.size(), "layer distillation: {} student states for {} teacher states",
               student.size(), teacher.size());
  auto keep = mask.reshape(-1).to(torch::kBool);
  auto tokens = [&](const torch::Tensor& h) { return h.reshape({-1, h.size(-1)}).index({keep}); };
  std::vector<torch::Tensor> t;
  for (const auto& h : teacher) t.push_back(tokens(h).detach());
  LayerDistill out;
  out.loss = torch::zeros({}, student.front().options());
  for (size_t i = 0; i < student.size(); ++i) {
    auto s = tokens(student[i]);
    if (projection.defined()) s = torch::matmul(s, projection.t());
    int64_t best = static_cast<int64_t>(i);
    {
      torch::NoGradGuard no_grad;
      double best_cost = 1e300;
      for (size_t j = i; j < t.size(); ++j) {
        double cost = torch::mse_loss(s, t[j]).item<double>();
        if (cost < best_cost) best_cost = cost, best = static_cast<int64_t>(j);
      }
    }
    out.match.push_back(best);
    out.loss = out.loss + torch::mse_loss(s, t[static_cast<size_t>(best)]);
  }
  return out;
}

}  // namespace sculpt::compress
