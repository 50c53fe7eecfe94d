// What a pruning run reports: the packed model's real size next to the expected one, and the
// kept sizes per structure (hidden dims per site, heads, head dims, FFN neurons, layers).
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "sculpt/compress/sp3_bert.h"
#include "sculpt/models/packed_bert.h"

namespace sculpt::compress {

// packed_remaining: SP3's remaining fraction (residual maps included) of the packed model;
// packed_remaining_no_residual; packed_sparsity: CoFi's pruned fraction of the encoder's
// weight matrices (no residual maps); packed_encoder_weights: the count itself.
std::map<std::string, double> sparsity_report(const models::PackedBertConfig& packed, const EncoderShape& shape);
// Why a packed shape cannot depend on its input, or "" when it can: a residual site (or the
// embeddings) pruned to nothing passes only biases on; with no attention head (with a value
// dim) in any layer, the pooled [CLS] token never sees another token. Such a model scores the
// majority class at best and is never chosen as a pruning run's best.
std::string input_independence(const models::PackedBertConfig& packed);
// Counts of the nonzero entries of deterministic masks.
nlohmann::json kept_sizes(const Sp3Masks& masks);
std::string describe_kept(const nlohmann::json& kept);

}  // namespace sculpt::compress
