// The weight matrices a recipe section names by regexes over HF names (sparsity:, quantize:):
// 2-D parameters whose HF name matches INCLUDE and not EXCLUDE, in the key map's order.
#pragma once
#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "sculpt/models/key_map.h"

namespace sculpt::train {

struct SelectedWeight {
  std::string hf, internal;
  torch::Tensor weight;
};

// None matching is an error naming SECTION ("sparsity.include") and the pattern.
std::vector<SelectedWeight> select_weights(torch::nn::Module& module, const models::KeyMap& keys, const std::string& include,
                                           const std::string& exclude, const std::string& section);

}  // namespace sculpt::train
