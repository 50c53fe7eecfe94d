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
// Counts of the nonzero entries of deterministic masks.
nlohmann::json kept_sizes(const Sp3Masks& masks);
std::string describe_kept(const nlohmann::json& kept);

}  // namespace sculpt::compress
