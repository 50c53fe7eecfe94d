// HF key <-> internal parameter name tables, loading with a report of every missing and
// unexpected key at once, and export back to HF keys (state-dict invariance).
#pragma once
#include <torch/nn/module.h>

#include <string>
#include <utility>
#include <vector>

#include "sculpt/io/safetensors.h"

namespace sculpt::models {

struct KeyPair {
  std::string hf, internal;
  // A tied duplicate (e.g. lm_head.weight of a tied model): accepted when present (and used
  // if the primary key is absent), never reported missing, never written on export.
  bool alias = false;
};
// In HF named_parameters() order (the order grad norms are reported in).
using KeyMap = std::vector<KeyPair>;

struct LoadReport {
  std::vector<std::string> missing;     // HF keys the model needs that the weights lack
  std::vector<std::string> unexpected;  // weight keys the model does not use
  std::string describe(const std::string& source) const;
};

// Copy weights into the module's parameters; returns what was missing/unexpected.
// `ignorable` keys (non-persistent buffers HF sometimes stores) are never reported.
// A weight of the parameter's dtype and device becomes its storage (set_data, no copy: the pages
// of a memory-mapped safetensors file are never duplicated), so pass tensors read for this load
// alone (a file just read), never another live model's parameters.
LoadReport load_state(torch::nn::Module& module, const KeyMap& map, const io::TensorMap& weights,
                      const std::vector<std::string>& ignorable = {});
io::TensorMap export_state(torch::nn::Module& module, const KeyMap& map);

}  // namespace sculpt::models
