#include "sculpt/models/opt.h"

#include <torch/torch.h>

#include "sculpt/core/error.h"
#include "sculpt/io/hf_dir.h"
#include "sculpt/models/config_check.h"
#include "sculpt/models/encoder_head.h"
#include "sculpt/models/hf_model.h"

namespace sculpt::models {

namespace {
constexpr int64_t kPositionOffset = 2;  // OPT's learned positions start at row 2
}

TransformerConfig opt_config_from_json(const nlohmann::json& j, const std::string& source) {
  SCULPT_CHECK(j.is_object(), "{}: expected a JSON object", source);
  TransformerConfig c;
  c.raw = j;
  c.model_type = "opt";
  c.vocab_size = config_int(j, "vocab_size", 50272, 1, kMaxVocab, source);
  c.hidden_size = config_int(j, "hidden_size", 768, 1, kMaxWidth, source);
  c.num_layers = config_int(j, "num_hidden_layers", 12, 1, kMaxLayers, source);
  // A stream rotated and sliced by compress/rotate.h: RMS norms over the original width, heads
  // of their original size (hidden_size is the sliced width).
  c.rotated_norm_width = rotated_norm_width_of(j, c.hidden_size, source);
  if (c.rotated_norm_width > 0) c.d_kv = config_int(j["sculpt_rotated"], "head_dim", 0, 1, kMaxWidth, source + " sculpt_rotated");
  c.num_heads = config_int(j, "num_attention_heads", 12, 1, std::max(c.hidden_size, c.rotated_norm_width), source);
  SCULPT_CHECK(c.d_kv > 0 || c.hidden_size % c.num_heads == 0, "{}: hidden_size {} is not a multiple of num_attention_heads {}",
               source, c.hidden_size, c.num_heads);
  c.intermediate_size = config_int(j, "ffn_dim", 3072, 1, kMaxFfn, source);
  c.max_positions = config_int(j, "max_position_embeddings", 2048, 1, kMaxPositions, source);
  c.word_embed_proj_dim = config_int(j, "word_embed_proj_dim", c.hidden_size, 1, kMaxWidth, source);
  c.pre_norm = config_bool(j, "do_layer_norm_before", true, source);
  c.final_norm = c.pre_norm && !config_bool(j, "_remove_final_layer_norm", false, source);
  c.activation = config_string(j, "activation_function", "relu", source);
  SCULPT_CHECK(c.activation == "relu" || c.activation == "gelu" || c.activation == "gelu_new",
               "{}: activation_function '{}' is not supported (relu, gelu, gelu_new)", source, c.activation);
  c.hidden_dropout = config_real(j, "dropout", 0.1, 0, 1, source);
  c.attention_dropout = config_real(j, "attention_dropout", 0.0, 0, 1, source);
  c.bias = config_bool(j, "enable_bias", true, source);
  c.norm_eps = 1e-5;  // nn.LayerNorm's default, which OPT uses
  c.pad_token_id = config_int(j, "pad_token_id", 1, 0, c.vocab_size - 1, source);
  c.bos_token_id = config_int(j, "bos_token_id", 2, 0, c.vocab_size - 1, source);
  c.eos_token_id = config_int(j, "eos_token_id", 2, 0, c.vocab_size - 1, source);
  c.tie_word_embeddings = config_bool(j, "tie_word_embeddings", true, source);
  SCULPT_CHECK(config_bool(j, "layer_norm_elementwise_affine", true, source),
               "{}: OPT without LayerNorm affine is not supported", source);
  std::string arch = "OPTForCausalLM";
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    SCULPT_CHECK(j["architectures"][0].is_string(), "{}: 'architectures' must hold class names", source);
    arch = j["architectures"][0].get<std::string>();
  }
  if (arch == "OPTForSequenceClassification") {
    c.head = HeadType::sequence_classification;
    c.num_labels = j.contains("id2label") && j["id2label"].is_object() ? static_cast<int64_t>(j["id2label"].size())
                                                                       : config_int(j, "num_labels", 2, 1, kMaxLabels, source);
    SCULPT_CHECK(c.num_labels >= 1 && c.num_labels <= kMaxLabels, "{}: id2label has {} labels; expected 1 to {}", source,
                 c.num_labels, kMaxLabels);
    c.problem_type = config_string(j, "problem_type", "", source);
  } else {
    c.head = HeadType::causal_lm;
  }
  SCULPT_CHECK(c.rotated_norm_width == 0 || c.final_norm, "{}: a rotated stream needs pre-LayerNorm blocks and the final norm",
               source);
  c.layer_shapes = layer_shapes_of(j, c, c.num_layers, source);
  SCULPT_CHECK(c.layer_shapes.empty() || c.pre_norm, "{}: a packed OPT needs pre-LayerNorm blocks", source);
  check_parameter_budget(c, source);
  return c;
}

nlohmann::json opt_config_to_json(const TransformerConfig& c) {
  nlohmann::json j = c.raw;
  j["hidden_size"] = c.hidden_size;
  j["word_embed_proj_dim"] = c.word_embed_proj_dim;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  write_rotated_block(j, c);
  write_layer_shapes(j, c.layer_shapes);
  return j;
}

Opt load_opt(const std::string& dir) {
  const std::string path = dir + "/config.json";
  const auto config = opt_config_from_json(io::read_json(path), path);
  check_config_against_weights(config, dir, path, /*packed=*/!config.layer_shapes.empty());
  Opt model(config);
  load_checkpoint(*model, opt_key_map(model->config), io::load_hf_weights(dir), dir, /*strict=*/true);
  return model;
}

void save_opt(Opt& model, const std::string& dir) { save_hf(*model, opt_key_map(model->config), opt_config_to_json(model->config), dir); }

OptImpl::OptImpl(TransformerConfig c) : config(std::move(c)) {
  const int64_t wep = config.word_embed_proj_dim, d = config.hidden_size;
  const bool rotated = config.rotated_norm_width > 0;
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(torch::nn::EmbeddingOptions(config.vocab_size, wep)
                                                                          .padding_idx(config.pad_token_id)));
  embed_positions = register_module("embed_positions", torch::nn::Embedding(config.max_positions + kPositionOffset, d));
  const int64_t last = config.stream_width(static_cast<size_t>(config.num_layers));  // the final site (per-site packed: its own)
  if (wep != d) {
    project_out = register_module("project_out", models::Linear(last, wep, rotated));
    project_in = register_module("project_in", models::Linear(wep, d, false));
  }
  if (config.final_norm && !rotated)
    final_norm = register_module("final_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(config.norm_eps)));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_layers; ++i) layers->push_back(TransformerLayer(config, static_cast<size_t>(i)));
  dropout = register_module("dropout", Dropout(config.hidden_dropout));
  const bool head_reads_stream = rotated && !project_out;  // then it carries the final norm's bias
  if (config.head == HeadType::sequence_classification)
    score = register_module("score", models::Linear(project_out ? wep : last, config.num_labels, head_reads_stream));
  else if (head_reads_stream)
    lm_head = register_module("lm_head", models::Linear(last, config.vocab_size, true));
}

torch::Tensor OptImpl::decode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, Output* out,
                              const ForwardOptions& options, OptCache* cache) {
  const int64_t B = input_ids.size(0), Tq = input_ids.size(1), past = cache ? cache->length : 0, K = past + Tq;
  auto mask = attention_mask.defined() ? attention_mask.to(torch::kLong) : torch::ones({B, K}, input_ids.options());
  SCULPT_CHECK(mask.size(1) == K, "attention_mask covers {} positions, expected {}", mask.size(1), K);
  // Positions from the mask, so left padding does not shift them; padding uses row 1.
  auto positions = (torch::cumsum(mask, 1) * mask - 1).narrow(1, past, Tq) + kPositionOffset;
  auto x = embed_tokens(input_ids);
  if (project_in) x = project_in(x);
  x = x + embed_positions(positions);  // HF applies no dropout here
  const ModelMasks* masks = options.masks;
  SCULPT_CHECK(!masks || masks->layers.size() == layers->size(), "{} layer masks for {} layers", masks ? masks->layers.size() : 0,
               layers->size());
  if (masks && masks->embed.defined()) x = x * masks->embed;
  auto causal = torch::arange(K, input_ids.options()).unsqueeze(0) <= torch::arange(past, K, input_ids.options()).unsqueeze(1);
  auto allowed = causal.unsqueeze(0).unsqueeze(0).to(x.scalar_type()) * mask.unsqueeze(1).unsqueeze(2).to(x.scalar_type());
  auto bias = (1.0 - allowed) * mask_min(x.scalar_type());
  if (cache && cache->layers.empty()) cache->layers.resize(layers->size());
  size_t i = 0;
  for (const auto& m : *layers) {
    if (options.hidden_states && out) out->hidden_states.push_back(x);
    torch::Tensor probs;
    auto* layer = m->as<TransformerLayer>();
    KVCache* kv = cache ? &cache->layers[i] : nullptr;
    x = layer->forward(x, bias, options.attentions ? &probs : nullptr, kv, masks ? &masks->layers[i] : nullptr);
    if (options.attentions && out) out->attentions.push_back(probs);
    ++i;
  }
  if (final_norm) x = final_norm(x);
  else if (config.rotated_norm_width > 0) x = rotated_rms_norm(x, config.rotated_norm_width, config.norm_eps);
  if (project_out) x = project_out(x);
  if (options.hidden_states && out) out->hidden_states.push_back(x);
  if (cache) cache->length = K;
  return x;
}

torch::Tensor OptImpl::lm_logits(const torch::Tensor& h) { return lm_head ? lm_head(h) : torch::matmul(h, embed_tokens->weight.t()); }

OptImpl::Output OptImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                 const torch::Tensor& labels, const ForwardOptions& options) {
  Output out;
  auto h = decode(input_ids, attention_mask, &out, options, nullptr);
  namespace F = torch::nn::functional;
  if (config.head == HeadType::sequence_classification) {
    auto logits = score(h);  // [B, T, labels]
    const int64_t T = input_ids.size(1);
    // As HF: the position before the first pad token; a row without padding gives -1 (the last).
    auto last = (input_ids == config.pad_token_id).to(torch::kLong).argmax(-1) - 1;
    last = (last + T) % T;
    out.logits = logits.index({torch::arange(input_ids.size(0), last.options()), last});
    if (labels.defined()) out.loss = classification_loss(config, out.logits, labels);
    return out;
  }
  out.logits = lm_logits(h);
  if (labels.defined()) {
    const int64_t T = out.logits.size(1), V = out.logits.size(2);
    auto shifted = out.logits.narrow(1, 0, T - 1).reshape({-1, V});
    out.loss = F::cross_entropy(shifted, labels.narrow(1, 1, T - 1).reshape(-1), F::CrossEntropyFuncOptions().ignore_index(-100));
  }
  return out;
}

std::pair<torch::Tensor, torch::Tensor> OptImpl::generate(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                                          int64_t max_new_tokens, const ModelMasks* masks) {
  torch::NoGradGuard no_grad;
  const int64_t B = input_ids.size(0);
  auto ids = input_ids;
  auto mask = attention_mask.defined() ? attention_mask.to(torch::kLong) : torch::ones_like(input_ids);
  auto finished = torch::zeros({B}, input_ids.options().dtype(torch::kBool));
  OptCache cache;
  std::vector<torch::Tensor> scores;
  auto next_input = ids;
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    ForwardOptions options;
    options.masks = masks;
    auto h = decode(next_input, mask, nullptr, options, &cache);
    auto logits = lm_logits(h.select(1, h.size(1) - 1));
    scores.push_back(logits);
    auto next = logits.argmax(-1);
    next = torch::where(finished, torch::full_like(next, config.pad_token_id), next);
    ids = torch::cat({ids, next.unsqueeze(1)}, 1);
    mask = torch::cat({mask, torch::ones({B, 1}, mask.options())}, 1);
    finished = finished | (next == config.eos_token_id);
    next_input = next.unsqueeze(1);
    if (finished.all().item<bool>()) break;
  }
  return {ids, torch::stack(scores)};
}

std::map<std::string, torch::Tensor> OptImpl::Output::named() const {
  std::map<std::string, torch::Tensor> m;
  if (loss.defined()) m["loss"] = loss;
  m["logits"] = logits;
  for (size_t i = 0; i < hidden_states.size(); ++i) m[fmt::format("hidden_states.{}", i)] = hidden_states[i];
  for (size_t i = 0; i < attentions.size(); ++i) m[fmt::format("attentions.{}", i)] = attentions[i];
  return m;
}

ModelOutput opt_logits(Opt& model, const Batch& batch, const ForwardOptions& options) {
  ModelOutput out;
  out.logits = model->forward(batch.input_ids, batch.attention_mask, torch::Tensor(), options).logits;
  return out;
}

KeyMap opt_key_map(const TransformerConfig& c) {
  KeyMap map;
  auto add = [&](const std::string& hf, const std::string& in, bool bias) {
    map.push_back({hf + ".weight", in + ".weight"});
    if (bias) map.push_back({hf + ".bias", in + ".bias"});
  };
  const std::string p = "model.decoder.";
  const bool rotated = c.rotated_norm_width > 0, projected = c.word_embed_proj_dim != c.hidden_size;
  add(p + "embed_tokens", "embed_tokens", false);
  add(p + "embed_positions", "embed_positions", false);
  if (projected) {
    add(p + "project_out", "project_out", rotated);
    add(p + "project_in", "project_in", false);
  }
  if (c.final_norm && !rotated) add(p + "final_layer_norm", "final_norm", true);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string hf = fmt::format("{}layers.{}.", p, i), in = fmt::format("layers.{}.", i);
    const LayerShape shape = c.layer_shape(static_cast<size_t>(i));  // a packed layer may lack a block
    if (shape.attn.present) {
      add(hf + "self_attn.k_proj", in + "attn.k", c.bias);
      add(hf + "self_attn.v_proj", in + "attn.v", c.bias);
      add(hf + "self_attn.q_proj", in + "attn.q", c.bias);
      add(hf + "self_attn.out_proj", in + "attn.o", c.bias);
      if (!rotated) add(hf + "self_attn_layer_norm", in + "attn_norm", true);
    }
    if (shape.ffn) {
      add(hf + "fc1", in + "ffn.fc1", c.bias);
      add(hf + "fc2", in + "ffn.fc2", c.bias);
      if (!rotated) add(hf + "final_layer_norm", in + "ffn_norm", true);
    }
    if (!shape.attn_from.empty()) {  // per-site packed (sculpt's own names: HF has no such tensors)
      map.push_back({hf + "sculpt_attn_shortcut", in + "attn_shortcut"});
      map.push_back({hf + "sculpt_ffn_shortcut", in + "ffn_shortcut"});
    }
  }
  if (c.head == HeadType::sequence_classification) add("score", "score", rotated && !projected);
  else if (rotated && !projected) add("lm_head", "lm_head", true);
  else map.push_back({"lm_head.weight", "embed_tokens.weight", true});  // tied
  return map;
}

}  // namespace sculpt::models
