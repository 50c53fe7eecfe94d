#include "sculpt/compress/one_shot.h"

#include <torch/torch.h>

#include <limits>

#include "sculpt/compress/pack.h"
#include "sculpt/compress/pca.h"
#include "sculpt/compress/prune_report.h"
#include "sculpt/core/error.h"
#include "sculpt/core/log.h"

namespace sculpt::compress {
namespace {

EncoderShape shape_of(const models::TransformerConfig& c) {
  return {c.num_layers, c.hidden_size, c.num_heads, c.head_dim(), c.intermediate_size};
}

}  // namespace

nlohmann::json achieved_size(const models::PackedBertConfig& packed, const EncoderShape& shape, const CostModel& cost) {
  nlohmann::json j = sparsity_report(packed, shape);
  j["cost"] = cost.of;
  if (cost.of == "flops") j["length"] = cost.length;
  j["cost_remaining"] = packed_cost(packed, cost) / dense_cost(shape, cost);
  return j;
}

Compressed prune_one_shot(models::Bert& model, const std::vector<models::Batch>& batches, const PruneOneShotOptions& o) {
  // The plain model behind the masks: identity compactors, LayerNorms with their own affine.
  Sp3Bert student(model, StudentOptions{/*freeze_original=*/false, /*compactors=*/false, /*skip_empty_block_norm=*/false});
  student->to(model->parameters().front().device());
  StructureScores scores;
  if (o.scores) scores = *o.scores;
  else if (o.method == "magnitude") scores = magnitude_scores(student);
  else if (o.method == "activation") scores = activation_scores(student, batches, o.statistic);
  else if (o.method == "taylor") scores = taylor_scores(student, batches);
  else fail("one-shot pruning method '{}': magnitude, activation or taylor", o.method);
  const auto masks = allocate(scores, o.target, o.allocation);
  student->eval();
  Compressed out{pack_student(student, masks), {}};
  const auto shape = shape_of(model->config);
  out.report = unit_pruning_report(o, scores, masks);
  out.report["achieved"] = achieved_size(out.model->config, shape, o.cost);
  if (o.method == "activation") out.report["statistic"] = o.statistic;
  return out;
}

nlohmann::json unit_pruning_report(const PruneOneShotOptions& o, const StructureScores& scores, const Sp3Masks& masks) {
  return {{"method", o.method},       {"scores", scores.source},           {"target", o.target},
          {"granularity", o.allocation.granularity}, {"scope", o.allocation.scope}, {"kept", kept_sizes(masks)}};
}

models::ModelMasks unit_masks(const Sp3Masks& m) {
  models::ModelMasks out;
  // Unit granularity sets heads and neurons, block granularity the blocks' gates.
  const int64_t L = m.head.defined() ? m.head.size(0) : m.mha.size(0);
  for (int64_t l = 0; l < L; ++l) {
    models::LayerMasks lm;
    if (m.head.defined()) lm.attn.head = m.head[l];
    if (m.ffn.defined()) lm.neurons = m.ffn[l];
    if (m.mha.defined()) lm.attn.gate = m.mha[l];
    if (m.ffn_layer.defined()) lm.ffn = m.ffn_layer[l];
    out.layers.push_back(lm);
  }
  return out;
}

Compressed slice_hidden(models::Bert& model, const std::vector<models::Batch>& examples, const SliceOptions& o) {
  SCULPT_CHECK(o.fraction >= 0 && o.fraction < 1, "slice fraction {} is not in [0, 1)", o.fraction);
  SCULPT_CHECK(o.round_to >= 1, "round_to {} must be at least 1", o.round_to);
  SCULPT_CHECK(!examples.empty(), "slicing needs calibration examples for its principal components");
  const auto& c = model->config;
  const int64_t D = c.hidden_size;
  int64_t kept = static_cast<int64_t>((1.0 - o.fraction) * static_cast<double>(D) + 1e-9);
  kept -= kept % o.round_to;
  SCULPT_CHECK(kept > 0, "slicing {} of {} dims rounded to multiples of {} keeps none", o.fraction, D, o.round_to);
  Sp3Bert student(model, StudentOptions{/*freeze_original=*/true, /*compactors=*/true, /*skip_empty_block_norm=*/false});
  student->to(model->parameters().front().device());
  PcaOptions pca;
  pca.mode = "exact";
  pca.tokens_per_example = std::numeric_limits<int64_t>::max();  // every token of every example
  pca.head_compactors = false;
  init_sp3_from_pca(student, collect_sp3_moments(student, examples, pca), pca);
  student->eval();
  // Each site's coordinates are its components by descending energy: keep the first `kept`.
  Sp3Masks masks;
  masks.hidden = torch::zeros({student->num_sites(), D});
  masks.hidden.narrow(1, 0, kept).fill_(1.0f);
  masks.hidden = masks.hidden.to(model->parameters().front().device());
  Compressed out{pack_student(student, masks), {}};
  int64_t tokens = 0;
  for (const auto& e : examples) tokens += e.input_ids.numel();
  out.report = {{"method", "slice"},
                {"scores", fmt::format("principal components of each LayerNorm site's centred inputs over {} tokens of {} examples",
                                       tokens, examples.size())},
                {"target", o.fraction},
                {"hidden_kept", kept},
                {"kept", kept_sizes(masks)},
                {"achieved", achieved_size(out.model->config, shape_of(c), o.cost)}};
  return out;
}

}  // namespace sculpt::compress
