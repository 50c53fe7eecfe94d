// TransformerConfig: the one config type every family maps its config.json onto.
// Families differ in small, named places (norm placement, activation, positions, heads).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sculpt::models {

enum class HeadType { none, sequence_classification, question_answering, causal_lm, seq2seq_lm, masked_lm };

// The kept structure of one attention block of a packed model: its heads with their query/key
// and value widths, and whether the block is there at all (a removed block adds nothing to the
// stream). The scores keep the original head width's scaling.
struct AttentionShape {
  int64_t heads = 0, qk_dim = 0, vo_dim = 0;
  bool present = true;
  bool operator==(const AttentionShape&) const = default;
};

// One layer of a model packed from pruning masks: self-attention, cross-attention (T5's decoder
// blocks), the FFN's neurons; T5: the stack's relative-position bias heads that the kept
// self-attention heads read (empty: all, in order). A pre-norm layer packed from per-site stream
// masks (compress/pack_decoder.h) has a stream of its own width after each block: for each of
// its coordinates, the coordinate of the stream before the block that the residual carries over
// (-1: none; the block alone writes it); cross_from after a T5 decoder block's cross-attention.
// Empty: the stream keeps the config's width.
struct LayerShape {
  AttentionShape attn, cross;
  int64_t ffn_dim = 0;
  bool ffn = true;
  std::vector<int64_t> bias_heads;
  std::vector<int64_t> attn_from, ffn_from, cross_from;
  bool operator==(const LayerShape&) const = default;
};

struct TransformerConfig {
  std::string model_type = "bert";
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_layers = 12;
  int64_t num_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_positions = 512;
  int64_t type_vocab_size = 2;
  int64_t pad_token_id = 0;
  double norm_eps = 1e-12;
  std::string activation = "gelu";  // gelu (erf) | gelu_new (tanh) | relu
  bool pre_norm = false;            // BERT: post-norm residual blocks
  int64_t d_kv = 0;                 // per-head size; 0: hidden_size / num_heads (T5 sets it)
  bool bias = true;                 // linear biases (T5 has none)
  bool scale_attention = true;      // scores / sqrt(d_head) (T5 does not scale)
  bool gated_ffn = false;           // act(wi_0 x) * wi_1 x (T5 v1.1)
  double hidden_dropout = 0.1;
  double attention_dropout = 0.1;
  double ffn_dropout = 0;           // dropout between the FFN's two matmuls (T5)
  double classifier_dropout = -1;   // < 0: use hidden_dropout, as HF does for null
  double initializer_range = 0.02;

  // Encoder-decoder and decoder-only families.
  int64_t num_decoder_layers = 0;
  int64_t relative_buckets = 32, relative_max_distance = 128;  // T5
  bool tie_word_embeddings = true;
  // T5: scale the decoder output by d_model^-0.5 before the LM head. Older configs imply it by
  // tie_word_embeddings (v1.0 yes, v1.1 no); Transformers 5 ties always and says it here.
  bool scale_decoder_outputs = true;
  int64_t eos_token_id = -1, bos_token_id = -1, decoder_start_token_id = -1;
  int64_t word_embed_proj_dim = 0;  // OPT: != hidden_size adds project_in / project_out
  bool final_norm = true;           // OPT: a final layer norm after the stack

  // A pre-norm model whose residual stream was rotated exactly (compress/rotate.h, SliceGPT):
  // its norms are RMS norms without affine over this width (the original d_model, also when
  // the stream is sliced narrower), their affines folded into the maps that read them. 0: the
  // family's own norms.
  int64_t rotated_norm_width = 0;

  // A packed model (compress/pack_decoder.h): one shape per layer; empty: every layer is full.
  std::vector<LayerShape> layer_shapes;

  HeadType head = HeadType::sequence_classification;
  bool with_pooler = true;
  int64_t num_labels = 2;
  std::string problem_type;  // "" (infer) | regression | single_label_classification

  nlohmann::json raw;  // the config.json this came from, written back on export

  int64_t head_dim() const { return d_kv > 0 ? d_kv : hidden_size / num_heads; }
  LayerShape layer_shape(size_t i) const {
    if (i < layer_shapes.size()) return layer_shapes[i];
    const AttentionShape full{num_heads, head_dim(), head_dim(), true};
    return {full, full, intermediate_size, true, {}, {}, {}, {}};
  }
  // The stream's width entering layer I of the stack whose layers start at FIRST (I = the end:
  // after its last layer): per-site packed layers set their own; hidden_size everywhere else.
  // Every stack starts at hidden_size (T5's encoder and decoder share the embedding's site).
  int64_t stream_width(size_t i, size_t first = 0) const {
    int64_t w = hidden_size;
    for (size_t j = first; j < i && j < layer_shapes.size(); ++j)
      if (!layer_shapes[j].ffn_from.empty()) w = static_cast<int64_t>(layer_shapes[j].ffn_from.size());
    return w;
  }
  bool is_regression() const {
    return problem_type == "regression" || (problem_type.empty() && num_labels == 1);
  }
};

// Parse a BERT config.json (HF names). The head comes from `architectures` unless given. Every
// value is range-checked (config_check.h); SOURCE names the file (or recipe key) in messages.
TransformerConfig bert_config_from_json(const nlohmann::json& j, const std::string& source = "config.json");
// The config.json to write beside exported weights (HF names, `raw` keys kept).
nlohmann::json bert_config_to_json(const TransformerConfig& c);

}  // namespace sculpt::models
