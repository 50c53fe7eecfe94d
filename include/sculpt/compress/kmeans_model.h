// A whole model directory coded by k-means (compress/kmeans.h): every floating tensor of two or
// more dims with more entries than centroids becomes b-bit indices plus its codebook; the rest
// (biases, LayerNorms, a small classifier) is stored as it is. Any directory works, dense or
// packed, of any family: only its weight file changes (io/codebook_weights.h), so every verb
// loads the result. `sculpt compress --method kmeans` and the recipe's prune.method kmeans both
// come here.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "sculpt/compress/kmeans.h"

namespace sculpt::compress {

// Called before each tensor: (index, count, name).
using TensorProgress = std::function<void(int64_t, int64_t, const std::string&)>;

// Writes OUT/config.json and OUT's codebook weight file (not the tokenizer); returns the report
// (bits, tensors coded, bytes before and after, relative error of the coded tensors).
nlohmann::json code_model_kmeans(const std::string& dir, const std::string& out, const KMeansOptions& options,
                                 const torch::Device& device, const TensorProgress& progress = {});

}  // namespace sculpt::compress
