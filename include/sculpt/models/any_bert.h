// A BERT directory, dense (HF's layout) or packed by sculpt's pruning, behind one forward, so
// that `sculpt forward`, `sculpt eval` and `sculpt bench infer` take either.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "sculpt/io/hf_dir.h"
#include "sculpt/models/bert.h"
#include "sculpt/models/packed_bert.h"

namespace sculpt::models {

struct AnyBert {
  std::shared_ptr<torch::nn::Module> module;
  std::function<ModelOutput(const Batch&, const ForwardOptions&)> forward;
  std::function<void(const std::string&)> save;  // an HF-style directory of the same kind (float weights)
  TransformerConfig config;  // the original shape (for a packed model, its base)
  KeyMap keys;
  bool packed = false;
  std::string dir;
  int64_t int8_layers = 0;  // linear maps running int8 products (an int8 directory, models/int8_linear.h)
  // Moves the model to DEVICE (and its int8 kernels with it).
  void to(const torch::Device& device);
};

AnyBert load_any_bert(const std::string& dir, io::WeightFormat prefer = io::WeightFormat::safetensors);

}  // namespace sculpt::models
