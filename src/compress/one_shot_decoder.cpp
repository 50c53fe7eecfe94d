#include "sculpt/compress/one_shot_decoder.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "sculpt/compress/pack_decoder.h"
#include "sculpt/compress/rotate.h"
#include "sculpt/compress/structure_scores.h"
#include "sculpt/core/error.h"

namespace sculpt::compress {
namespace {

template <class M>
StructureScores magnitude(M& model) {
  auto s = group_by_unit(model, [](const torch::Tensor& w) { return w.pow(2); });
  s.source = "weights (squared L2 norm per head and per neuron)";
  return s;
}

// The attention and FFN map weights and all parameters, before and after.
nlohmann::json sizes(torch::nn::Module& before, torch::nn::Module& after) {
  const auto b = linear_map_weights(before), a = linear_map_weights(after);
  return {{"map_weights_before", b},
          {"map_weights_after", a},
          {"map_weights_remaining", static_cast<double>(a) / static_cast<double>(b)},
          {"parameters_before", parameter_count(before)},
          {"parameters_after", parameter_count(after)}};
}

template <class M, class Pack>
DecoderCompressed<M> finish(M& model, const StructureScores& scores, const PruneOneShotOptions& o, const Pack& pack) {
  const auto masks = allocate(scores, o.target, o.allocation);
  torch::NoGradGuard no_grad;
  DecoderCompressed<M> out;
  out.model = pack(model, unit_masks(masks));
  out.model->to(torch::kCPU);
  out.report = unit_pruning_report(o, scores, masks);
  out.report["achieved"] = sizes(*model, *out.model);
  return out;
}

int64_t kept_width(int64_t D, double target, int64_t round_to) {
  SCULPT_CHECK(target >= 0 && target < 1 && round_to >= 1, "slice: the target is the share of d_model removed, in [0, 1), and round_to >= 1");
  return std::clamp<int64_t>(std::llround((1 - target) * static_cast<double>(D) / static_cast<double>(round_to)) * round_to,
                             std::min(round_to, D), D);
}

template <class M, class Blocks>
DecoderCompressed<M> sliced(M& model, M sliced_model, int64_t keep, const Blocks& blocks) {
  DecoderCompressed<M> out;
  out.model = sliced_model;
  auto achieved = sizes(*model, *sliced_model);
  achieved["hidden_before"] = model->config.hidden_size;
  achieved["hidden_after"] = keep;
  // The blocks alone beside the whole: without a projection OPT's folded head is no longer the
  // tied embedding matrix, so a large vocabulary can outweigh the slicing.
  achieved["block_parameters_before"] = blocks(model);
  achieved["block_parameters_after"] = blocks(sliced_model);
  out.report = {{"method", "slice"}, {"target", 1 - static_cast<double>(keep) / static_cast<double>(model->config.hidden_size)},
                {"achieved", achieved}};
  return out;
}

}  // namespace

int64_t parameter_count(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

DecoderCompressed<models::Opt> prune_units(models::Opt& model, const std::vector<models::Batch>& examples, const PruneOneShotOptions& o) {
  const auto scores = o.scores              ? *o.scores
                      : o.method == "magnitude"    ? magnitude(model)
                      : o.method == "activation" ? activation_scores(model, examples, o.statistic)
                                                 : taylor_opt_scores(model, examples);
  return finish(model, scores, o, pack_opt);
}

DecoderCompressed<models::T5> prune_units(models::T5& model, const std::vector<models::Batch>& examples, const PruneOneShotOptions& o) {
  const auto scores = o.scores              ? *o.scores
                      : o.method == "magnitude"    ? magnitude(model)
                      : o.method == "activation" ? activation_scores(model, examples, o.statistic)
                                                 : taylor_t5_scores(model, examples);
  return finish(model, scores, o, pack_t5);
}

DecoderCompressed<models::Opt> slice_stream(models::Opt& model, const std::vector<models::Batch>& examples, double target, int64_t round_to) {
  const std::string problem = rotation_problem(model->config);
  SCULPT_CHECK(problem.empty(), "slice: {}", problem);
  torch::NoGradGuard no_grad;
  const int64_t keep = kept_width(model->config.hidden_size, target, round_to);
  return sliced(model, rotate_opt(model, stream_pca(model, examples), keep), keep,
                [](models::Opt& m) { return parameter_count(*m->layers); });
}

DecoderCompressed<models::T5> slice_stream(models::T5& model, const std::vector<models::Batch>& examples, double target, int64_t round_to) {
  torch::NoGradGuard no_grad;
  const int64_t keep = kept_width(model->config.hidden_size, target, round_to);
  return sliced(model, rotate_t5(model, stream_pca(model, examples), keep), keep,
                [](models::T5& m) { return parameter_count(*m->encoder->blocks) + parameter_count(*m->decoder->blocks); });
}

}  // namespace sculpt::compress
