#include "sculpt/compress/prune_report.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace sculpt::compress {

std::map<std::string, double> sparsity_report(const models::PackedBertConfig& packed, const EncoderShape& s) {
  auto c = models::count_packed(packed);
  const double D = static_cast<double>(s.hidden), F = static_cast<double>(s.ffn), L = static_cast<double>(s.layers);
  const double dense = (4 * D * D + 2 * D * F) * L;
  return {{"packed_remaining", static_cast<double>(c.matrices) / dense},
          {"packed_remaining_no_residual", static_cast<double>(c.matrices - c.residual) / dense},
          {"packed_sparsity", 1 - static_cast<double>(c.matrices - c.residual) / dense},
          {"packed_encoder_weights", static_cast<double>(c.matrices)},
          {"packed_parameters", static_cast<double>(c.total_parameters)}};
}

std::string input_independence(const models::PackedBertConfig& packed) {
  if (packed.embedding_dim == 0) return "the embedding site keeps no dims";
  bool attends = false;
  for (size_t l = 0; l < packed.layers.size(); ++l) {
    const auto& d = packed.layers[l];
    if (d.attn_dim == 0) return fmt::format("layer {}: the attention site keeps no dims", l);
    if (d.out_dim == 0) return fmt::format("layer {}: the FFN site keeps no dims", l);
    attends |= d.heads > 0 && d.vo_dim > 0;
  }
  if (!attends) return "no attention head is left in any layer, so [CLS] never sees the other tokens";
  return {};
}

nlohmann::json kept_sizes(const Sp3Masks& m) {
  auto counts = [](const torch::Tensor& t, int64_t per_row_div = 1) {
    std::vector<int64_t> out;
    if (!t.defined()) return out;
    auto n = (t.detach().to(torch::kCPU).reshape({t.size(0), -1}) != 0).sum(1);
    for (int64_t i = 0; i < n.size(0); ++i) out.push_back(n[i].item<int64_t>() / per_row_div);
    return out;
  };
  nlohmann::json j;
  j["hidden"] = counts(m.hidden);
  if (m.qk.defined() && m.head.defined()) {
    const int64_t H = m.head.size(1);
    j["qk_dims"] = counts(m.qk, H);  // per head (tiled pattern)
    j["vo_dims"] = counts(m.vo, H);
  }
  j["heads"] = counts(m.head);
  j["ffn"] = counts(m.ffn);
  j["mha"] = counts(m.mha.defined() ? m.mha.view({-1, 1}) : torch::Tensor());
  j["ffn_layer"] = counts(m.ffn_layer.defined() ? m.ffn_layer.view({-1, 1}) : torch::Tensor());
  if (m.cross_head.defined()) {  // the last layers' cross-attention
    j["cross_heads"] = counts(m.cross_head);
    j["cross_mha"] = counts(m.cross_mha.view({-1, 1}));
    if (m.cross_qk.defined()) j["cross_qk_dims"] = counts(m.cross_qk, m.cross_head.size(1)), j["cross_vo_dims"] = counts(m.cross_vo, m.cross_head.size(1));
  }
  return j;
}

std::string describe_kept(const nlohmann::json& k) {
  auto list = [&](const char* key) {
    return k.contains(key) ? fmt::format("{}", fmt::join(k[key].get<std::vector<int64_t>>(), ",")) : std::string("-");
  };
  return fmt::format("hidden [{}] heads [{}] qk [{}] vo [{}] ffn [{}] mha [{}] ffnL [{}]", list("hidden"), list("heads"), list("qk_dims"),
                     list("vo_dims"), list("ffn"), list("mha"), list("ffn_layer"));
}

}  // namespace sculpt::compress
