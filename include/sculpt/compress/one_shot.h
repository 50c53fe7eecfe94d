// One-shot compressors: a BERT classifier made smaller in minutes, with no mask training, as
// the baselines beside SP3 and CoFi (issue 13). Structured pruning of heads, FFN neurons or
// blocks from scores (structure_scores.h, allocation.h), and SliceGPT's training-free slicing
// of the hidden dimension along each site's principal components. Both go through the packing
// code of SP3 (pack.h), so their output is a PackedBert that every verb loads. OPT and T5 are
// pruned the same way through the shared layers' masks (unit_masks) and SP3's decoder packing
// (pack_decoder.h); `sculpt compress` (src/cli/cmd_compress.cpp) drives both.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "sculpt/compress/allocation.h"
#include "sculpt/compress/structure_scores.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/packed_bert.h"

namespace sculpt::compress {

struct Compressed {
  models::PackedBert model{nullptr};
  nlohmann::json report;  // compression.json's method-specific part and achieved sizes
};

struct PruneOneShotOptions {
  std::string method = "magnitude";  // magnitude | activation | taylor
  double target = 0.5;               // the fraction removed
  CostModel cost;
  AllocationOptions allocation;
  std::string statistic = "mean_abs";  // activation: mean_abs | apoz
  std::optional<StructureScores> scores;  // computed elsewhere (Taylor on a masked LM): used as they are
};
// `batches`: the inputs the activation scores read, or the labelled sample of the Taylor scores
// (magnitude reads none).
Compressed prune_one_shot(models::Bert& model, const std::vector<models::Batch>& batches, const PruneOneShotOptions& options);

struct SliceOptions {
  double fraction = 0.25;  // of the hidden dims removed at every site
  int64_t round_to = 8;    // kept dims rounded down to a multiple (SliceGPT's round_interval)
  CostModel cost;          // how the achieved size is also reported
};
// Every LN site rotated onto the principal components of its (centred) inputs, the exact PCA
// init of SP3 (pca.h, `exact`: at 0% the packed model computes what `model` computes), then its
// lowest-energy dims cut. `examples`: unpadded single-example batches; all their tokens count.
Compressed slice_hidden(models::Bert& model, const std::vector<models::Batch>& examples, const SliceOptions& options);

// Heads, neurons and (block granularity) whole blocks as the shared layers' masks, the stream
// kept whole: what pack_opt (compress/pack_decoder.h) packs a one-shot pruned OPT from.
models::ModelMasks unit_masks(const Sp3Masks& masks);

// compression.json's part common to every unit pruning (BERT's and the decoders'): the method,
// the scores' source, the target, the allocation and the kept sizes.
nlohmann::json unit_pruning_report(const PruneOneShotOptions& o, const StructureScores& scores, const Sp3Masks& masks);

// The packed model's size by both definitions (sparsity_report) and by `cost`.
nlohmann::json achieved_size(const models::PackedBertConfig& packed, const EncoderShape& shape, const CostModel& cost);

}  // namespace sculpt::compress
