#include "sculpt/models/t5.h"

#include <torch/torch.h>

#include <cmath>

#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/hf_model.h"

namespace sculpt::models {

TransformerConfig t5_config_from_json(const nlohmann::json& j, const std::string& source) {
  SCULPT_CHECK(j.is_object(), "{}: expected a JSON object", source);
  TransformerConfig c;
  c.raw = j;
  c.model_type = "t5";
  c.vocab_size = config_int(j, "vocab_size", 32128, 1, kMaxVocab, source);
  c.hidden_size = config_int(j, "d_model", 512, 1, kMaxWidth, source);
  c.d_kv = config_int(j, "d_kv", 64, 1, kMaxWidth, source);
  c.intermediate_size = config_int(j, "d_ff", 2048, 1, kMaxFfn, source);
  c.num_layers = config_int(j, "num_layers", 6, 1, kMaxLayers, source);
  c.num_decoder_layers = config_int(j, "num_decoder_layers", c.num_layers, 1, kMaxLayers, source);
  c.num_heads = config_int(j, "num_heads", 8, 1, kMaxWidth, source);
  SCULPT_CHECK(c.num_heads * c.d_kv <= kMaxWidth * 4, "{}: num_heads {} x d_kv {} = {} exceeds {}", source, c.num_heads,
               c.d_kv, c.num_heads * c.d_kv, kMaxWidth * 4);
  c.relative_buckets = config_int(j, "relative_attention_num_buckets", 32, 1, kMaxWidth, source);
  c.relative_max_distance = config_int(j, "relative_attention_max_distance", 128, 1, kMaxPositions, source);
  c.hidden_dropout = c.attention_dropout = c.ffn_dropout = config_real(j, "dropout_rate", 0.1, 0, 1, source);
  c.norm_eps = config_real(j, "layer_norm_epsilon", 1e-6, 0, 1, source);
  c.pad_token_id = config_int(j, "pad_token_id", 0, 0, c.vocab_size - 1, source);
  c.eos_token_id = config_int(j, "eos_token_id", 1, 0, c.vocab_size - 1, source);
  c.decoder_start_token_id = config_int(j, "decoder_start_token_id", c.pad_token_id, 0, c.vocab_size - 1, source);
  c.tie_word_embeddings = config_bool(j, "tie_word_embeddings", true, source);
  c.scale_decoder_outputs = config_bool(j, "scale_decoder_outputs", c.tie_word_embeddings, source);
  const std::string proj = config_string(j, "feed_forward_proj", "relu", source);
  c.gated_ffn = proj.rfind("gated-", 0) == 0;
  std::string act = c.gated_ffn ? proj.substr(6) : proj;
  if (act == "gelu") act = "gelu_new";  // HF maps gated-gelu to the tanh approximation
  c.activation = config_string(j, "dense_act_fn", act, source);
  SCULPT_CHECK(c.activation == "relu" || c.activation == "gelu_new" || c.activation == "gelu",
               "{}: T5 activation '{}' is not supported (relu, gelu, gelu_new)", source, c.activation);
  c.bias = false;
  c.scale_attention = false;
  c.pre_norm = true;
  c.head = HeadType::seq2seq_lm;
  // A stream sliced by compress/rotate.h or by packing: norms over the original width.
  c.rotated_norm_width = rotated_norm_width_of(j, c.hidden_size, source);
  c.layer_shapes = layer_shapes_of(j, c, c.num_layers + c.num_decoder_layers, source);  // packed: encoder's, then decoder's
  check_parameter_budget(c, source);
  return c;
}

nlohmann::json t5_config_to_json(const TransformerConfig& c) {
  nlohmann::json j = c.raw;
  j["d_model"] = c.hidden_size;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["scale_decoder_outputs"] = c.scale_decoder_outputs;
  write_rotated_block(j, c);
  write_layer_shapes(j, c.layer_shapes);
  return j;
}

T5 load_t5(const std::string& dir) {
  const std::string path = dir + "/config.json";
  T5 model(t5_config_from_json(io::read_json(path), path));
  check_config_against_weights(model->config, dir, path, /*packed=*/!model->config.layer_shapes.empty());
  load_checkpoint(*model, t5_key_map(model->config), io::load_hf_weights(dir), dir, /*strict=*/true);
  return model;
}

void save_t5(T5& model, const std::string& dir) { save_hf(*model, t5_key_map(model->config), t5_config_to_json(model->config), dir); }

T5BlockImpl::T5BlockImpl(const TransformerConfig& c, bool decoder_, const LayerShape& shape, int64_t in, int64_t memory)
    : decoder(decoder_), bias_heads(shape.bias_heads) {
  // The widths along the stream: before the block, after self-attention, after cross-attention, after the FFN.
  const bool per_site = !shape.attn_from.empty();
  auto after = [&](const std::vector<int64_t>& from, int64_t before) { return from.empty() ? before : static_cast<int64_t>(from.size()); };
  const int64_t w_self = after(shape.attn_from, in), w_cross = decoder ? after(shape.cross_from, w_self) : w_self;
  const int64_t w_out = after(shape.ffn_from, w_cross);
  SCULPT_CHECK(!per_site || c.rotated_norm_width > 0, "per-site stream widths need norms over the original width (a rotated or sliced T5)");
  if (per_site) {
    self_site.build(*this, "self_shortcut", shape.attn_from, in);
    if (decoder) cross_site.build(*this, "cross_shortcut", shape.cross_from, w_self);
    ffn_site.build(*this, "ffn_shortcut", shape.ffn_from, w_cross);
  }
  auto norm = [&](int64_t width) { return RMSNorm(width, c.norm_eps, c.rotated_norm_width); };
  if (shape.attn.present) {
    self_attn = register_module("self_attn", Attention(c, shape.attn, BlockIO{in, w_self}));
    self_norm = register_module("self_norm", norm(in));
  }
  if (decoder && shape.cross.present) {
    cross_attn = register_module("cross_attn", Attention(c, shape.cross, BlockIO{w_self, w_cross, true, memory}));
    cross_norm = register_module("cross_norm", norm(w_self));
  }
  if (shape.ffn) {
    ffn = register_module("ffn", FeedForward(c, shape.ffn_dim, BlockIO{w_cross, w_out}));
    ffn_norm = register_module("ffn_norm", norm(w_cross));
  }
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor T5BlockImpl::forward(const torch::Tensor& x, const torch::Tensor& self_bias, const torch::Tensor& memory,
                                   const torch::Tensor& cross_bias, torch::Tensor* self_probs, torch::Tensor* cross_probs,
                                   KVCache* self_cache, KVCache* cross_cache, const LayerMasks* masks) {
  const torch::Tensor none;
  // Per-site (models/layers.h): each block's output joins the residual carried into the next
  // site (a packed shortcut), and a student's site mask scales the sum; rows in stream order.
  auto h = self_site.forward(x);
  if (self_attn) {
    // A packed block's heads read their own rows of the relative bias.
    if (!bias_heads.empty() && (!bias_index.defined() || bias_index.device() != self_bias.device()))
      bias_index = torch::tensor(bias_heads, torch::kLong).to(self_bias.device());
    const auto bias = bias_heads.empty() ? self_bias : self_bias.index_select(1, bias_index);
    auto out = self_attn(self_norm(x), bias, self_probs, none, self_cache, masks ? &masks->attn : nullptr);
    h = h + dropout(masked_block_output(out, masks ? masks->attn.gate : none, masks));
  }
  h = at_site(h, masks, 0);
  if (decoder) {
    auto c = cross_site.forward(h);
    if (cross_attn) {
      auto out = cross_attn(cross_norm(h), cross_bias, cross_probs, memory, cross_cache, masks ? &masks->cross : nullptr);
      c = c + dropout(masked_block_output(out, masks ? masks->cross.gate : none, masks));
    }
    h = at_site(c, masks, 1);
  }
  auto y = ffn_site.forward(h);
  if (ffn) y = y + dropout(masked_block_output(ffn(ffn_norm(h), masks ? masks->neurons : none), masks ? masks->ffn : none, masks));
  return at_site(y, masks, decoder ? 2 : 1);
}

T5StackImpl::T5StackImpl(const TransformerConfig& c, bool decoder_)
    : decoder(decoder_), buckets(c.relative_buckets), max_distance(c.relative_max_distance) {
  rel_bias = register_module("rel_bias", torch::nn::Embedding(c.relative_buckets, c.num_heads));
  blocks = register_module("blocks", torch::nn::ModuleList());
  const int64_t n = decoder ? c.num_decoder_layers : c.num_layers;
  const size_t first = decoder ? static_cast<size_t>(c.num_layers) : 0;  // a packed config lists the encoder's blocks first
  // Per-site packed: each block starts at the width the one before it ends with; cross-attention
  // reads the encoder's output, at its last block's width.
  const int64_t memory = c.stream_width(static_cast<size_t>(c.num_layers));
  for (int64_t i = 0; i < n; ++i) {
    const size_t at = first + static_cast<size_t>(i);
    blocks->push_back(T5Block(c, decoder, c.layer_shape(at), c.stream_width(at, first), memory));
  }
  final_norm = register_module("final_norm", RMSNorm(c.stream_width(first + static_cast<size_t>(n), first), c.norm_eps, c.rotated_norm_width));
  dropout = register_module("dropout", Dropout(c.hidden_dropout));
}

torch::Tensor T5StackImpl::position_bias(int64_t q_len, int64_t k_len, int64_t offset, const torch::Device& device) const {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto context = torch::arange(offset, offset + q_len, opts).unsqueeze(1);
  auto memory = torch::arange(k_len, opts).unsqueeze(0);
  auto relative = memory - context;  // [q, k]
  int64_t n = buckets;
  auto bucket = torch::zeros_like(relative);
  if (!decoder) {  // bidirectional: half the buckets for each direction
    n /= 2;
    bucket = bucket + (relative > 0).to(torch::kLong) * n;
    relative = relative.abs();
  } else {
    relative = -torch::min(relative, torch::zeros_like(relative));
  }
  const int64_t max_exact = n / 2;
  auto is_small = relative < max_exact;
  auto large = max_exact + (torch::log(relative.to(torch::kFloat) / static_cast<double>(max_exact)) /
                            std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                            static_cast<double>(n - max_exact))
                               .to(torch::kLong);
  large = torch::min(large, torch::full_like(large, n - 1));
  bucket = bucket + torch::where(is_small, relative, large);
  return torch::embedding(rel_bias->weight, bucket).permute({2, 0, 1}).unsqueeze(0);  // [1, H, q, k]
}

T5Impl::T5Impl(TransformerConfig c) : config(std::move(c)) {
  shared = register_module("shared", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  encoder = register_module("encoder", T5Stack(config, false));
  decoder = register_module("decoder", T5Stack(config, true));
  if (!config.tie_word_embeddings)
    lm_head = register_module("lm_head", models::Linear(config.stream_width(static_cast<size_t>(config.num_layers + config.num_decoder_layers),
                                                                             static_cast<size_t>(config.num_layers)),
                                                         config.vocab_size, false));
}

torch::Tensor T5Impl::encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Output* out,
                             const ForwardOptions& options) {
  auto mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
  const ModelMasks* masks = options.masks;
  SCULPT_CHECK(!masks || static_cast<int64_t>(masks->layers.size()) == config.num_layers + config.num_decoder_layers,
               "{} block masks for {} + {} blocks", masks ? masks->layers.size() : 0, config.num_layers, config.num_decoder_layers);
  auto x = encoder->dropout(shared(input_ids));
  if (masks && masks->embed.defined()) x = x * masks->embed;
  const int64_t T = input_ids.size(1);
  auto bias = encoder->position_bias(T, T, 0, x.device()) + extended_attention_mask(mask, x.scalar_type());
  size_t i = 0;
  for (const auto& m : *encoder->blocks) {
    if (options.hidden_states && out) out->encoder_hidden_states.push_back(x);
    torch::Tensor probs;
    x = m->as<T5Block>()->forward(x, bias, {}, {}, options.attentions ? &probs : nullptr, nullptr, nullptr, nullptr,
                                  masks ? &masks->layers[i++] : nullptr);
    if (options.attentions && out) out->encoder_attentions.push_back(probs);
  }
  x = encoder->dropout(encoder->final_norm(x));
  if (options.hidden_states && out) out->encoder_hidden_states.push_back(x);
  return x;
}

torch::Tensor T5Impl::decode(const torch::Tensor& ids, const torch::Tensor& decoder_mask, const torch::Tensor& memory,
                             const torch::Tensor& memory_mask, Output* out, const ForwardOptions& options, T5Cache* cache) {
  const int64_t B = ids.size(0), Tq = ids.size(1), past = cache ? cache->length : 0, K = past + Tq;
  auto x = decoder->dropout(shared(ids));
  const ModelMasks* masks = options.masks;  // the decoder's blocks follow the encoder's
  if (masks && masks->embed.defined()) x = x * masks->embed;
  auto mask = decoder_mask.defined() ? decoder_mask : torch::ones({B, K}, ids.options());
  // Causal and padding mask together, 0 or dtype-min as HF builds it.
  auto causal = (torch::arange(K, ids.options()).unsqueeze(0) <= torch::arange(past, K, ids.options()).unsqueeze(1));
  auto allowed = causal.unsqueeze(0).unsqueeze(0).to(x.scalar_type()) * mask.unsqueeze(1).unsqueeze(2).to(x.scalar_type());
  auto self_bias = decoder->position_bias(Tq, K, past, x.device()) + (1.0 - allowed) * mask_min(x.scalar_type());
  auto cross_bias = extended_attention_mask(memory_mask.defined() ? memory_mask : torch::ones({B, memory.size(1)}, ids.options()),
                                            x.scalar_type());
  if (cache && cache->self.empty()) {
    cache->self.resize(decoder->blocks->size());
    cache->cross.resize(decoder->blocks->size());
  }
  size_t i = 0;
  for (const auto& m : *decoder->blocks) {
    if (options.hidden_states && out) out->decoder_hidden_states.push_back(x);
    torch::Tensor sp, cp;
    x = m->as<T5Block>()->forward(x, self_bias, memory, cross_bias, options.attentions ? &sp : nullptr,
                                  options.attentions ? &cp : nullptr, cache ? &cache->self[i] : nullptr,
                                  cache ? &cache->cross[i] : nullptr,
                                  masks ? &masks->layers[static_cast<size_t>(config.num_layers) + i] : nullptr);
    if (options.attentions && out) out->decoder_attentions.push_back(sp), out->cross_attentions.push_back(cp);
    ++i;
  }
  x = decoder->dropout(decoder->final_norm(x));
  if (options.hidden_states && out) out->decoder_hidden_states.push_back(x);
  if (cache) cache->length = K;
  return x;
}

torch::Tensor T5Impl::lm_logits(const torch::Tensor& h) {
  // d_model^-0.5 of the original width (a sliced stream's norms divide by it too).
  const int64_t d_model = config.rotated_norm_width > 0 ? config.rotated_norm_width : config.hidden_size;
  const auto x = config.scale_decoder_outputs ? h * std::pow(static_cast<double>(d_model), -0.5) : h;
  return config.tie_word_embeddings ? torch::matmul(x, shared->weight.t()) : lm_head(x);
}

torch::Tensor T5Impl::shift_right(const torch::Tensor& labels) const {
  auto shifted = torch::full_like(labels, config.decoder_start_token_id);
  shifted.narrow(1, 1, labels.size(1) - 1).copy_(labels.narrow(1, 0, labels.size(1) - 1));
  return shifted.masked_fill(shifted == -100, config.pad_token_id);
}

T5Impl::Output T5Impl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               torch::Tensor decoder_input_ids, const torch::Tensor& decoder_attention_mask,
                               const torch::Tensor& labels, const ForwardOptions& options) {
  Output out;
  auto memory = encode(input_ids, attention_mask, &out, options);
  out.encoder_last_hidden_state = memory;
  if (!decoder_input_ids.defined()) {
    SCULPT_CHECK(labels.defined(), "T5 needs decoder_input_ids or labels");
    decoder_input_ids = shift_right(labels);
  }
  auto h = decode(decoder_input_ids, decoder_attention_mask, memory, attention_mask, &out, options, nullptr);
  out.logits = lm_logits(h);
  if (labels.defined())
    out.loss = torch::nn::functional::cross_entropy(out.logits.reshape({-1, out.logits.size(-1)}), labels.reshape(-1),
                                                    torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  return out;
}

std::pair<torch::Tensor, torch::Tensor> T5Impl::generate(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                         int64_t max_new_tokens, const ModelMasks* masks) {
  torch::NoGradGuard no_grad;
  ForwardOptions options;
  options.masks = masks;
  auto memory = encode(input_ids, attention_mask, nullptr, options);
  const int64_t B = input_ids.size(0);
  auto ids = torch::full({B, 1}, config.decoder_start_token_id, input_ids.options());
  auto finished = torch::zeros({B}, input_ids.options().dtype(torch::kBool));
  T5Cache cache;
  std::vector<torch::Tensor> scores;
  auto next_input = ids;
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    auto h = decode(next_input, {}, memory, attention_mask, nullptr, options, &cache);
    auto logits = lm_logits(h).select(1, h.size(1) - 1);
    scores.push_back(logits);
    auto next = logits.argmax(-1);
    next = torch::where(finished, torch::full_like(next, config.pad_token_id), next);
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
    finished = finished | (next == config.eos_token_id);
    next_input = next.unsqueeze(1);
    if (finished.all().item<bool>()) break;
  }
  return {ids, torch::stack(scores)};
}

std::map<std::string, torch::Tensor> T5Impl::Output::named() const {
  std::map<std::string, torch::Tensor> m;
  if (loss.defined()) m["loss"] = loss;
  m["logits"] = logits;
  m["encoder_last_hidden_state"] = encoder_last_hidden_state;
  auto put = [&](const char* name, const std::vector<torch::Tensor>& v) {
    for (size_t i = 0; i < v.size(); ++i) m[fmt::format("{}.{}", name, i)] = v[i];
  };
  put("encoder_hidden_states", encoder_hidden_states);
  put("encoder_attentions", encoder_attentions);
  put("decoder_hidden_states", decoder_hidden_states);
  put("decoder_attentions", decoder_attentions);
  put("cross_attentions", cross_attentions);
  return m;
}

KeyMap t5_key_map(const TransformerConfig& c) {
  KeyMap map;
  auto w = [&](const std::string& hf, const std::string& in) { map.push_back({hf + ".weight", in + ".weight"}); };
  w("shared", "shared");
  auto attention = [&](const std::string& hf, const std::string& in) {
    for (const char* p : {"q", "k", "v", "o"}) w(hf + "." + p, in + "." + p);
  };
  auto ffn = [&](const std::string& hf, const std::string& in) {
    if (c.gated_ffn) {
      w(hf + ".wi_0", in + ".fc1");
      w(hf + ".wi_1", in + ".gate");
    } else {
      w(hf + ".wi", in + ".fc1");
    }
    w(hf + ".wo", in + ".fc2");
  };
  for (const std::string stack : {"encoder", "decoder"}) {
    const bool dec = stack == "decoder";
    const int64_t n = dec ? c.num_decoder_layers : c.num_layers;
    for (int64_t i = 0; i < n; ++i) {
      const std::string hf = fmt::format("{}.block.{}.layer.", stack, i), in = fmt::format("{}.blocks.{}.", stack, i);
      const LayerShape shape = c.layer_shape(static_cast<size_t>(dec ? c.num_layers + i : i));  // packed: blocks may be gone
      // HF keeps the stack's relative bias in block 0's self-attention, after q, k, v, o (HF's
      // order, which the gradient-norm reference follows); a packed block 0 without one keeps it too.
      if (shape.attn.present) attention(hf + "0.SelfAttention", in + "self_attn");
      if (i == 0) w(hf + "0.SelfAttention.relative_attention_bias", stack + ".rel_bias");
      if (shape.attn.present) w(hf + "0.layer_norm", in + "self_norm");
      if (dec && shape.cross.present) {
        attention(hf + "1.EncDecAttention", in + "cross_attn");
        w(hf + "1.layer_norm", in + "cross_norm");
      }
      const std::string f = dec ? "2" : "1";
      if (shape.ffn) {
        ffn(hf + f + ".DenseReluDense", in + "ffn");
        w(hf + f + ".layer_norm", in + "ffn_norm");
      }
      if (!shape.attn_from.empty()) {  // per-site packed (sculpt's own names: HF has no such tensors)
        map.push_back({hf + "0.sculpt_shortcut", in + "self_shortcut"});
        if (dec) map.push_back({hf + "1.sculpt_shortcut", in + "cross_shortcut"});
        map.push_back({hf + f + ".sculpt_shortcut", in + "ffn_shortcut"});
      }
    }
    w(stack + ".final_layer_norm", stack + ".final_norm");
  }
  if (!c.tie_word_embeddings) w("lm_head", "lm_head");
  // Tied duplicates that HF's .bin files carry and safetensors files leave out.
  map.push_back({"encoder.embed_tokens.weight", "shared.weight", true});
  map.push_back({"decoder.embed_tokens.weight", "shared.weight", true});
  if (c.tie_word_embeddings) map.push_back({"lm_head.weight", "shared.weight", true});
  return map;
}

}  // namespace sculpt::models
