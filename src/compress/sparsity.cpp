#include "sculpt/compress/sparsity.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"

namespace sculpt::compress {

torch::Tensor sp3_expected_params(const Sp3KeepProbs& p) {
  const int64_t L = p.head.size(0);
  SCULPT_CHECK(p.hidden.size(0) == 2 * L + 1, "SP3 sparsity: {} hidden sites for {} layers (need 2L+1)", p.hidden.size(0), L);
  auto site = p.hidden.sum(1);  // expected kept dims per LN site
  torch::Tensor total = torch::zeros({}, p.hidden.options());
  for (int64_t l = 0; l < L; ++l) {
    auto h0 = site[2 * l], h1 = site[2 * l + 1], h2 = site[2 * l + 2];
    auto heads = p.head[l].sum() * p.mha[l];  // expected live heads
    auto qk = p.qk[l].sum() * heads, vo = p.vo[l].sum() * heads;
    auto attention = 2 * h0 * qk + h0 * vo + h1 * vo;   // Q and K, V, O
    auto ffn = (h1 + h2) * p.ffn[l].sum() * p.ffn_layer[l];  // W1 and W2
    auto residual = h0 * h1 + h1 * h2;                     // the two residual maps
    total = total + attention + ffn + residual;
  }
  return total;
}

double sp3_dense_params(const EncoderShape& s) {
  const double D = static_cast<double>(s.hidden), F = static_cast<double>(s.ffn);
  return (4 * D * D + 2 * D * F) * static_cast<double>(s.layers);
}

torch::Tensor sp3_expected_remaining(const Sp3KeepProbs& p, const EncoderShape& s) {
  return sp3_expected_params(p) / sp3_dense_params(s);
}

double cofi_prunable_params(const EncoderShape& s) {
  const double D = static_cast<double>(s.hidden), F = static_cast<double>(s.ffn);
  return static_cast<double>(s.layers) * ((4 * D * D + 4 * D) + (2 * D * F + D + 4 * D));
}

torch::Tensor cofi_expected_params(const CofiKeepProbs& p, const EncoderShape& s) {
  const double D = static_cast<double>(s.hidden), H = static_cast<double>(s.heads);
  auto head_score = p.head * p.head_layer.unsqueeze(1);  // [L, H]
  auto ffn_score = p.ffn * p.ffn_layer.unsqueeze(1);     // [L, F]
  if (p.hidden.defined()) {
    auto kept_hidden = p.hidden.sum();
    return kept_hidden * head_score.sum() * ((4 * D * D + 4 * D) / (H * D)) + 2 * kept_hidden * ffn_score.sum();
  }
  // No hidden pruning: whole heads and FFN dims, with CoFi's integer per-unit counts.
  const double per_head = std::floor((4 * D * D + 4 * D) / H);
  const double per_ffn_dim = std::floor((2 * D * static_cast<double>(s.ffn) + 5 * D) / static_cast<double>(s.ffn));
  return head_score.sum() * per_head + ffn_score.sum() * per_ffn_dim;
}

torch::Tensor cofi_expected_sparsity(const CofiKeepProbs& p, const EncoderShape& s) {
  return 1 - cofi_expected_params(p, s) / cofi_prunable_params(s);
}

}  // namespace sculpt::compress
