#include "sculpt/compress/allocation.h"

#include <torch/torch.h>

#include <cmath>

#include "sculpt/core/error.h"

namespace sculpt::compress {
namespace {

void check_cost_model(const CostModel& m) {
  SCULPT_CHECK(m.of == "params" || m.of == "flops", "cost '{}': params or flops", m.of);
  SCULPT_CHECK(m.of == "params" || m.length > 0, "a FLOPs cost needs a positive length, got {}", m.length);
}

// Weight-matrix entries of a layer, or FLOPs: 2 T per entry plus 2 T^2 per query/key and value
// dim of the attention's scores and context.
double layer_cost(double matrices, double qk, double vo, const CostModel& m) {
  if (m.of == "params") return matrices;
  const double T = static_cast<double>(m.length);
  return 2 * T * matrices + 2 * T * T * (qk + vo);
}

// 0/1 keep masks removing the round(target * n) lowest of `scores` ([rows, n]) in each row
// (per_row) or among all entries.
torch::Tensor keep_highest(const torch::Tensor& scores, double target, bool per_row) {
  auto flat = per_row ? scores : scores.reshape({1, -1});
  const int64_t n = flat.size(1), drop = std::llround(target * static_cast<double>(n));
  auto keep = torch::ones_like(flat, torch::kFloat32);
  if (drop > 0) {
    // A stable sort keeps equal scores in position order; the first `drop` go.
    auto order = std::get<1>(flat.sort(/*stable=*/true, 1, /*descending=*/false));
    keep.scatter_(1, order.narrow(1, 0, drop), 0.0f);
  }
  return keep.view(scores.sizes());
}

}  // namespace

double dense_cost(const EncoderShape& s, const CostModel& m) {
  check_cost_model(m);
  const double D = static_cast<double>(s.hidden), F = static_cast<double>(s.ffn), inner = static_cast<double>(s.heads * s.head_dim);
  return static_cast<double>(s.layers) * layer_cost(4 * D * inner + 2 * D * F, inner, inner, m);
}

double packed_cost(const models::PackedBertConfig& c, const CostModel& m) {
  check_cost_model(m);
  double total = 0;
  int64_t d_in = c.embedding_dim;
  for (const auto& l : c.layers) {
    const double qk = static_cast<double>(l.heads * l.qk_dim), vo = static_cast<double>(l.heads * l.vo_dim);
    // A diagonal residual map is an elementwise scale, not a matrix product: not counted.
    const double residual = c.diagonal_residual ? 0.0 : static_cast<double>(l.attn_dim * d_in + l.out_dim * l.attn_dim);
    const double matrices = 2 * qk * static_cast<double>(d_in) + vo * static_cast<double>(d_in) + static_cast<double>(l.attn_dim) * vo +
                            static_cast<double>(l.ffn_dim) * static_cast<double>(l.attn_dim + l.out_dim) + residual;
    total += layer_cost(matrices, qk, vo, m);
    d_in = l.out_dim;
  }
  return total;
}

Sp3Masks allocate(const StructureScores& scores, double target, const AllocationOptions& o) {
  SCULPT_CHECK(target >= 0 && target <= 1, "target {} is not a fraction in [0, 1] (the share removed)", target);
  SCULPT_CHECK(o.scope == "global" || o.scope == "per_layer", "scope '{}': global or per_layer", o.scope);
  const bool per_layer = o.scope == "per_layer";
  Sp3Masks m;
  if (o.granularity == "units") {
    m.head = keep_highest(scores.head, target, per_layer);
    m.ffn = keep_highest(scores.ffn, target, per_layer);
  } else if (o.granularity == "blocks") {
    SCULPT_CHECK(!per_layer, "blocks are ranked globally (a layer has one block of each kind)");
    m.mha = keep_highest(scores.head.sum(1), target, false);
    m.ffn_layer = keep_highest(scores.ffn.sum(1), target, false);
  } else {
    fail("granularity '{}': units or blocks", o.granularity);
  }
  return m;
}

}  // namespace sculpt::compress
