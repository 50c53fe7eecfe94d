// One-shot compressors for the decoder families (OPT, T5), shared by `sculpt compress` and the
// recipe methods (train/one_shot_run.h): heads and FFN neurons (or whole blocks) ranked by their
// scores, allocated to the target and packed by SP3's decoder packing (pack_decoder.h); or
// SliceGPT's slicing of the residual stream(s) along their principal directions after the exact
// rotation (rotate.h). The caller saves the model and adds where the examples came from.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "sculpt/compress/one_shot.h"
#include "sculpt/models/opt.h"
#include "sculpt/models/t5.h"

namespace sculpt::compress {

template <class M>
struct DecoderCompressed {
  M model{nullptr};
  nlohmann::json report;  // method, scores, target, kept, achieved (map weights and parameters before/after)
};

// O: the method (magnitude | activation | taylor), the share of the units removed, the allocation
// and the statistic (its cost model is BERT's and unread here; o.scores, when set, are used as
// they are). EXAMPLES: single unpadded batches, as the scores read them (magnitude: none; activation: any
// inputs; taylor: OPT's causal-LM text or a classifier's labelled rows; T5's input and target
// token ids, span-corrupted for zero-shot scores or a task's text-to-text pairs).
DecoderCompressed<models::Opt> prune_units(models::Opt& model, const std::vector<models::Batch>& examples, const PruneOneShotOptions& o);
DecoderCompressed<models::T5> prune_units(models::T5& model, const std::vector<models::Batch>& examples, const PruneOneShotOptions& o);

// The stream(s) sliced to round((1 - TARGET) D / ROUND_TO) ROUND_TO dims (at least ROUND_TO, at most
// D) along the principal directions over EXAMPLES (single unpadded batches). An OPT must be pre-LN.
DecoderCompressed<models::Opt> slice_stream(models::Opt& model, const std::vector<models::Batch>& examples, double target, int64_t round_to);
DecoderCompressed<models::T5> slice_stream(models::T5& model, const std::vector<models::Batch>& examples, double target, int64_t round_to);

int64_t parameter_count(torch::nn::Module& m);

}  // namespace sculpt::compress
