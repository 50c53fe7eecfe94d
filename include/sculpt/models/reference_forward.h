// The computation behind `sculpt forward`: load an HF directory, run the model in eval mode
// in fp32 on CPU on the given inputs, return every output under its HF name plus
// `grad_norms` (per-parameter gradient L2 norms after backward of the loss, in HF
// named_parameters order).
#pragma once
#include <string>
#include <vector>

#include "sculpt/io/hf_dir.h"

namespace sculpt::models {

struct ReferenceForward {
  io::TensorMap outputs;
  std::vector<std::string> grad_norm_names;
};

// For T5 and OPT causal LMs, `gen_input_ids` (+ `gen_attention_mask`) in the inputs also
// runs greedy generation: outputs `generated_ids` and `generate_scores`.
ReferenceForward reference_forward(const std::string& model_dir, const io::TensorMap& inputs,
                                   io::WeightFormat prefer = io::WeightFormat::safetensors, int64_t max_new_tokens = 8);

}  // namespace sculpt::models
