#include "sculpt/models/outputs.h"

#include <fmt/format.h>
#include <torch/torch.h>

namespace sculpt::models {

Batch Batch::to(const torch::Device& device) const {
  auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device, /*non_blocking=*/true) : t; };
  return {move(input_ids), move(attention_mask), move(token_type_ids), move(labels), move(start_positions), move(end_positions),
          move(decoder_attention_mask), move(masked_positions)};
}

Batch Batch::pin_memory() const {
  auto pin = [](const torch::Tensor& t) { return t.defined() ? t.pin_memory() : t; };
  return {pin(input_ids), pin(attention_mask), pin(token_type_ids), pin(labels), pin(start_positions), pin(end_positions),
          pin(decoder_attention_mask), pin(masked_positions)};
}

std::map<std::string, torch::Tensor> ModelOutput::named() const {
  std::map<std::string, torch::Tensor> out;
  auto put = [&](const char* name, const torch::Tensor& t) {
    if (t.defined()) out[name] = t;
  };
  put("loss", loss);
  put("logits", logits);
  put("start_logits", start_logits);
  put("end_logits", end_logits);
  put("pooler_output", pooler_output);
  for (size_t i = 0; i < hidden_states.size(); ++i) out[fmt::format("hidden_states.{}", i)] = hidden_states[i];
  for (size_t i = 0; i < attentions.size(); ++i) out[fmt::format("attentions.{}", i)] = attentions[i];
  return out;
}

}  // namespace sculpt::models
