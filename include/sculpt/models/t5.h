// T5 (encoder-decoder) on the shared core: RMS norm without bias, relative position buckets
// (bias computed in the first block of each stack, bidirectional in the encoder, causal in
// the decoder), unscaled attention, cross-attention; v1.0 (ReLU, tied embeddings with the
// d_model^-0.5 output scale) and v1.1 (gated-GELU, untied lm_head).
#pragma once
#include <torch/nn.h>

#include "sculpt/models/config.h"
#include "sculpt/models/key_map.h"
#include "sculpt/models/layers.h"
#include "sculpt/models/outputs.h"

namespace sculpt::models {

TransformerConfig t5_config_from_json(const nlohmann::json& j, const std::string& source = "config.json");

// One block: self-attention, cross-attention (decoder), FFN, each pre-RMS-norm with a residual.
// A packed block (SHAPE) may lack any of them, keep some heads (reading their rows of the
// stack's relative bias, `bias_heads`) and fewer dims.
struct T5BlockImpl : torch::nn::Module {
  // IN: the stream's width before the block; MEMORY: the encoder output's (both hidden_size
  // unless per-site packed: SHAPE's attn_from/cross_from/ffn_from give the widths after each block).
  T5BlockImpl(const TransformerConfig& c, bool decoder, const LayerShape& shape, int64_t in, int64_t memory);
  // self/cross: per-block caches during generation (may be null); MASKS: a masked student's.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& self_bias, const torch::Tensor& memory,
                        const torch::Tensor& cross_bias, torch::Tensor* self_probs, torch::Tensor* cross_probs,
                        KVCache* self_cache, KVCache* cross_cache, const LayerMasks* masks = nullptr);
  Attention self_attn{nullptr}, cross_attn{nullptr};
  RMSNorm self_norm{nullptr}, cross_norm{nullptr}, ffn_norm{nullptr};
  FeedForward ffn{nullptr};
  Dropout dropout{nullptr};
  SiteShortcut self_site, cross_site, ffn_site;  // per-site packed only (models/layers.h)
  bool decoder;  // a decoder block: its sites follow self-attention, cross-attention and the FFN
  std::vector<int64_t> bias_heads;  // empty: every head of the bias, in order
  // bias_heads as an index, moved to the bias's device on first use (not at every step).
  torch::Tensor bias_index;
};
TORCH_MODULE(T5Block);

struct T5StackImpl : torch::nn::Module {
  T5StackImpl(const TransformerConfig& c, bool decoder);
  // Relative position bias [1, H, Tq, Tk] for queries starting at `offset`.
  torch::Tensor position_bias(int64_t q_len, int64_t k_len, int64_t offset, const torch::Device& device) const;

  bool decoder;
  int64_t buckets, max_distance;
  torch::nn::Embedding rel_bias{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  RMSNorm final_norm{nullptr};
  Dropout dropout{nullptr};
};
TORCH_MODULE(T5Stack);

struct T5Cache {
  std::vector<KVCache> self, cross;
  int64_t length = 0;
};

struct T5Impl : torch::nn::Module {
  explicit T5Impl(TransformerConfig config);
  struct Output {
    torch::Tensor loss, logits, encoder_last_hidden_state;
    std::vector<torch::Tensor> encoder_hidden_states, encoder_attentions, decoder_hidden_states, decoder_attentions,
        cross_attentions;
    std::map<std::string, torch::Tensor> named() const;
  };
  Output forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, torch::Tensor decoder_input_ids,
                 const torch::Tensor& decoder_attention_mask, const torch::Tensor& labels,
                 const ForwardOptions& options = {});
  // Encoder pass, returning (hidden, extended mask) for decoding.
  torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Output* out,
                       const ForwardOptions& options);
  // Decoder pass over `ids` (after `cache->length` cached positions when cache is given).
  torch::Tensor decode(const torch::Tensor& ids, const torch::Tensor& decoder_mask, const torch::Tensor& memory,
                       const torch::Tensor& memory_mask, Output* out, const ForwardOptions& options, T5Cache* cache);
  torch::Tensor lm_logits(const torch::Tensor& decoder_output);
  torch::Tensor shift_right(const torch::Tensor& labels) const;
  // Greedy decoding with a key/value cache, as HF generate(do_sample=False, num_beams=1).
  // Returns generated ids [B, 1 + steps] (starting with decoder_start) and the raw scores [steps, B, V].
  std::pair<torch::Tensor, torch::Tensor> generate(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                   int64_t max_new_tokens, const ModelMasks* masks = nullptr);

  TransformerConfig config;
  torch::nn::Embedding shared{nullptr};
  T5Stack encoder{nullptr}, decoder{nullptr};
  models::Linear lm_head{nullptr};  // untied models only
};
TORCH_MODULE(T5);

KeyMap t5_key_map(const TransformerConfig& c);

// config.json for C (raw keys kept; a sliced model's d_model and its sculpt_rotated block).
nlohmann::json t5_config_to_json(const TransformerConfig& c);
// A strict load of a T5 directory (HF's, or a sliced or packed one that sculpt wrote), and the write.
T5 load_t5(const std::string& dir);
void save_t5(T5& model, const std::string& dir);

}  // namespace sculpt::models
