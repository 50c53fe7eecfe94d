// OPT (decoder-only) on the shared core: pre- or post-LayerNorm blocks, learned positions
// offset by 2 and computed from the attention mask, ReLU FFN, project_in/project_out when
// word_embed_proj_dim != hidden_size, tied lm_head; causal LM and sequence classification. A
// rotated (and sliced) pre-LN OPT from compress/rotate.h is the same model with RMS norms.
#pragma once
#include <torch/nn.h>

#include "sculpt/models/config.h"
#include "sculpt/models/key_map.h"
#include "sculpt/models/layers.h"
#include "sculpt/models/outputs.h"

namespace sculpt::models {

TransformerConfig opt_config_from_json(const nlohmann::json& j, const std::string& source = "config.json");

struct OptCache {
  std::vector<KVCache> layers;
  int64_t length = 0;
};

struct OptImpl : torch::nn::Module {
  explicit OptImpl(TransformerConfig config);
  struct Output {
    torch::Tensor loss, logits;
    std::vector<torch::Tensor> hidden_states, attentions;
    std::map<std::string, torch::Tensor> named() const;
  };
  Output forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, const torch::Tensor& labels,
                 const ForwardOptions& options = {});
  // The decoder stack over input_ids; attention_mask covers cached + new positions.
  torch::Tensor decode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Output* out,
                       const ForwardOptions& options, OptCache* cache);
  torch::Tensor lm_logits(const torch::Tensor& h);
  // Greedy decoding of left-padded prompts with a key/value cache (HF generate, greedy).
  // Returns prompt + new ids [B, T + steps] and the raw scores [steps, B, V]. MASKS: a masked student's.
  std::pair<torch::Tensor, torch::Tensor> generate(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                   int64_t max_new_tokens, const ModelMasks* masks = nullptr);

  TransformerConfig config;
  torch::nn::Embedding embed_tokens{nullptr}, embed_positions{nullptr};
  // A rotated model (config.rotated_norm_width > 0) has no norm modules; the final norm's bias
  // lives in the first map that reads it (project_out, else score or an untied lm_head).
  models::Linear project_in{nullptr}, project_out{nullptr}, score{nullptr}, lm_head{nullptr};
  torch::nn::LayerNorm final_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(Opt);

KeyMap opt_key_map(const TransformerConfig& c);

// The model's logits on BATCH (no loss) as the shared output type evaluators read; OPTIONS: a
// masked student's masks.
ModelOutput opt_logits(Opt& model, const Batch& batch, const ForwardOptions& options = {});

// config.json for C (raw keys kept; a rotated model's widths and its sculpt_rotated block).
nlohmann::json opt_config_to_json(const TransformerConfig& c);
// A strict load of an OPT directory (HF's, or a rotated one that sculpt wrote), and the write.
Opt load_opt(const std::string& dir);
void save_opt(Opt& model, const std::string& dir);

}  // namespace sculpt::models
