// Forward latency of several models on one batch, measured together: round-robin passes
// (every model once per round) and the median per model, so that a slow spell of a shared
// machine hits all models alike instead of one. Used by `bench infer` and `table`.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "sculpt/models/any_bert.h"

namespace sculpt::train {

void sync(const torch::Device& device);  // waits for the GPU; nothing on CPU

// Median seconds of one no-grad forward of each net on `batch` (models in eval mode, on `device`).
std::vector<double> median_forward_seconds(std::vector<models::AnyBert>& nets, const models::Batch& batch, int steps,
                                           int warmup, const torch::Device& device);

}  // namespace sculpt::train
