// Model inputs and outputs, named as Hugging Face names them.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

namespace sculpt::models {

struct Batch {
  torch::Tensor input_ids, attention_mask, token_type_ids;
  torch::Tensor labels, start_positions, end_positions;
  torch::Tensor decoder_attention_mask;  // T5: the labels' mask (decoder inputs are the shifted labels)
  // Masked LM: flat indices into [B*T] of the masked tokens; the head then runs on those rows
  // only and `labels` holds their ids ([N]). Undefined: logits for every token, labels [B, T]
  // with -100 where no loss is taken (HF's form).
  torch::Tensor masked_positions;
  // Copies to `device`, asynchronously from pinned memory.
  Batch to(const torch::Device& device) const;
  // Page-locked copies, so that a later to(cuda) does not block the host.
  Batch pin_memory() const;
  int64_t size() const { return input_ids.size(0); }
};

struct ModelMasks;  // models/layers.h

struct ForwardOptions {
  bool hidden_states = false;
  bool attentions = false;
  // A masked student's structure masks (pre-norm families through the shared layers); null: none.
  const ModelMasks* masks = nullptr;
};

struct ModelOutput {
  torch::Tensor loss, logits, start_logits, end_logits, pooler_output;
  std::vector<torch::Tensor> hidden_states, attentions;
  // HF field names: loss, logits, hidden_states.0, attentions.1, pooler_output, ...
  std::map<std::string, torch::Tensor> named() const;
};

}  // namespace sculpt::models
