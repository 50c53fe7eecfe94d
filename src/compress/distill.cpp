#include "sculpt/compress/distill.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "sculpt/core/error.h"

namespace sculpt::compress {

namespace {
// KL(teacher || student) of each row's softened distributions (log_target), shape logits[:-1].
torch::Tensor row_kl(const torch::Tensor& student, const torch::Tensor& teacher, double T) {
  auto s = torch::log_softmax(student / T, -1), t = torch::log_softmax(teacher.detach() / T, -1);
  return (t.exp() * (t - s)).sum(-1);
}
}  // namespace

torch::Tensor logits_kl(const torch::Tensor& student, const torch::Tensor& teacher, double T, bool times_t_squared) {
  auto kl = row_kl(student, teacher, T).mean();  // batchmean
  return times_t_squared ? kl * (T * T) : kl;
}

torch::Tensor masked_logits_kl(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& mask, double T,
                               bool times_t_squared) {
  SCULPT_CHECK(student.dim() == 3 && mask.sizes() == student.sizes().slice(0, 2), "masked_logits_kl: logits [B, T, V] and a [B, T] mask");
  auto m = mask.to(student.scalar_type());
  auto kl = (row_kl(student, teacher, T) * m).sum() / m.sum();
  return times_t_squared ? kl * (T * T) : kl;
}

torch::Tensor prediction_distill(const torch::Tensor& student, const torch::Tensor& teacher, double T, bool times_t_squared) {
  if (student.size(-1) == 1) return torch::mse_loss(student, teacher.detach());
  return logits_kl(student, teacher, T, times_t_squared);
}

torch::Tensor masked_mse(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& mask) {
  auto m = mask.to(a.scalar_type());
  return ((a - b).pow(2).sum(-1) * m).sum() / (m.sum() * static_cast<double>(a.size(-1)));
}

// The pair is chosen on detached costs (no graph), then only the chosen pairs' losses are
// computed again with gradients, as SP3's code does: keeping every candidate's graph costs
// about (teacher states) x the compute and memory of the loss for nothing. The choice stays on
// the device (index_select of stacked states), so there is no host sync.
LayerDistill layer_distill(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher,
                           const torch::Tensor& mask) {
  SCULPT_CHECK(!student.empty() && student.size() <= teacher.size(), "layer distillation: {} student states for {} teacher states",
               student.size(), teacher.size());
  const auto inf = std::numeric_limits<double>::infinity();
  std::vector<torch::Tensor> detached;
  for (const auto& t : teacher) detached.push_back(t.detach());
  const auto targets = torch::stack(detached);  // [J, B, T, H]
  std::vector<torch::Tensor> best, match;
  for (size_t i = 0; i < student.size(); ++i) {
    torch::Tensor index;
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> costs;
      for (size_t j = 0; j < teacher.size(); ++j)
        costs.push_back(j < i ? torch::full({}, inf, student[i].options()) : masked_mse(student[i], detached[j], mask));
      index = torch::stack(costs).argmin();  // the first of equal costs, as min(0)
    }
    best.push_back(masked_mse(student[i], targets.index_select(0, index.view(1)).squeeze(0), mask));
    match.push_back(index);
  }
  return {torch::stack(best).sum(), torch::stack(match)};
}

std::vector<int64_t> cofi_teacher_layers(int64_t L) {
  std::vector<int64_t> out;
  for (int k = 1; k <= 4; ++k) {
    auto j = static_cast<int64_t>(std::lround(static_cast<double>(L * k) / 4.0));
    if (j >= 1 && (out.empty() || out.back() != j)) out.push_back(j);
  }
  return out;
}

LayerDistill cofi_layer_distill(const std::vector<torch::Tensor>& student, const std::vector<torch::Tensor>& teacher,
                                const torch::Tensor& mask, const torch::Tensor& exists) {
  SCULPT_CHECK(student.size() >= 2 && teacher.size() >= 2, "CoFi layer distillation needs the layers' hidden states");
  const int64_t Ls = static_cast<int64_t>(student.size()) - 1;
  const auto layers = cofi_teacher_layers(static_cast<int64_t>(teacher.size()) - 1);
  const auto inf = std::numeric_limits<double>::infinity();
  auto device = student[1].device();
  auto candidates = torch::arange(Ls, torch::TensorOptions().dtype(torch::kLong).device(device));  // student layer s+1
  auto last = torch::full({}, Ls, candidates.options());
  torch::Tensor loss = torch::zeros({}, student[1].options());
  std::vector<torch::Tensor> match(layers.size());
  const auto stacked = torch::stack(std::vector<torch::Tensor>(student.begin() + 1, student.end()));  // [Ls, B, T, H]
  for (size_t k = layers.size(); k-- > 0;) {  // from the top teacher layer down
    const auto target = teacher[static_cast<size_t>(layers[k])].detach();
    torch::Tensor pick;
    {
      torch::NoGradGuard no_grad;  // choose without graphs; only the chosen loss gets one
      std::vector<torch::Tensor> costs;
      for (int64_t s = 1; s <= Ls; ++s) costs.push_back(masked_mse(student[static_cast<size_t>(s)], target, mask));
      auto barred = candidates >= last;
      if (exists.defined()) barred = barred.logical_or(exists.to(device) == 0);
      auto allowed = torch::stack(costs).masked_fill(barred, inf);
      // Nothing below the previous match left: CoFi keeps the previous one.
      pick = torch::where(last > 0, allowed.argmin(), last.clamp_max(Ls - 1));
    }
    loss = loss + masked_mse(stacked.index_select(0, pick.view(1)).squeeze(0), target, mask);
    match[k] = pick + 1;
    last = pick;
  }
  return {loss, torch::stack(match)};
}

}  // namespace sculpt::compress
